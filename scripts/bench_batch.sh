#!/usr/bin/env bash
# Batched generation against one prompt at a time: P prompts x N greedy tokens through --prompts-file at
# --batch-size 1 and at --batch-size B, same model, same run. Prints aggregate tokens/s and the ratio.
#   scripts/bench_batch.sh [--prompts P] [--tokens N] [--batch B] [--shape gpt2|small] [extra gen flags...]
# Defaults: 16 prompts, 64 tokens, batch 16, the GPT-2 124M shape (random weights; speed does not
# depend on their values). On a GPU: scripts/bench_batch.sh --prompts 64 --batch 64 --device cuda
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
P=16 N=64 B=16 shape=gpt2
while [ $# -gt 0 ]; do
  case $1 in
    --prompts) P=$2; shift 2 ;;
    --tokens) N=$2; shift 2 ;;
    --batch) B=$2; shift 2 ;;
    --shape) shape=$2; shift 2 ;;
    *) break ;;
  esac
done
[ -x "$build/gen" ] || "$root/scripts/build.sh" >&2
tok=${GEN_TOKENIZER_DIR:-$root/../shared/gpt2-tokenizer}
[ -f "$tok/vocab.json" ] || tok=$root/models/gpt2
tokflag=()
[ -f "$tok/vocab.json" ] && tokflag=(--tokenizer "$tok")
case $shape in
  gpt2) dims=(--layers 12 --heads 12 --embd 768) ;;
  small) dims=(--layers 4 --heads 4 --embd 256) ;;
  *) echo "error: --shape must be gpt2 or small" >&2; exit 2 ;;
esac
model=$build/bench_models/$shape-gpt2vocab
[ -f "$model/model.safetensors" ] || "$build/gen-make-model" --out "$model" "${dims[@]}" --positions 1024 \
  --vocab 50257 --std 0.02 "${tokflag[@]}" >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 - "$P" >"$out/prompts.txt" <<'PY'
import sys
topics = ["the sea", "a key-value cache", "GPUs", "the history of Rome", "bread", "chess", "rain", "music"]
for i in range(int(sys.argv[1])):
    print(f"Prompt {i}: a short note about {topics[i % len(topics)]}, written for a curious reader,")
PY
for b in 1 "$B"; do
  "$build/gen" --model "$model" --prompts-file "$out/prompts.txt" \
    --batch-size "$b" -n "$N" --temperature 0 --ignore-eos --json "$@" >"$out/b$b.jsonl" 2>"$out/err$b" \
    || { cat "$out/err$b" >&2; exit 1; }
done
python3 - "$out" "$B" "$P" "$N" "$shape" <<'PY'
import json, os, re, sys
out, B, P, N, shape = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def run(b):
    rows = [json.loads(l) for l in open(f"{out}/b{b}.jsonl")]
    m = re.search(r"(\d+) tokens in ([\d.]+) s = ([\d.]+) tok/s", open(f"{out}/err{b}").read())
    return rows, int(m.group(1)), float(m.group(2)), float(m.group(3)), rows[0]["device"]
r1, t1, s1, v1, dev = run(1)
rb, tb, sb, vb, _ = run(B)
same = [x["tokens"] for x in r1] == [x["tokens"] for x in rb]
print(f"{P} prompts x {N} tokens, model {shape} shape (vocab 50257), device {dev}, {os.cpu_count()} CPU threads")
print(f"{'batch':>6} {'tokens':>7} {'gen s':>8} {'tok/s':>9}")
print(f"{1:>6} {t1:>7} {s1:>8.2f} {v1:>9.1f}")
print(f"{B:>6} {tb:>7} {sb:>8.2f} {vb:>9.1f}")
print(f"speed-up of batch {B} over batch 1 (aggregate tokens/s): {vb / v1:.2f}x")
print(f"identical tokens per prompt: {same}")
sys.exit(0 if same and t1 == tb == P * N else 1)
PY
