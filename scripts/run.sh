#!/usr/bin/env bash
# The main job: builds gen if needed, fetches the model if it is missing, then generates.
#   scripts/run.sh --prompt "What is KV caching?" -n 100
# Arguments go to gen; --model defaults to models/gpt2.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
[ -x "$build/gen" ] || "$root/scripts/build.sh" >&2
cmake --build "$build" --target gen >/dev/null  # cheap when up to date

model="models/gpt2"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --model) model="${args[$((i + 1))]:-}" ;;
    --model=*) model="${args[$i]#--model=}" ;;
  esac
done
name=${model#models/}
complete() { [ -f "$1/model.safetensors" ] && [ -f "$1/config.json" ] && [ -f "$1/vocab.json" ] && [ -f "$1/merges.txt" ]; }
if ! complete "$model" && ! complete "$root/models/$name"; then
  case "$name" in
    gpt2 | gpt2-medium | gpt2-large | gpt2-xl)
      echo "run: $name is not in models/; downloading it" >&2
      if ! "$root/scripts/download_model.sh" "$name"; then
        echo "error: could not download $name (no internet?). Copy a Hugging Face GPT-2 directory" \
          "(model.safetensors, config.json, vocab.json, merges.txt) to models/$name, or pass --model DIR" >&2
        exit 1
      fi
      ;;
  esac
fi
exec "$build/gen" "$@"
