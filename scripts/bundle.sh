#!/usr/bin/env bash
# The GPU check's bundle: binaries in bin/, every library they load but glibc's and CUDA's in lib/. The
# binaries find lib/ by themselves (an $ORIGIN/../lib RPATH, CMake's GEN_BUNDLE_RPATH), so nothing needs
# LD_LIBRARY_PATH. Used by device_prepare.sh (pack, check), device_check.sh (link-cuda, check) and
# ctest's `bundle` test (tests/bundle_test.sh):
#   bundle.sh pack DIR BINARY...   copies each BINARY to DIR/bin and the libraries they load to DIR/lib
#   bundle.sh check DIR [--cuda]   ldd of every DIR/bin binary: each library but glibc's and CUDA's must
#                                  resolve inside DIR/lib; with --cuda, CUDA's must resolve too (anywhere)
#   bundle.sh link-cuda DIR        the CUDA libraries ldd cannot find, looked for in a fixed order (the
#                                  toolkit's lib64, its targets/x86_64-linux/lib, the Python wheels'
#                                  nvidia/cu13/lib) and linked into DIR/lib; logs where each one is
set -euo pipefail

is_glibc() { [[ $1 =~ ^(libc|libm|libmvec|libpthread|libdl|librt|libresolv|libutil|libanl|libnsl)\.so|^ld-linux|^linux-vdso ]]; }
is_cuda() { [[ $1 =~ ^lib(cuda|cudart|cublas|cublasLt|nvrtc|nvJitLink|nvidia-[a-z-]+)\.so ]]; }

# "NAME PATH" per library the binaries load (PATH "not-found" when ldd finds none), without the caller's
# LD_LIBRARY_PATH: what the binaries find by themselves.
libs_of() {
  for bin in "$@"; do env -u LD_LIBRARY_PATH ldd "$bin"; done |
    awk '$2 == "=>" { print $1, ($3 == "not" ? "not-found" : $3) }' | sort -u
}

pack() {
  local dir=$1
  shift
  mkdir -p "$dir/bin" "$dir/lib"
  cp "$@" "$dir/bin/"
  local name path
  while read -r name path; do
    is_glibc "$name" || is_cuda "$name" && continue
    if [ "$path" = not-found ]; then
      echo "bundle: $name is not found here, so it cannot be packed" >&2
      return 1
    fi
    cp -L "$path" "$dir/lib/$name"
  done < <(libs_of "$@")
}

check() {
  local dir want_cuda=""
  dir=$(cd "$1" && pwd)
  [ "${2:-}" = --cuda ] && want_cuda=1
  local bins=() bad=0 n=0 name path real
  for f in "$dir"/bin/*; do [ -f "$f" ] && [ -x "$f" ] && bins+=("$f"); done
  [ ${#bins[@]} -gt 0 ] || { echo "bundle: no binaries in $dir/bin" >&2; return 1; }
  while read -r name path; do
    n=$((n + 1))
    if is_glibc "$name"; then continue; fi
    if is_cuda "$name"; then
      if [ "$path" = not-found ] && [ -n "$want_cuda" ]; then echo "bundle: CUDA's $name is not found" >&2; bad=1; fi
      continue
    fi
    real=$( [ "$path" = not-found ] && echo not-found || dirname "$(realpath -s "$path")")
    if [ "$real" != "$dir/lib" ]; then
      echo "bundle: $name resolves outside the bundle: $path" >&2
      bad=1
    fi
  done < <(libs_of "${bins[@]}")
  [ $bad -eq 0 ] || return 1
  echo "bundle: ${#bins[@]} binaries, $n libraries; all but glibc's and CUDA's inside $dir/lib"
}

cuda_dirs() {  # the fixed order of the places CUDA's libraries may be
  local roots=() r site
  [ -n "${CUDA_HOME:-}" ] && roots+=("$CUDA_HOME")
  roots+=(/usr/local/cuda)
  for r in "${roots[@]}"; do echo "$r/lib64"; done
  for r in "${roots[@]}"; do echo "$r/targets/x86_64-linux/lib"; done
  { python3 -c 'import site; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null || true
    ls -d /usr/local/lib/python3*/dist-packages /usr/lib/python3/dist-packages 2>/dev/null || true; } |
    while read -r site; do echo "$site/nvidia/cu13/lib"; done
}

link_cuda() {
  local dir=$1 name path d found pass
  for pass in 1 2 3; do  # libcublas found brings libcublasLt into view
    found=0
    while read -r name path; do
      [ "$path" = not-found ] && is_cuda "$name" || continue
      for d in $(cuda_dirs); do
        if [ -e "$d/$name" ]; then
          ln -sf "$d/$name" "$dir/lib/$name"
          echo "cuda library $name: $d"
          found=1
          break
        fi
      done
      [ -e "$dir/lib/$name" ] || echo "cuda library $name: not found in $(cuda_dirs | tr '\n' ' ')"
    done < <(libs_of "$dir"/bin/*)
    [ $found -eq 1 ] || break
  done
  libs_of "$dir"/bin/* | while read -r name path; do
    if is_cuda "$name"; then echo "cuda library $name => $path"; fi
  done
}

cmd=${1:-}
shift || true
case $cmd in
  pack) pack "$@" ;;
  check) check "$@" ;;
  link-cuda) link_cuda "$@" ;;
  *) echo "usage: bundle.sh pack DIR BINARY... | check DIR [--cuda] | link-cuda DIR" >&2; exit 2 ;;
esac
