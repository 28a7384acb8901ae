#!/usr/bin/env bash
# gen against llama.cpp and Hugging Face on the CPU, on the same random GPT-2 124M checkpoint, in
# interleaved rounds: decode at batch 1 (128 tokens after a short prompt) and a 512-token prefill, for
# gen fp32 / bf16 / int8 beside llama.cpp F32 / BF16 / Q8_0 and transformers fp32 / bf16. Prints the
# medians and gen's ratio to each peer.
#   scripts/bench_vs_llamacpp.sh [ROUNDS]        (default 5; THREADS=2, WORK=build/peer-llamacpp)
# For a machine with PyPI: llama.cpp's source is the sdist of llama-cpp-python==0.3.36
# (vendor/llama.cpp), built CPU-only under $WORK with its GGUF converter's Python deps (torch,
# transformers) in a venv there. Nothing of llama.cpp enters the repo. Not part of CI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
work=${WORK:-$build/peer-llamacpp}
rounds=${1:-5}
threads=${THREADS:-2}
mkdir -p "$work"
[ -x "$build/gen" ] && [ -x "$build/gen-make-model" ] || "$root/scripts/build.sh" >&2

# ---- the peer: llama.cpp from the PyPI sdist, CPU only --------------------------------------------
src="$work/llama_cpp_python-0.3.36/vendor/llama.cpp"
bin="$work/llama-build/bin"
if [ ! -x "$bin/llama-bench" ] || [ ! -x "$bin/llama-quantize" ]; then
  [ -d "$src" ] || { pip download llama-cpp-python==0.3.36 --no-binary :all: --no-deps -d "$work" -q &&
    tar -xzf "$work/llama_cpp_python-0.3.36.tar.gz" -C "$work"; }
  cmake -S "$src" -B "$work/llama-build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=OFF -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
  cmake --build "$work/llama-build" -j "$(nproc)" --target llama-bench llama-quantize >/dev/null
fi
venv="$work/venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, transformers, gguf" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q numpy safetensors sentencepiece transformers torch "$src/gguf-py"
fi

# ---- one checkpoint for both: GPT-2 124M's shape, random weights, the real tokenizer -------------
tok=${GEN_TOKENIZER_DIR:-$root/../shared/gpt2-tokenizer}
[ -f "$tok/vocab.json" ] || tok=$root/models/gpt2
model="$work/gpt2-random"
[ -f "$model/model.safetensors" ] || "$build/gen-make-model" --out "$model" --layers 12 --heads 12 --embd 768 \
  --positions 1024 --vocab 50257 --tokenizer "$tok" >/dev/null
for fmt in f32 bf16 q8_0; do
  [ -f "$work/gpt2-$fmt.gguf" ] || "$venv/bin/python" "$src/convert_hf_to_gguf.py" "$model" --outtype "$fmt" \
    --outfile "$work/gpt2-$fmt.gguf" >/dev/null 2>&1
done
python3 -c "
import random; random.seed(1)
w = 'the of and to in is was for on that with as by at from his her it an are were which this be or'.split()
print(' '.join(random.choice(w) for _ in range(512)))" >"$work/prompt512.txt"

# ---- interleaved rounds -------------------------------------------------------------------------
out="$work/results.tsv"
: >"$out"
gen_run() {  # dtype, then gen's arguments; prints "decode_tok_s prefill_tok_s"
  local dt=$1
  shift
  "$build/gen" --model "$model" --device cpu --dtype "$dt" --threads "$threads" --json --temperature 0 "$@" |
    python3 -c "import json,sys; d=json.loads(sys.stdin.readline()); t=d['timing']
print(t['decode_tokens_per_s'], len(d['prompt_tokens']) * 1e3 / t['prefill_ms'])"
}
for ((r = 1; r <= rounds; r++)); do
  for pair in fp32:f32 bf16:bf16 int8:q8_0; do
    dt=${pair%%:*} fmt=${pair##*:}
    read -r dec _ < <(gen_run "$dt" --prompt "The history of the city" -n 128 --ignore-eos)
    read -r _ pre < <(gen_run "$dt" --prompt-file "$work/prompt512.txt" -n 1)
    printf 'gen\t%s\tdecode\t%s\ngen\t%s\tprefill\t%s\n' "$dt" "$dec" "$dt" "$pre" >>"$out"
    "$bin/llama-bench" -m "$work/gpt2-$fmt.gguf" -t "$threads" -p 512 -n 128 -r 1 -o json 2>/dev/null |
      python3 -c "import json,sys
for t in json.load(sys.stdin):
    kind = 'prefill' if t['n_prompt'] else 'decode'
    print('llama.cpp\t$fmt\t' + kind + '\t' + str(t['avg_ts']))" >>"$out"
  done
  for dt in fp32 bf16; do  # Hugging Face: generate() for decode, one forward for the prefill
    "$venv/bin/python" - "$model" "$dt" "$threads" >>"$out" <<'PY'
import sys, time, torch
from transformers import GPT2LMHeadModel
torch.set_num_threads(int(sys.argv[3]))
dt = torch.float32 if sys.argv[2] == "fp32" else torch.bfloat16
m = GPT2LMHeadModel.from_pretrained(sys.argv[1], dtype=dt).eval()
with torch.no_grad():
    ids = torch.tensor([[464, 2106, 286, 262, 1748]])  # "The history of the city"
    t = time.perf_counter()
    m.generate(ids, max_new_tokens=128, min_new_tokens=128, do_sample=False, pad_token_id=50256)
    dec = 128 / (time.perf_counter() - t)
    p = torch.randint(0, 50257, (1, 512), generator=torch.Generator().manual_seed(1))
    t = time.perf_counter()
    m(p)
    pre = 512 / (time.perf_counter() - t)
print(f"hf\t{sys.argv[2]}\tdecode\t{dec}\nhf\t{sys.argv[2]}\tprefill\t{pre}")
PY
  done
  echo "round $r of $rounds done" >&2
done
python3 - "$out" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
med = {}
for engine, fmt, kind, v in rows:
    med.setdefault((engine, fmt, kind), []).append(float(v))
med = {k: statistics.median(v) for k, v in med.items()}
print("| gen | tok/s | peer | tok/s | gen / peer |")
print("| --- | --- | --- | --- | --- |")
for kind in ("decode", "prefill"):
    for g, engine, l in (("fp32", "llama.cpp", "f32"), ("bf16", "llama.cpp", "bf16"), ("int8", "llama.cpp", "q8_0"),
                         ("fp32", "hf", "fp32"), ("bf16", "hf", "bf16")):
        a, b = med[("gen", g, kind)], med[(engine, l, kind)]
        print(f"| {g} {kind} | {a:.1f} | {engine} {l.upper()} | {b:.1f} | {a / b:.2f} |")
PY
