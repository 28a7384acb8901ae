#!/usr/bin/env bash
# Downloads a Hugging Face GPT-2 checkpoint into models/NAME/ at a pinned revision and checks each
# file's size and sha256 where they are pinned. Usage: scripts/download_model.sh gpt2|gpt2-medium|gpt2-large|gpt2-xl
# A failed run removes what it created (the files it fetched, and models/NAME if it made it), so it never
# leaves a partial model behind; files that were there before are kept.
# Env: GEN_MODELS_DIR (where models/ is, default the repo's; gen looks there first), GEN_DOWNLOAD_BASE
# (default https://huggingface.co/openai-community: a mirror with the same layout).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=${1:-gpt2}
base=${GEN_DOWNLOAD_BASE:-https://huggingface.co/openai-community}
# The tokenizer files are the same for all four sizes.
declare -A size=([vocab.json]=1042301 [merges.txt]=456318)
declare -A sha=([vocab.json]=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
  [merges.txt]=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5)
case "$name" in
  gpt2)
    rev=607a30d783dfa663caf39e06633721c8d4cfcd7e
    size[model.safetensors]=548105171
    sha[model.safetensors]=248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707
    size[config.json]=665
    sha[config.json]=0daed7749b4f02b8f76240d5444551d7b08712dab4d0adb8239c56ba823bb7b4
    ;;
  gpt2-medium | gpt2-large | gpt2-xl)
    # Not pinned yet: the newest revision, and its hashes are recorded in SHA256SUMS for later checks.
    rev=main
    ;;
  *)
    echo "error: unknown model '$name' (gpt2, gpt2-medium, gpt2-large, gpt2-xl)" >&2
    exit 2
    ;;
esac
dest=${GEN_MODELS_DIR:-$root/models}/$name
made_dir=0
[ -d "$dest" ] || made_dir=1
mkdir -p "$dest"
created=()  # files this run made: removed, with the directory if it made it, unless the run succeeds
cleanup() {
  local rc=$?
  [ "$rc" = 0 ] && return
  for f in ${created[@]+"${created[@]}"}; do rm -f "$dest/$f"; done
  rm -f "$dest/SHA256SUMS.tmp"
  if [ "$made_dir" = 1 ]; then rmdir "$dest" 2>/dev/null || true; fi
  echo "download: removed what this run created in $dest" >&2
}
trap cleanup EXIT
for f in config.json vocab.json merges.txt model.safetensors; do
  if [ ! -f "$dest/$f" ]; then
    echo "download: $name/$f @ $rev" >&2
    created+=("$f.part")
    if ! curl -fsSL --retry 3 --connect-timeout 20 -o "$dest/$f.part" "$base/$name/resolve/$rev/$f"; then
      echo "error: could not fetch $base/$name/resolve/$rev/$f" >&2
      exit 1
    fi
    created+=("$f")
    mv "$dest/$f.part" "$dest/$f"
  fi
  got_size=$(stat -c %s "$dest/$f")
  got_sha=$(sha256sum "$dest/$f" | cut -d' ' -f1)
  if [ -n "${size[$f]:-}" ] && [ "$got_size" != "${size[$f]}" ]; then
    echo "error: $dest/$f is $got_size bytes, expected ${size[$f]}; delete it and retry" >&2
    exit 1
  fi
  if [ -n "${sha[$f]:-}" ] && [ "$got_sha" != "${sha[$f]}" ]; then
    echo "error: $dest/$f has sha256 $got_sha, expected ${sha[$f]}; delete it and retry" >&2
    exit 1
  fi
  echo "$got_sha  $f" >>"$dest/SHA256SUMS.tmp"
done
sort -u -k2 "$dest/SHA256SUMS.tmp" >"$dest/SHA256SUMS" && rm -f "$dest/SHA256SUMS.tmp"
echo "download: $name ready in $dest" >&2
