# Sourced by scripts/bench_prefix.sh and scripts/bench_serve.sh (with root and build set): the bench
# checkpoint, 4 layers of 256 with GPT-2's vocabulary and tokenizer (random weights), made once under
# build/bench_models/.
# bench_model NAME [HINT]: sets tok (GPT-2's vocab.json and merges.txt: GEN_TOKENIZER_DIR,
# ../shared/gpt2-tokenizer or models/gpt2) and model, making it when missing; without the tokenizer it
# prints "NAME: needs ...HINT" and exits 2.
bench_model() {
  tok=${GEN_TOKENIZER_DIR:-$root/../shared/gpt2-tokenizer}
  [ -f "$tok/vocab.json" ] || tok=$root/models/gpt2
  [ -f "$tok/vocab.json" ] || { echo "$1: needs GPT-2's vocab.json and merges.txt (../shared/gpt2-tokenizer or models/gpt2)${2:-}" >&2; exit 2; }
  model=$build/bench_models/L4-C256-gpt2vocab
  [ -f "$model/model.safetensors" ] || "$build/gen-make-model" --out "$model" --layers 4 --heads 4 --embd 256 \
    --positions 1024 --vocab 50257 --std 0.02 --tokenizer "$tok" >&2
}
