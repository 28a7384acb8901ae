#!/usr/bin/env bash
# The one prepared GPU check (DESIGN.md section 5), for the lent H200, under 8 minutes:
#   here:   bash scripts/device_prepare.sh
#   device: run(command="bash scripts/device_check.sh", carry=["build-device/bundle.tgz"], timeout_s=540)
# It runs the GPU tests, compute-sanitizer on one short generation, bench_attention, bench_decode and
# bench_vs_hf.py, writes every log under $OUT and prints a short table last.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$root/device_out}
mkdir -p "$OUT"
work=$(mktemp -d)
summary=()
note() { summary+=("$1"); echo "$1"; }
step() {  # step NAME TIMEOUT CMD...: runs CMD with a time limit, log in $OUT/NAME.log
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  note "$(printf '%-18s rc=%-3s %4ss  %s' "$name" "$rc" "$((SECONDS - t0))" "$(tail -n 1 "$OUT/$name.log" | cut -c1-90)")"
  return $rc
}

nvidia-smi -L >"$OUT/gpu.txt" 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv >>"$OUT/gpu.txt" 2>&1

# Binaries: the bundle built here (scripts/device_prepare.sh), else a build on the device.
bin=""
if [ -f "$root/build-device/bundle.tgz" ]; then
  tar -C "$work" -xzf "$root/build-device/bundle.tgz"
  export LD_LIBRARY_PATH="$work/lib:${LD_LIBRARY_PATH:-}"
  if "$work/bin/gen" --version >"$OUT/bundle.log" 2>&1; then bin=$work/bin; fi
fi
if [ -z "$bin" ]; then
  step build 400 bash -c "cmake -S '$root' -B '$work/build' -G Ninja -DCMAKE_BUILD_TYPE=Release -DGEN_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 && ninja -C '$work/build' gen gen-make-model gen_cuda_tests bench_attention bench_decode" \
    && bin=$work/build
fi
if [ -z "$bin" ]; then
  note "no binaries: see $OUT/bundle.log and $OUT/build.log"
  printf '%s\n' "${summary[@]}" >"$OUT/summary.txt"
  exit 1
fi
export GEN_SOURCE_DIR=$root GEN_TEST_TMPDIR=$work/tmp GEN_TOKENIZER_DIR=${GEN_TOKENIZER_DIR:-$root/shared/gpt2-tokenizer}
mkdir -p "$GEN_TEST_TMPDIR"
cd "$work"

step gpu_tests 180 "$bin/gen_cuda_tests" --reporter compact
"$bin/gen-make-model" --out "$work/small" --layers 2 --heads 4 --embd 256 --positions 256 --vocab 50257 >/dev/null 2>&1
step sanitizer 120 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/gen" --model "$work/small" \
  --prompt "Hello sanitizer" -n 8 --device cuda --temperature 0.8 --top-k 40 --top-p 0.9 --json
step sanitizer_race 120 compute-sanitizer --tool racecheck --error-exitcode 9 "$bin/gen" --model "$work/small" \
  --prompt "Hello sanitizer" -n 4 --device cuda --json
step bench_attention 90 "$bin/bench_attention"
step bench_decode 150 "$bin/bench_decode"
step bench_vs_hf 240 python3 "$root/scripts/bench_vs_hf.py" --build "$bin" --tokens 1000 --json "$OUT/bench_vs_hf.json"

{
  echo
  echo "== gpu";             cat "$OUT/gpu.txt"
  echo "== bench_attention"; tail -n 15 "$OUT/bench_attention.log"
  echo "== bench_decode";    tail -n 8 "$OUT/bench_decode.log"
  echo "== bench_vs_hf";     tail -n 9 "$OUT/bench_vs_hf.log"
  echo "== summary";         printf '%s\n' "${summary[@]}"
} | tee "$OUT/summary.txt"
