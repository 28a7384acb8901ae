#!/usr/bin/env python3
"""Golden perplexity from Hugging Face transformers, for gen's perplexity test.

For the committed tiny checkpoints (tests/fixtures/tiny-*, made by make_fixtures.py) and one fixed
sequence of token ids, it computes Hugging Face's loss, `model(ids, labels=ids).loss`, in float64 from
the very weights in the file (the loss itself: float32 logits, as HF upcasts "to float"; nll_f64 is
the same from the float64 logits), per window, for a few (tokens, context) cases, and combines the windows
as gen does: nll = sum over windows of loss x (len - 1), divided by the tokens scored.
Windows (gen's rule, docs/decisions.md): non-overlapping, `context` tokens each, each from position 0;
a last, shorter window is scored when it has >= 2 tokens, a last window of 1 token is dropped.
The cases cover context = n_positions, a context that leaves a short last window, one that leaves a
1-token remainder, and context 2. Writes tests/fixtures/perplexity_golden.json. Run from the repo root:
  python3 scripts/make_perplexity_fixture.py
"""
import json
import math
import os

import torch
from transformers import GPT2LMHeadModel

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
MODELS = ["tiny-f32", "tiny-f16", "tiny-bf16"]
N_IDS = 150
SEED = 1234


def windows(n, context):
    out = []
    for start in range(0, n, context):
        length = min(context, n - start)
        if length >= 2:
            out.append((start, length))
    return out


def score(model64, ids, context):
    total, total64, scored = 0.0, 0.0, 0
    wins = windows(len(ids), context)
    for start, length in wins:
        w = torch.tensor([ids[start:start + length]])
        with torch.no_grad():
            out = model64(w, labels=w)
        total += out.loss.item() * (length - 1)  # HF's loss: the mean over the length - 1 shifted targets
        # HF upcasts the logits "to float" (float32) for the loss; the same sum with the float64 logits
        # shows that this rounding is far below the test's 1e-4.
        logp = torch.log_softmax(out.logits[0, :-1], dim=-1)
        total64 -= logp.gather(1, w[0, 1:, None]).sum().item()
        scored += length - 1
    nll, nll64 = total / scored, total64 / scored
    assert abs(nll - nll64) <= 1e-6 * nll64, (nll, nll64)
    return {"nll": nll, "ppl": math.exp(nll), "nll_f64": nll64, "tokens_scored": scored, "windows": len(wins)}


def main():
    # One id sequence for every model: drawn below the smallest vocabulary (tiny-f16 has 257).
    vocab_min = min(json.load(open(os.path.join(FIXTURES, m, "config.json")))["vocab_size"] for m in MODELS)
    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, vocab_min, (N_IDS,), generator=g).tolist()
    out = {
        "source": ("transformers GPT2LMHeadModel(ids, labels=ids).loss per window; model in float64 from the "
                   "file's weights, loss from its logits upcast to float32 (nll_f64: in float64)"),
        "seed": SEED,
        "input_ids": ids,
        "models": {},
    }
    for name in MODELS:
        d = os.path.join(FIXTURES, name)
        model64 = GPT2LMHeadModel.from_pretrained(d).double().eval()
        P = model64.config.n_positions
        cases = []
        for n_tokens, context in [(N_IDS, P), (N_IDS, 37), (2 * P + 1, P), (N_IDS, 2)]:
            r = score(model64, ids[:n_tokens], context)
            cases.append({"n_tokens": n_tokens, "context": context, **r})
            print(f"{name}: {n_tokens} tokens, context {context}: nll {r['nll']:.6f} ppl {r['ppl']:.3f} "
                  f"({r['tokens_scored']} scored, {r['windows']} windows)")
        out["models"][name] = cases
    with open(os.path.join(FIXTURES, "perplexity_golden.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
