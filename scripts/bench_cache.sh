#!/usr/bin/env bash
# The KV cache against the full recompute on the CPU, through `gen --compare`: 384 greedy tokens on a
# 4-layer, 256-wide model with GPT-2's vocabulary (random weights; speed does not depend on their
# values). Prints gen's comparison table; exits 1 when the outputs differ.
#   scripts/bench_cache.sh [N_TOKENS] [extra gen flags, e.g. --trace steps.csv]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
n=${1:-384}
shift || true
[ -x "$build/gen" ] || "$root/scripts/build.sh" >&2
model=$build/bench_models/L4-C256-gpt2vocab
tok=${GEN_TOKENIZER_DIR:-$root/../shared/gpt2-tokenizer}
[ -f "$tok/vocab.json" ] || tok=$root/models/gpt2
tokflag=()
[ -f "$tok/vocab.json" ] && tokflag=(--tokenizer "$tok")
[ -f "$model/model.safetensors" ] || "$build/gen-make-model" --out "$model" --layers 4 --heads 4 --embd 256 \
  --positions 1024 --vocab 50257 --std 0.02 "${tokflag[@]}" >&2
prompt="The key-value cache stores the keys and values of every earlier position, so that"
echo "model: 4 layers, n_embd 256, vocab 50257; $n new tokens; $(nproc) CPU threads"
table=$("$build/gen" --model "$model" --prompt "$prompt" -n "$n" --temperature 0 --ignore-eos --device cpu --compare \
  "$@" 2>/dev/null | sed -n '/^device /,$p')
echo "$table"
grep -q "outputs identical: yes" <<<"$table"
