#!/usr/bin/env bash
# Run HERE (no GPU needed) before a GPU check: builds gen for sm_90 into build-device/ and packs the
# binaries with the shared libraries the device image may lack (OpenBLAS, PCRE2, gfortran) into
# build-device/bundle.tgz, with the real GPT-2 tokenizer where this machine has it (../shared does not
# travel to the device), which the device call carries:
#   run(command="bash scripts/device_check.sh", carry=["build-device/bundle.tgz"])
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
b=$root/build-device
"$root/scripts/install_deps.sh"
cmake -S "$root" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGEN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
ninja -C "$b" gen gen-make-model gen_cuda_tests bench_attention bench_decode bench_cpu_decode
rm -rf "$b/bundle" && mkdir -p "$b/bundle/bin" "$b/bundle/lib"
bins=(gen gen-make-model gen_cuda_tests bench_attention bench_decode bench_cpu_decode)
for x in "${bins[@]}"; do cp "$b/$x" "$b/bundle/bin/"; done
# Every non-system, non-CUDA library the binaries load (CUDA's come from the device's own toolkit).
for x in "${bins[@]}"; do ldd "$b/$x"; done | awk '/=> \// {print $3}' | sort -u |
  grep -E 'openblas|pcre2|gfortran|quadmath|gomp' | while read -r lib; do cp -L "$lib" "$b/bundle/lib/"; done
# The sources' hash, so that device_check.sh can tell a stale bundle from a current one.
bash "$root/scripts/source_hash.sh" >"$b/bundle/SOURCE_HASH"
parts=(bin lib SOURCE_HASH)
for tok in "${GEN_TOKENIZER_DIR:-}" "$root/../shared/gpt2-tokenizer" "$root/models/gpt2"; do
  if [ -n "$tok" ] && [ -f "$tok/vocab.json" ] && [ -f "$tok/merges.txt" ]; then
    mkdir -p "$b/bundle/tokenizer" && cp "$tok/vocab.json" "$tok/merges.txt" "$b/bundle/tokenizer/"
    parts+=(tokenizer)
    break
  fi
done
tar -C "$b/bundle" -czf "$b/bundle.tgz" "${parts[@]}"
ls -la "$b/bundle.tgz"
