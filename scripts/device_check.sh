#!/usr/bin/env bash
# The one prepared GPU check (DESIGN.md section 5), for the lent H200, under 8 minutes:
#   here:   bash scripts/device_prepare.sh
#   device: run(command="bash scripts/device_check.sh", carry=["build-device/bundle.tgz"], timeout_s=540)
#   rerun some steps while the machine is warm: bash scripts/device_check.sh gpu_tests bench_decode
# Steps, most important first (all by default): gpu_tests sanitizer bench_decode bench_attention bench_batch
# bench_vs_hf compare ppl chat sanitizer_race. Every step has its own time limit and the whole run a
# deadline (CHECK_BUDGET_S, default 500 s): a step that would start past it is skipped and says so.
# $OUT receives at most 7 files, written as the run goes so that a killed run still returns them (the
# device tool fetches 8 at most): summary.txt, steps.log (every step's output, in order), the two latency
# traces, latency_cuda.png and bench_vs_hf.json. The table is printed last.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$root/device_out}
budget=${CHECK_BUDGET_S:-500}
mkdir -p "$OUT"
work=$(mktemp -d)
log=$OUT/steps.log
summary=()
wanted=" ${*:-all} "
note() { summary+=("$1"); echo "$1"; printf '%s\n' "${summary[@]}" >"$OUT/summary.txt"; }
want() { [[ $wanted == *" all "* || $wanted == *" $1 "* ]]; }
step() {  # step NAME LIMIT CMD...: CMD with a time limit, inside the run's deadline; output appended to steps.log
  local name=$1 limit=$2
  shift 2
  local left=$((budget - SECONDS))
  if [ "$left" -lt 15 ]; then note "$(printf '%-18s skipped: past the %ss deadline' "$name" "$budget")"; return 1; fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  printf '\n===== %s (limit %ss)\n' "$name" "$limit" >>"$log"
  timeout "$limit" "$@" >"$work/step.log" 2>&1
  local rc=$?
  cat "$work/step.log" >>"$log"
  note "$(printf '%-18s rc=%-3s %4ss  %s' "$name" "$rc" "$((SECONDS - t0))" "$(tail -n 1 "$work/step.log" | cut -c1-90)")"
  return $rc
}

{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv; } \
  >"$work/gpu.txt" 2>&1
{ echo "===== gpu"; cat "$work/gpu.txt"; } >"$log"

# Binaries: the bundle built here (scripts/device_prepare.sh), else a build on the device. The bundle
# carries every library but CUDA's own; find those in the device's toolkit or its Python wheels.
bin="" stale=""
if [ -f "$root/build-device/bundle.tgz" ]; then
  tar -C "$work" -xzf "$root/build-device/bundle.tgz"
  export LD_LIBRARY_PATH="$work/lib:${LD_LIBRARY_PATH:-}"
  for lib in $(ldd "$work/bin/gen" "$work/bin/gen_cuda_tests" 2>/dev/null | awk '/not found/ {print $1}' | sort -u); do
    found=$(find /usr/local /usr/lib /opt -name "$lib" 2>/dev/null | head -n 1)
    [ -n "$found" ] && export LD_LIBRARY_PATH="$(dirname "$found"):$LD_LIBRARY_PATH"
    echo "library $lib: ${found:-not found}" >>"$log"
  done
  if "$work/bin/gen" --version >>"$log" 2>&1; then bin=$work/bin; fi
  if [ "$(cat "$work/SOURCE_HASH" 2>/dev/null)" != "$(bash "$root/scripts/source_hash.sh")" ]; then
    note "WARNING: the bundle was built from other sources than these (rerun scripts/device_prepare.sh)"
    stale=1
  fi
fi
if [ -z "$bin" ] || [ -n "${stale:-}" ]; then  # cmake stops in seconds where the image lacks gen's libraries
  step build 300 bash -c "cmake -S '$root' -B '$work/build' -G Ninja -DCMAKE_BUILD_TYPE=Release -DGEN_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 && ninja -C '$work/build' gen gen-make-model gen_cuda_tests bench_attention bench_decode" \
    && bin=$work/build
fi
if [ -z "$bin" ]; then
  note "no binaries: see steps.log (bundle and build)"
  exit 1
fi
tok=${GEN_TOKENIZER_DIR:-$work/tokenizer}
[ -f "$tok/vocab.json" ] || tok=$root/shared/gpt2-tokenizer
[ -f "$tok/vocab.json" ] && export GEN_TOKENIZER_DIR=$tok
export GEN_SOURCE_DIR=$root GEN_TEST_TMPDIR=$work/tmp
mkdir -p "$GEN_TEST_TMPDIR"
cd "$work"
"$bin/gen-make-model" --out "$work/small" --layers 2 --heads 4 --embd 256 --positions 256 --vocab 50257 >/dev/null 2>&1
"$bin/gen-make-model" --out "$work/gpt2s" --layers 12 --heads 12 --embd 768 --positions 1024 --vocab 50257 \
  --std 0.02 ${GEN_TOKENIZER_DIR:+--tokenizer "$GEN_TOKENIZER_DIR"} >/dev/null 2>&1

