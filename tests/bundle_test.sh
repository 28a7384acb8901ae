#!/usr/bin/env bash
# The GPU check's bundle starts by itself: scripts/bundle.sh packs the built gen and gen-make-model as
# device_prepare.sh does, `bundle.sh check` finds every library but glibc's and CUDA's inside the
# bundle's lib/ (ldd, no LD_LIBRARY_PATH), the bundled binaries run from there, and the check fails,
# naming the library, when one is missing from lib/. Env: GEN, MAKE_MODEL (the built binaries).
set -u
source "$(cd "$(dirname "$0")" && pwd)/cli_lib.sh"
bundle_sh=$here/../scripts/bundle.sh
unset LD_LIBRARY_PATH

if ! readelf -d "$GEN" | grep -q 'RPATH.*\$ORIGIN/\.\./lib'; then
  echo "skipped: gen was built without GEN_BUNDLE_RPATH (no \$ORIGIN/../lib RPATH)"
  exit 0
fi
b=$tmp/bundle
bash "$bundle_sh" pack "$b" "$GEN" "$MAKE_MODEL" >"$tmp/pack.log" 2>&1 || bad "pack: $(cat "$tmp/pack.log")"
[ -x "$b/bin/gen" ] && [ -x "$b/bin/gen-make-model" ] && ok || bad "binaries not in bin/"
ls "$b/lib" | grep -q '^libstdc++' && ok || bad "libstdc++ not in lib/: $(ls "$b/lib")"
ls "$b/lib" | grep -Eq '^lib(c|m|pthread)\.so|^libcudart|^libcublas' && bad "glibc or CUDA packed: $(ls "$b/lib")" || ok
if bash "$bundle_sh" check "$b" >"$tmp/check.log" 2>&1; then ok; else bad "check: $(cat "$tmp/check.log")"; fi

# Indirect dependencies too (libopenblas -> libgfortran -> libquadmath): every one ldd lists.
for lib in $(env -u LD_LIBRARY_PATH ldd "$b/bin/gen" | awk '$2 == "=>" {print $1}'); do
  case $lib in
    libc.so* | libm.so* | libmvec.so* | libpthread.so* | libdl.so* | librt.so* | libresolv.so* | libcud* | libcublas*) ;;
    *) env -u LD_LIBRARY_PATH ldd "$b/bin/gen" | grep -q "^\s*$lib => $b/bin/../lib/$lib " && ok ||
         bad "$lib does not resolve to the bundle: $(env -u LD_LIBRARY_PATH ldd "$b/bin/gen" | grep "$lib")" ;;
  esac
done

# The bundled binaries run: a model made and a generation on the CPU.
"$b/bin/gen-make-model" --out "$tmp/m" --layers 1 --heads 2 --embd 32 --positions 32 --vocab 300 >/dev/null 2>&1 &&
  ok || bad "bundled gen-make-model failed"
out=$("$b/bin/gen" --model "$tmp/m" --prompt "ab" -n 3 --device cpu --temperature 0 --json 2>"$tmp/err")
echo "$out" | grep -q '"finish_reason"' && ok || bad "bundled gen failed: $(cat "$tmp/err")"

# A library missing from lib/ resolves outside (or not at all): the check names it and fails.
victim=$(ls "$b/lib" | grep -E '^libgfortran|^libpcre2' | head -n 1)  # indirect (OpenBLAS's) first
if [ -n "$victim" ]; then
  rm "$b/lib/$victim"
  if bash "$bundle_sh" check "$b" >"$tmp/check2.log" 2>&1; then
    bad "check passed without $victim"
  else
    grep -q "$victim" "$tmp/check2.log" && ok || bad "check did not name $victim: $(cat "$tmp/check2.log")"
  fi
else
  bad "neither libgfortran nor libpcre2 in lib/: $(ls "$b/lib")"
fi

# link-cuda (on the device): a CUDA library the binaries cannot find is linked into lib/ from the first
# place of the fixed order, the toolkit's lib64 before its targets/x86_64-linux/lib. A stand-in
# "libnvrtc.so.99" plays the missing library, a tiny binary linked as gen is (an $ORIGIN/../lib RPATH).
f=$tmp/fake
mkdir -p "$f/cuda/lib64" "$f/cuda/targets/x86_64-linux/lib" "$f/b/bin" "$f/b/lib"
echo 'extern "C" int nv_x() { return 1; }' >"$f/x.cpp"
echo 'extern "C" int nv_x(); int main() { return nv_x() - 1; }' >"$f/m.cpp"
for d in lib64 targets/x86_64-linux/lib; do
  c++ -shared -fPIC -o "$f/cuda/$d/libnvrtc.so.99" -Wl,-soname,libnvrtc.so.99 "$f/x.cpp"
done
c++ -o "$f/b/bin/m" "$f/m.cpp" "$f/cuda/lib64/libnvrtc.so.99" -Wl,--disable-new-dtags,-rpath,'$ORIGIN/../lib'
bash "$bundle_sh" check "$f/b" --cuda >/dev/null 2>&1 && bad "check --cuda passed with a CUDA library missing" || ok
CUDA_HOME=$f/cuda bash "$bundle_sh" link-cuda "$f/b" >"$tmp/link.log" 2>&1 || bad "link-cuda: $(cat "$tmp/link.log")"
[ "$(readlink "$f/b/lib/libnvrtc.so.99")" = "$f/cuda/lib64/libnvrtc.so.99" ] && ok ||
  bad "not linked from lib64 first: $(ls -l "$f/b/lib") $(cat "$tmp/link.log")"
bash "$bundle_sh" check "$f/b" --cuda >/dev/null 2>&1 && "$f/b/bin/m" && ok || bad "the linked CUDA library does not load"

echo "bundle: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
