#!/usr/bin/env bash
# Run HERE (no GPU needed) before a GPU check: builds gen for sm_90 into build-device/ and packs the
# binaries with every shared library they load but glibc's and CUDA's (scripts/bundle.sh: OpenBLAS,
# oneDNN, PCRE2, libstdc++, libgomp, gfortran...) into build-device/bundle.tgz, with the real GPT-2
# tokenizer where this machine has it (../shared does not travel to the device). The binaries find
# the bundle's lib/ through their $ORIGIN/../lib RPATH (GEN_BUNDLE_RPATH), with no LD_LIBRARY_PATH; the
# pack step checks that with ldd. The device call carries the bundle:
#   run(command="bash scripts/device_check.sh", carry=["build-device/bundle.tgz"])
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
b=$root/build-device
"$root/scripts/install_deps.sh"
cmake -S "$root" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGEN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DGEN_BUNDLE_RPATH=ON >/dev/null
ninja -C "$b" gen gen-make-model gen_cuda_tests bench_attention bench_decode bench_cpu_decode
rm -rf "$b/bundle"
bins=()
for x in gen gen-make-model gen_cuda_tests bench_attention bench_decode bench_cpu_decode; do bins+=("$b/$x"); done
# CUDA's libraries come from the device's own toolkit or wheels (device_check.sh: bundle.sh link-cuda).
bash "$root/scripts/bundle.sh" pack "$b/bundle" "${bins[@]}"
bash "$root/scripts/bundle.sh" check "$b/bundle"
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
