#!/usr/bin/env bash
# The one prepared GPU check (DESIGN.md section 5), for the lent H200, under 8 minutes:
#   here:   bash scripts/device_prepare.sh
#   device: run(command="bash scripts/device_check.sh", carry=["build-device/bundle.tgz"], timeout_s=540)
# It runs the GPU tests, compute-sanitizer on one short generation, perplexity against the CPU,
# --compare with a latency trace and plot, chat, bench_batch (batch 64 vs 1), bench_attention,
# bench_decode and bench_vs_hf.py, writes every log under $OUT and prints a short table last.
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
# Issue 4 on the GPU: perplexity against the CPU (fp32 1e-4, fp16 1e-2), --compare with a trace, chat.
for i in 1 2 3; do cat "$root/README.md"; done >"$work/ppl.txt"
head -c 2000 "$root/README.md" >"$work/ppl_short.txt"
step ppl_cpu 120 "$bin/gen" perplexity --model "$work/small" --file "$work/ppl.txt" --device cpu --json
step ppl_cuda_fp32 60 "$bin/gen" perplexity --model "$work/small" --file "$work/ppl.txt" --device cuda --dtype fp32 --json
step ppl_cuda_fp16 60 "$bin/gen" perplexity --model "$work/small" --file "$work/ppl.txt" --device cuda --json
ppl_cmp='import json, sys
a, b = (json.loads(open(p).read().splitlines()[-1]) for p in sys.argv[1:3])
tol = float(sys.argv[3]); r = abs(a["nll"] - b["nll"]) / a["nll"]
print("nll cpu %.6f cuda %.6f rel %.2e (tol %g), %d windows, cuda %.0f tok/s" % (a["nll"], b["nll"], r, tol, b["windows"], b["tokens_per_s"]))
sys.exit(r > tol or a["tokens_scored"] != b["tokens_scored"])'
step ppl_cmp_fp32 10 python3 -c "$ppl_cmp" "$OUT/ppl_cpu.log" "$OUT/ppl_cuda_fp32.log" 1e-4
step ppl_cmp_fp16 10 python3 -c "$ppl_cmp" "$OUT/ppl_cpu.log" "$OUT/ppl_cuda_fp16.log" 1e-2
step ppl_sanitizer 120 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/gen" perplexity --model "$work/small" \
  --file "$work/ppl_short.txt" --context 100 --device cuda --json
"$bin/gen-make-model" --out "$work/gpt2s" --layers 12 --heads 12 --embd 768 --positions 1024 --vocab 50257 \
  --std 0.02 ${GEN_TOKENIZER_DIR:+--tokenizer "$GEN_TOKENIZER_DIR"} >/dev/null 2>&1
step compare_fp32 120 "$bin/gen" --model "$work/gpt2s" --prompt "What is KV caching?" -n 1000 --ignore-eos \
  --device cuda --dtype fp32 --compare --trace "$OUT/trace_cuda_fp32.csv"
step compare_fp16 120 "$bin/gen" --model "$work/gpt2s" --prompt "What is KV caching?" -n 1000 --ignore-eos \
  --device cuda --compare --trace "$OUT/trace_cuda_fp16.csv"
python3 "$root/scripts/plot_latency.py" "$OUT/trace_cuda_fp16.csv" -o "$OUT/latency_cuda.png" --log \
  --title "gen on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), GPT-2 124M shape, fp16" >/dev/null 2>&1
step chat 60 bash -c "printf 'Hello there\nWhat is a KV cache?\nThanks\n' | '$bin/gen' chat --model '$work/gpt2s' \
  --device cuda -n 24 2>&1"
# Issue 5 on the GPU: 64 prompts at batch 64 against batch 1 (aggregate tokens/s, same tokens).
step bench_batch 180 env BUILD_DIR="$bin" bash "$root/scripts/bench_batch.sh" --prompts 64 --batch 64 --tokens 64 \
  --device cuda
step bench_attention 90 "$bin/bench_attention"
step bench_decode 150 "$bin/bench_decode"
step bench_vs_hf 240 python3 "$root/scripts/bench_vs_hf.py" --build "$bin" --tokens 1000 --json "$OUT/bench_vs_hf.json"

{
  echo
  echo "== gpu";             cat "$OUT/gpu.txt"
  echo "== bench_attention"; tail -n 15 "$OUT/bench_attention.log"
  echo "== bench_decode";    tail -n 8 "$OUT/bench_decode.log"
  echo "== bench_vs_hf";     tail -n 9 "$OUT/bench_vs_hf.log"
  echo "== compare fp16";    tail -n 13 "$OUT/compare_fp16.log"
  echo "== bench_batch";     tail -n 6 "$OUT/bench_batch.log"
  echo "== summary";         printf '%s\n' "${summary[@]}"
} | tee "$OUT/summary.txt"