want gpu_tests && step gpu_tests 150 "$bin/gen_cuda_tests" --reporter compact
want sanitizer && step sanitizer 90 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/gen" --model "$work/small" \
  --prompt "Hello sanitizer" -n 8 --device cuda --temperature 0.8 --top-k 40 --top-p 0.9 --json
want bench_decode && step bench_decode 90 "$bin/bench_decode"
want bench_attention && step bench_attention 60 "$bin/bench_attention"
# Issue 5 on the GPU: 64 prompts at batch 64 against batch 1 (aggregate tokens/s, same tokens).
want bench_batch && step bench_batch 90 env BUILD_DIR="$bin" bash "$root/scripts/bench_batch.sh" --prompts 64 --batch 64 \
  --tokens 64 --device cuda
want bench_vs_hf && step bench_vs_hf 150 env PYTHONUNBUFFERED=1 python3 "$root/scripts/bench_vs_hf.py" --build "$bin" \
  --model-dir "$work/gpt2s" --tokens 1000 --json "$OUT/bench_vs_hf.json"
# Issue 4 on the GPU: --compare with a latency trace and its plot, perplexity against the CPU, chat.
if want compare; then
  step compare_fp16 60 "$bin/gen" --model "$work/gpt2s" --prompt "What is KV caching?" -n 1000 --ignore-eos \
    --device cuda --compare --trace "$OUT/trace_cuda_fp16.csv"
  step compare_fp32 60 "$bin/gen" --model "$work/gpt2s" --prompt "What is KV caching?" -n 1000 --ignore-eos \
    --device cuda --dtype fp32 --compare --trace "$OUT/trace_cuda_fp32.csv"
  python3 "$root/scripts/plot_latency.py" "$OUT/trace_cuda_fp16.csv" -o "$OUT/latency_cuda.png" --log \
    --title "gen on $(head -n 1 "$work/gpu.txt" | sed 's/ (UUID.*//'), GPT-2 124M shape, fp16" >>"$log" 2>&1
fi
if want ppl; then
  for i in 1 2 3; do cat "$root/README.md"; done >"$work/ppl.txt"
  head -c 2000 "$root/README.md" >"$work/ppl_short.txt"
  step ppl_cpu 60 "$bin/gen" perplexity --model "$work/small" --file "$work/ppl.txt" --device cpu --json \
    && cp "$work/step.log" "$work/ppl_cpu.json"
  step ppl_cuda_fp32 30 "$bin/gen" perplexity --model "$work/small" --file "$work/ppl.txt" --device cuda --dtype fp32 --json \
    && cp "$work/step.log" "$work/ppl_fp32.json"
  step ppl_cuda_fp16 30 "$bin/gen" perplexity --model "$work/small" --file "$work/ppl.txt" --device cuda --json \
    && cp "$work/step.log" "$work/ppl_fp16.json"
  ppl_cmp='import json, sys
a, b = (json.loads(open(p).read().splitlines()[-1]) for p in sys.argv[1:3])
tol = float(sys.argv[3]); r = abs(a["nll"] - b["nll"]) / a["nll"]
print("nll cpu %.6f cuda %.6f rel %.2e (tol %g), %d windows, cuda %.0f tok/s" % (a["nll"], b["nll"], r, tol, b["windows"], b["tokens_per_s"]))
sys.exit(r > tol or a["tokens_scored"] != b["tokens_scored"])'
  step ppl_cmp_fp32 10 python3 -c "$ppl_cmp" "$work/ppl_cpu.json" "$work/ppl_fp32.json" 1e-4
  step ppl_cmp_fp16 10 python3 -c "$ppl_cmp" "$work/ppl_cpu.json" "$work/ppl_fp16.json" 1e-2
  step ppl_sanitizer 60 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/gen" perplexity --model "$work/small" \
    --file "$work/ppl_short.txt" --context 100 --device cuda --json
fi
want chat && step chat 30 bash -c "printf 'Hello there\nWhat is a KV cache?\nThanks\n' | '$bin/gen' chat \
  --model '$work/gpt2s' --device cuda -n 24 2>&1"
want sanitizer_race && step sanitizer_race 90 compute-sanitizer --tool racecheck --error-exitcode 9 "$bin/gen" \
  --model "$work/small" --prompt "Hello sanitizer" -n 4 --device cuda --json

section() {  # section TITLE N: the last N lines of that step's output in steps.log
  echo "== $1"
  awk -v s="===== $1 " 'index($0, s) == 1 {on = 1; n = 0; delete a; next} /^===== / {on = 0} on {a[n++] = $0}
    END {for (i = (n > '"$2"' ? n - '"$2"' : 0); i < n; i++) print a[i]}' "$log"
}
{
  echo
  echo "== gpu"; cat "$work/gpu.txt"
  section bench_attention 15
  section bench_decode 8
  section bench_vs_hf 9
  section compare_fp16 13
  section bench_batch 6
  echo "== summary"; printf '%s\n' "${summary[@]}"
} | tee "$OUT/table.txt"
cat "$OUT/table.txt" >>"$OUT/summary.txt" && rm -f "$OUT/table.txt"
