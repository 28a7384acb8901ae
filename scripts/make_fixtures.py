#!/usr/bin/env python3
"""Golden fixtures from Hugging Face transformers for gen's CPU forward tests.

Each fixture is a tiny random GPT2LMHeadModel saved with save_pretrained (the very files gen loads),
plus golden.json and logits.f32:
  - logits.f32: float32 little-endian [T, V], computed in float64 from the saved weights
    (the weights are rounded to the file's dtype first, so the reference is exact for that file);
  - golden.json: the input ids, and greedy generate() continuations with use_cache=True and False
    (asserted equal here) from a short prompt.
Requires torch, transformers, safetensors (not needed by gen at run time). Run from the repo root:
  python3 scripts/make_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

# name, dtype in the file, config overrides, seed, layout
FIXTURES = [
    ("tiny-f32", torch.float32, dict(n_layer=2, n_head=4, n_embd=32, n_positions=64, vocab_size=320), 1, "hf"),
    ("tiny-f16", torch.float16, dict(n_layer=2, n_head=2, n_embd=48, n_positions=40, vocab_size=257), 2, "hf"),
    ("tiny-bf16", torch.bfloat16, dict(n_layer=3, n_head=3, n_embd=24, n_positions=48, vocab_size=301), 3, "hf"),
    # Keys without the "transformer." prefix, with the mask buffers old checkpoints carry.
    ("tiny-noprefix", torch.float32, dict(n_layer=1, n_head=2, n_embd=16, n_positions=40, vocab_size=97), 4, "bare"),
]
N_INPUT = 24       # tokens whose logits are compared (all positions)
N_PROMPT = 5       # prompt length for the greedy continuation
N_NEW = 30         # greedy tokens generated
MIN_MARGIN = 2e-3  # top-1 minus top-2 logit at every greedy step: float32 noise cannot flip it


def build(cfg_over, seed, dtype):
    torch.manual_seed(seed)
    cfg = GPT2Config(**cfg_over, eos_token_id=cfg_over["vocab_size"] - 1,
                     bos_token_id=cfg_over["vocab_size"] - 1, initializer_range=0.15)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # layer norms and biases away from 1 and 0 so that they are tested
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model.to(dtype)


def greedy(model, prompt, use_cache):
    out = model.generate(prompt, max_new_tokens=N_NEW, do_sample=False, use_cache=use_cache,
                         pad_token_id=model.config.eos_token_id, eos_token_id=None)
    return out[0, prompt.shape[1]:].tolist()


def margins(model64, prompt, tokens):
    seq = torch.cat([prompt, torch.tensor([tokens])], dim=1)
    with torch.no_grad():
        logits = model64(seq).logits[0, prompt.shape[1] - 1: -1]
    top2 = logits.topk(2, dim=-1).values
    return float((top2[:, 0] - top2[:, 1]).min())


def make(name, dtype, cfg_over, seed, layout):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for attempt in range(50):
        model = build(cfg_over, seed * 1000 + attempt, dtype)
        model64 = GPT2LMHeadModel(model.config).eval()
        model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
        model64 = model64.double()
        gen_ = torch.Generator().manual_seed(seed)
        V = cfg_over["vocab_size"]
        ids = torch.randint(0, V, (1, N_INPUT), generator=gen_)
        prompt = ids[:, :N_PROMPT]
        # The greedy reference runs in float64 so the fixture is not one float32 rounding away.
        with_cache = greedy(model64, prompt, True)
        without = greedy(model64, prompt, False)
        assert with_cache == without, (with_cache, without)
        m = margins(model64, prompt, with_cache)
        if m >= MIN_MARGIN:
            break
    else:
        sys.exit(f"{name}: no seed gave greedy margins >= {MIN_MARGIN}")
    model.save_pretrained(d, safe_serialization=True)
    st = os.path.join(d, "model.safetensors")
    if layout == "bare":
        tensors = {k.removeprefix("transformer."): v for k, v in load_file(st).items()}
        for i in range(cfg_over["n_layer"]):
            n = cfg_over["n_positions"]
            tensors[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
            tensors[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        save_file(tensors, st, metadata={"format": "pt"})
    for extra in ("generation_config.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    with torch.no_grad():
        logits = model64(ids).logits[0].numpy().astype("<f4")
    logits.tofile(os.path.join(d, "logits.f32"))
    golden = {
        "source": f"transformers GPT2LMHeadModel, random init (seed {seed}), {dtype}; reference in float64",
        "input_ids": ids[0].tolist(),
        "logits_shape": list(logits.shape),
        "prompt_ids": prompt[0].tolist(),
        "greedy_new_tokens": with_cache,
        "greedy_min_margin": m,
    }
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    print(f"{name}: {sum(p.numel() for p in model.parameters())} params, margin {m:.4f}")


if __name__ == "__main__":
    for fx in FIXTURES:
        make(*fx)
