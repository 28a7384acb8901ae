#!/usr/bin/env bash
# The KV cache against the full recompute on the CPU: 384 greedy tokens on a 4-layer, 256-wide model
# with GPT-2's vocabulary (random weights; speed does not depend on their values). Prints the ratio.
#   scripts/bench_cache.sh [N_TOKENS] [extra gen flags...]
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
  --positions 1024 --vocab 50257 --std 0.02 "${tokflag[@]}"
prompt="The key-value cache stores the keys and values of every earlier position, so that"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for mode in use-cache no-cache; do
  "$build/gen" --model "$model" --prompt "$prompt" -n "$n" --temperature 0 --ignore-eos --device cpu \
    --"$mode" --json "$@" >"$out/$mode.json"
done
python3 - "$out/use-cache.json" "$out/no-cache.json" <<'PY'
import json, os, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
ta, tb = a["timing"], b["timing"]
print(f"model: 4 layers, n_embd 256, vocab 50257; prompt {len(a['prompt_tokens'])} tokens, {len(a['tokens'])} new tokens, {os.cpu_count()} CPU threads")
print(f"{'mode':10} {'total ms':>10} {'prefill ms':>11} {'decode ms/tok':>14} {'decode tok/s':>13}")
for name, t, r in (("cache", ta, a), ("no-cache", tb, b)):
    steps = len(r["tokens"]) - 1
    print(f"{name:10} {t['total_ms']:10.1f} {t['prefill_ms']:11.2f} {t['decode_ms']/max(steps,1):14.3f} {t['decode_tokens_per_s']:13.1f}")
print(f"speed-up (total time, no-cache / cache): {tb['total_ms']/ta['total_ms']:.2f}x")
print(f"identical tokens: {a['tokens'] == b['tokens']}")
sys.exit(0 if a["tokens"] == b["tokens"] else 1)
PY
