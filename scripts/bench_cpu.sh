#!/usr/bin/env bash
# CPU benchmarks: decode at batch 1 and 16 in each dtype against the memory-bandwidth bound (GPT-2 124M
# shape), batch-1 decode of the 4-layer model, then the KV cache against the full recompute
# (scripts/bench_cache.sh). Random weights:
# speed does not depend on their values. Models are made once under build/bench_models/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
[ -x "$build/bench_cpu_decode" ] || "$root/scripts/build.sh" >&2
cd "$build"
for dtype in fp32 bf16 int8; do
  for batch in 1 16; do
    echo "== decode at batch $batch, GPT-2 124M shape ($dtype)"
    ./bench_cpu_decode --layers 12 --heads 12 --embd 768 --vocab 50257 --steps 32 --dtype $dtype --batch $batch
  done
done
echo "== decode at batch 1, 4 layers, n_embd 256, GPT-2 vocabulary"
./bench_cpu_decode --layers 4 --heads 4 --embd 256 --vocab 50257 --steps 64
echo "== KV cache against full recompute"
"$root/scripts/bench_cache.sh" "${1:-384}"
