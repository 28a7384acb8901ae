#!/usr/bin/env python3
"""gen against Hugging Face generate() on the same checkpoint, same GPU, same run: the seed's
experiment (1000 new tokens, with and without the KV cache) side by side.

The checkpoint is GPT-2 124M shaped with random weights, written by gen-make-model in the Hugging Face
layout and loaded by both (speed does not depend on the weights' values). Needs torch and
transformers (the benchmark's peer, never a dependency of gen) and a CUDA build of gen.
  scripts/bench_vs_hf.py --build build [--tokens 1000] [--dtype fp16] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys
import time


def run_gen(gen, model, prompt, n, use_cache, dtype):
    cmd = [gen, "--model", model, "--prompt", prompt, "-n", str(n), "--temperature", "0", "--ignore-eos",
           "--device", "cuda", "--dtype", dtype, "--json", "--use-cache" if use_cache else "--no-cache"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    r = json.loads(out.strip().splitlines()[-1])
    return {"wall_s": wall, "generate_s": r["timing"]["total_ms"] / 1e3, "tokens": r["tokens"],
            "prompt_tokens": r["prompt_tokens"], "decode_tok_s": r["timing"]["decode_tokens_per_s"]}


def run_hf(model_dir, prompt_ids, n, use_cache, dtype):
    import torch
    from transformers import GPT2LMHeadModel
    torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    model = GPT2LMHeadModel.from_pretrained(model_dir, dtype=torch_dtype).cuda().eval()
    ids = torch.tensor([prompt_ids], device="cuda")
    kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=use_cache,
              pad_token_id=model.config.eos_token_id)
    with torch.no_grad():
        model.generate(ids, **dict(kw, max_new_tokens=8, min_new_tokens=8))  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(ids, **kw)
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    return {"generate_s": secs, "tokens": out[0, len(prompt_ids):].tolist()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    gen = os.path.join(a.build, "gen")
    model = a.model_dir or os.path.join(a.build, "bench_models", "hf-peer-gpt2")
    if not os.path.exists(os.path.join(model, "model.safetensors")):
        subprocess.run([os.path.join(a.build, "gen-make-model"), "--out", model, "--layers", "12", "--heads", "12",
                        "--embd", "768", "--positions", "1024", "--vocab", "50257", "--std", "0.02"], check=True)
    prompt = "What is KV caching? It is"
    res = {}
    res["gen_cache"] = run_gen(gen, model, prompt, a.tokens, True, a.dtype)
    res["gen_nocache"] = run_gen(gen, model, prompt, a.tokens, False, a.dtype)
    ids = res["gen_cache"]["prompt_tokens"]
    res["hf_cache"] = run_hf(model, ids, a.tokens, True, a.dtype)
    res["hf_nocache"] = run_hf(model, ids, a.tokens, False, a.dtype)
    n = a.tokens
    print(f"{n} new tokens, {a.dtype}, prompt {len(ids)} tokens, same checkpoint ({model})")
    print(f"{'run':14} {'seconds':>9} {'tok/s':>9}")
    for k in ("hf_cache", "hf_nocache", "gen_cache", "gen_nocache"):
        s = res[k]["generate_s"]
        print(f"{k:14} {s:9.3f} {n / s:9.1f}")
    g, h = res["gen_cache"]["generate_s"], res["hf_cache"]["generate_s"]
    print(f"cache speed-up: HF {res['hf_nocache']['generate_s'] / h:.1f}x, gen {res['gen_nocache']['generate_s'] / g:.1f}x")
    print(f"gen vs HF with the cache: {h / g:.1f}x faster")
    same = sum(1 for x, y in zip(res["gen_cache"]["tokens"], res["hf_cache"]["tokens"]) if x == y)
    first_diff = next((i for i, (x, y) in enumerate(zip(res["gen_cache"]["tokens"], res["hf_cache"]["tokens"])) if x != y), n)
    print(f"greedy tokens equal to HF's: first {first_diff} of {n} ({a.dtype}: rounding may split near-ties later)")
    print(f"gen cache = gen no-cache tokens: {res['gen_cache']['tokens'] == res['gen_nocache']['tokens']}")
    if a.json:
        for v in res.values():
            v.pop("tokens", None)
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
