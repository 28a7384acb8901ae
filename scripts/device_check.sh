#!/usr/bin/env bash
# The one prepared GPU check (DESIGN.md section 5), for the lent H200, under 8 minutes:
#   here:   bash scripts/device_prepare.sh
#   device: run(command="bash scripts/device_check.sh", carry=["build-device/bundle.tgz"], timeout_s=540)
#   rerun some steps while the machine is warm: bash scripts/device_check.sh gpu_tests bench_decode
# Steps, most important first (all by default): gpu_tests graph_fallback sanitizer bench_decode
# bench_attention bench_batch bench_vs_hf compare ppl chat sanitizer_race. Every step has its own time limit and the whole run a
# deadline (CHECK_BUDGET_S, default 500 s): a step that would start past it is skipped and says so.
# First the machine is logged (/etc/os-release, ldd --version, nvidia-smi), the bundle's CUDA libraries
# found (scripts/bundle.sh link-cuda: lib64, targets/x86_64-linux/lib, the wheels' nvidia/cu13/lib) and
# its self-containment checked (step `bundle`). Nothing exports LD_LIBRARY_PATH: the binaries find the
# bundle's lib/ by their RPATH, and python3 (torch) never sees the bundle's libraries.
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

{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
  grep -h '^PRETTY_NAME=' /etc/os-release; ldd --version | head -n 1; } >"$work/gpu.txt" 2>&1
{
  echo "===== machine"
  cat /etc/os-release 2>&1
  ldd --version 2>&1 | head -n 1
  nvidia-smi 2>&1
  echo "===== gpu"
  cat "$work/gpu.txt"
} >"$log"

# Binaries: the bundle built here (scripts/device_prepare.sh), else a build on the device. The bundle
# carries every library but glibc's and CUDA's; CUDA's that its RPATH does not reach are linked into its
# lib/ from the device's toolkit or Python wheels, in a fixed order.
bin="" stale=""
if [ -f "$root/build-device/bundle.tgz" ]; then
  tar -C "$work" -xzf "$root/build-device/bundle.tgz"
  { echo "===== cuda libraries"; bash "$root/scripts/bundle.sh" link-cuda "$work"; } >>"$log" 2>&1
  step bundle 20 bash "$root/scripts/bundle.sh" check "$work" --cuda
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
step make_small 30 "$bin/gen-make-model" --out "$work/small" --layers 2 --heads 4 --embd 256 --positions 256 --vocab 50257
step make_gpt2s 60 "$bin/gen-make-model" --out "$work/gpt2s" --layers 12 --heads 12 --embd 768 --positions 1024 \
  --vocab 50257 --std 0.02 ${GEN_TOKENIZER_DIR:+--tokenizer "$GEN_TOKENIZER_DIR"}
# compute-sanitizer: from the PATH, else the toolkit's bin/; the sanitizer steps say so when there is none.
sanitizer=$(command -v compute-sanitizer || ls "${CUDA_HOME:-/usr/local/cuda}"/bin/compute-sanitizer 2>/dev/null || true)
echo "compute-sanitizer: ${sanitizer:-not on the PATH nor in ${CUDA_HOME:-/usr/local/cuda}/bin}" >>"$log"
sanitize() {  # sanitize NAME LIMIT ARGS...: a compute-sanitizer step, or a note when there is none
  local name=$1 limit=$2
  shift 2
  if [ -z "$sanitizer" ]; then note "$(printf '%-18s skipped: compute-sanitizer not on the PATH' "$name")"; return 1; fi
  step "$name" "$limit" "$sanitizer" "$@"
}

want gpu_tests && step gpu_tests 150 "$bin/gen_cuda_tests" --reporter compact
# A capture made to fail (GEN_FAIL_GRAPH_CAPTURE=1): one note on stderr, the tokens of a run with graphs.
want graph_fallback && step graph_fallback 30 bash -c '
  args=(--model "$2/small" --prompt "Graphs fall back" -n 16 --device cuda --dtype fp32 --temperature 0 --json)
  "$1/gen" "${args[@]}" >"$2/g1.json" && GEN_FAIL_GRAPH_CAPTURE=1 "$1/gen" "${args[@]}" >"$2/g2.json" 2>"$2/g2.err" ||
    { cat "$2/g2.err"; exit 1; }
  cat "$2/g2.err"
  tokens() { grep -o "\"tokens\": *\[[^]]*\]" "$1"; }
  [ "$(tokens "$2/g1.json")" = "$(tokens "$2/g2.json")" ] || { echo "the tokens differ"; exit 1; }
  n=$(grep -c "^\[gen\] note: CUDA graphs off" "$2/g2.err")
  [ "$n" = 1 ] && echo "capture failed on purpose: one note, the same tokens eagerly" || { echo "$n notes"; exit 1; }
' _ "$bin" "$work"
want sanitizer && sanitize sanitizer 90 --tool memcheck --error-exitcode 9 "$bin/gen" --model "$work/small" \
  --prompt "Hello sanitizer" -n 8 --device cuda --temperature 0.8 --top-k 40 --top-p 0.9 --json
want bench_decode && step bench_decode 90 "$bin/bench_decode"
want bench_attention && step bench_attention 60 "$bin/bench_attention"
# Issue 5 on the GPU: 64 prompts at batch 64 against batch 1 (aggregate tokens/s). The same tokens in
# fp32 (the check); in fp16 other GEMM kernels and attention splits round differently, near-ties flip,
# and the step reports how many prompts match and where the first one diverges.
if want bench_batch; then
  step bench_batch_fp32 90 env BUILD_DIR="$bin" bash "$root/scripts/bench_batch.sh" --prompts 64 --batch 64 \
    --tokens 64 --device cuda --dtype fp32
  step bench_batch 90 env BUILD_DIR="$bin" bash "$root/scripts/bench_batch.sh" --prompts 64 --batch 64 \
    --tokens 64 --device cuda
fi
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
  sanitize ppl_sanitizer 60 --tool memcheck --error-exitcode 9 "$bin/gen" perplexity --model "$work/small" \
    --file "$work/ppl_short.txt" --context 100 --device cuda --json
fi
want chat && step chat 30 bash -c "printf 'Hello there\nWhat is a KV cache?\nThanks\n' | '$bin/gen' chat \
  --model '$work/gpt2s' --device cuda -n 24 2>&1"
# gen's kernels only (all in gen::cuda: "gen4cuda" in their mangled names): cuBLAS's own Hopper kernels
# can report false races.
want sanitizer_race && sanitize sanitizer_race 90 --tool racecheck --kernel-name kns=gen4cuda --error-exitcode 9 \
  "$bin/gen" --model "$work/small" --prompt "Hello sanitizer" -n 4 --device cuda --json

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
  section bench_batch_fp32 3
  section bench_batch 7
  echo "== summary"; printf '%s\n' "${summary[@]}"
} | tee "$OUT/table.txt"
cat "$OUT/table.txt" >>"$OUT/summary.txt" && rm -f "$OUT/table.txt"
