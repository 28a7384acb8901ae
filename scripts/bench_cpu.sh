#!/usr/bin/env bash
# CPU benchmarks: batch-1 decode against the memory-bandwidth bound (GPT-2 124M shape and the 4-layer
# model), then the KV cache against the full recompute (scripts/bench_cache.sh). Random weights:
# speed does not depend on their values. Models are made once under build/bench_models/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
[ -x "$build/bench_cpu_decode" ] || "$root/scripts/build.sh" >&2
cd "$build"
echo "== decode at batch 1, GPT-2 124M shape (fp32)"
./bench_cpu_decode --layers 12 --heads 12 --embd 768 --vocab 50257 --steps 32
echo "== decode at batch 1, 4 layers, n_embd 256, GPT-2 vocabulary"
./bench_cpu_decode --layers 4 --heads 4 --embd 256 --vocab 50257 --steps 64
echo "== KV cache against full recompute"
"$root/scripts/bench_cache.sh" "${1:-384}"
