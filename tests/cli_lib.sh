# Shared by the tests/cli_*_test.sh scripts: a temp dir, pass/fail counting, a tiny model made with
# gen-make-model (the real GPT-2 tokenizer when ../shared/gpt2-tokenizer or models/gpt2 has it, else a
# byte-level stand-in), and expect_error. Env: GEN, MAKE_MODEL; GEN_TOKENIZER_DIR overrides the tokenizer.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

tokdir=${GEN_TOKENIZER_DIR:-$here/../../shared/gpt2-tokenizer}
[ -f "$tokdir/vocab.json" ] || tokdir=$here/../models/gpt2
if [ -f "$tokdir/vocab.json" ] && [ -f "$tokdir/merges.txt" ]; then
  real_tok=1
  vocab=50257
  tokflag=(--tokenizer "$tokdir")
else
  echo "note: no GPT-2 tokenizer files (../shared/gpt2-tokenizer or models/gpt2): using a byte-level stand-in"
  real_tok=0
  vocab=600
  tokflag=()
fi
# make_model DIR [LAYERS HEADS EMBD POSITIONS]: random weights (std 0.3), 2 x 2 x 32 x 64 by default.
make_model() {
  "$MAKE_MODEL" --out "$1" --layers "${2:-2}" --heads "${3:-2}" --embd "${4:-32}" --positions "${5:-64}" \
    --vocab $vocab --std 0.3 "${tokflag[@]}" >/dev/null || { echo "gen-make-model failed"; exit 1; }
}

# expect_error CODE PATTERN -- ARGS...: exit code CODE, stdout empty, stderr one line "error: ..." matching PATTERN.
expect_error() {
  local code=$1 pattern=$2
  shift 3
  "$GEN" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" != "$code" ]; then bad "$* -> exit $rc, expected $code ($(cat "$tmp/err"))"; return; fi
  if [ -s "$tmp/out" ]; then bad "$* -> wrote to stdout: $(head -c 200 "$tmp/out")"; return; fi
  if [ "$lines" != 1 ] || ! grep -q '^error: ' "$tmp/err"; then bad "$* -> stderr is not one error line: $(cat "$tmp/err")"; return; fi
  if ! grep -qE -- "$pattern" "$tmp/err"; then bad "$* -> '$(cat "$tmp/err")' does not match '$pattern'"; return; fi
  ok
}

# finish NAME: the summary line and the exit status.
finish() {
  echo "$1: $pass passed, $fail failed"
  [ "$fail" = 0 ]
}
