#!/usr/bin/env bash
# `gen perplexity` end to end through the real binary: the JSON fields and the invariants between them
# (ppl = exp(nll), tokens_scored = tokens - windows, the window count for a given --context), the
# human summary, Ctrl-C, and one line "error: ..." with exit code 2 and nothing on stdout for each bad
# input. (The nll itself is checked against Hugging Face by the Catch2 test.)
# Env: GEN (the gen binary), MAKE_MODEL (gen-make-model). GEN_TOKENIZER_DIR overrides the tokenizer.
set -u
source "$(dirname "$0")/cli_lib.sh"
make_model "$tmp/m" 2 2 32 64
M=$tmp/m
G=("$GEN" perplexity --model "$M" --device cpu)

# A text of a few hundred tokens whatever the tokenizer: several full windows and a short last one.
for i in $(seq 1 40); do printf 'Line %d: the quick brown fox jumps over the lazy dog.\n' "$i"; done >"$tmp/text.txt"

# check_json FILE CONTEXT: the fields, ppl = exp(nll), and the window arithmetic for CONTEXT.
check_json() {
  python3 - "$1" "$2" <<'PY'
import json, math, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
r = json.loads(lines[0])
assert {"ppl", "nll", "tokens_scored", "windows"} <= set(r), r
ctx, n = int(sys.argv[2]), r["tokens"]
assert r["context"] == ctx, r
full, rest = divmod(n, ctx)
windows = full + (1 if rest >= 2 else 0)  # a last window of 1 token has nothing to score
assert r["windows"] == windows, (r, windows)
assert r["tokens_scored"] == n - windows - (1 if rest == 1 else 0), r
assert r["nll"] > 0 and math.isfinite(r["nll"]), r
assert abs(r["ppl"] - math.exp(r["nll"])) <= 1e-12 * r["ppl"], r
print(r["tokens"])
PY
}

# ---- happy paths ------------------------------------------------------------------------------
"${G[@]}" --file "$tmp/text.txt" --json >"$tmp/a.json" 2>"$tmp/err" && n=$(check_json "$tmp/a.json" 64) && ok \
  || { bad "default context: $(cat "$tmp/a.json" "$tmp/err")"; n=0; }
[ "$n" -gt 130 ] && ok || bad "the text should be more than two windows of 64 tokens (got $n tokens)"
for ctx in 2 37 64; do
  "${G[@]}" --file "$tmp/text.txt" --context $ctx --json >"$tmp/c.json" 2>"$tmp/err" && check_json "$tmp/c.json" $ctx >/dev/null \
    && ok || bad "--context $ctx: $(cat "$tmp/c.json" "$tmp/err")"
done
# A context that leaves exactly one token over (a divisor of n - 1): that token is dropped, not scored.
ctx=0
for c in $(seq 64 -1 3); do [ "$n" -gt 1 ] && [ $(( (n - 1) % c )) = 0 ] && { ctx=$c; break; }; done
if [ "$ctx" -gt 0 ]; then
  "${G[@]}" --file "$tmp/text.txt" --context $ctx --json >"$tmp/c.json" 2>"$tmp/err" && check_json "$tmp/c.json" $ctx >/dev/null \
    && ok || bad "--context $ctx (1-token rest): $(cat "$tmp/c.json" "$tmp/err")"
else
  echo "note: $n - 1 tokens has no divisor in 3..64: the 1-token rest is not checked here"
fi
# --context N equal to n_positions is the default; --threads and --dtype fp32 are accepted.
"${G[@]}" --file "$tmp/text.txt" --context 64 --threads 1 --dtype fp32 --json >"$tmp/b.json" 2>"$tmp/err" \
  && python3 -c "import json,sys; a,b=(json.load(open(p)) for p in sys.argv[1:]); assert abs(a['nll']-b['nll'])<=1e-5*a['nll'], (a,b)" \
    "$tmp/a.json" "$tmp/b.json" && ok || bad "explicit --context 64: $(cat "$tmp/err")"
# Without --json: "key value" lines on stdout, the same numbers.
"${G[@]}" --file "$tmp/text.txt" >"$tmp/h.txt" 2>"$tmp/err" && python3 - "$tmp/h.txt" "$tmp/a.json" <<'PY' && ok || bad "human summary: $(cat "$tmp/h.txt" "$tmp/err")"
import json, sys
kv = dict(l.split(" ", 1) for l in open(sys.argv[1]).read().splitlines())
r = json.load(open(sys.argv[2]))
assert {"ppl", "nll", "tokens_scored", "windows", "tokens_per_s"} <= set(kv), kv
assert int(kv["tokens_scored"]) == r["tokens_scored"] and int(kv["windows"]) == r["windows"]
assert abs(float(kv["nll"]) - r["nll"]) <= 1e-5 * r["nll"]
PY
# A file of two tokens at least: one window, one token scored.
printf 'Hello world' >"$tmp/two.txt"
"${G[@]}" --file "$tmp/two.txt" --json >"$tmp/t.json" 2>"$tmp/err" \
  && python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['windows']==1 and r['tokens_scored']==r['tokens']-1, r" \
    "$tmp/t.json" && ok || bad "two-token file: $(cat "$tmp/t.json" "$tmp/err")"
"$GEN" perplexity --help >"$tmp/out" 2>&1 && grep -q -- "--context" "$tmp/out" && ok || bad "perplexity --help"

# ---- Ctrl-C: exit 130, nothing on stdout, stderr says how far it got. A model slow enough that the
# signal lands mid-run: 1024-token windows on a 4 x 256 model, several of them.
"$MAKE_MODEL" --out "$tmp/slow" --layers 4 --heads 4 --embd 256 --positions 1024 --vocab $vocab "${tokflag[@]}" || exit 1
for i in $(seq 1 60); do cat "$tmp/text.txt"; done >"$tmp/long.txt"
"$GEN" perplexity --model "$tmp/slow" --device cpu --file "$tmp/long.txt" --context 128 --json >"$tmp/int.out" 2>"$tmp/int.err" &
pid=$!
sleep 3
kill -INT "$pid"
wait "$pid"
rc=$?
if [ $rc = 0 ]; then
  echo "note: the run ended before the signal (rc 0); Ctrl-C not checked"
else
  [ $rc = 130 ] && [ ! -s "$tmp/int.out" ] && grep -q '^interrupted: scored [0-9]* of [0-9]* windows' "$tmp/int.err" && ok \
    || bad "SIGINT: rc=$rc stdout '$(head -c 200 "$tmp/int.out")' stderr '$(cat "$tmp/int.err")'"
fi

# ---- bad inputs: one error line, exit 2, empty stdout ------------------------------------------
: >"$tmp/empty.txt"
printf 'ok \xc3\x28 bad' >"$tmp/badutf8.txt"
printf 'a' >"$tmp/one.txt"
expect_error 2 "cannot read file" -- perplexity --model "$M" --device cpu --file "$tmp/none.txt"
expect_error 2 "cannot read file" -- perplexity --model "$M" --device cpu --file "$tmp"
expect_error 2 "empty" -- perplexity --model "$M" --device cpu --file "$tmp/empty.txt"
expect_error 2 "invalid UTF-8 at byte 3" -- perplexity --model "$M" --device cpu --file "$tmp/badutf8.txt"
expect_error 2 "at least 2" -- perplexity --model "$M" --device cpu --file "$tmp/one.txt"
expect_error 2 "^error: --ctx 1 is out of range: must be in 2..1048576 \\(--ctx\\)$" -- perplexity --model "$M" --device cpu --file "$tmp/text.txt" --context 1
expect_error 2 "--ctx 0 is out of range" -- perplexity --model "$M" --device cpu --file "$tmp/text.txt" --context 0
expect_error 2 "--ctx -5 is out of range" -- perplexity --model "$M" --device cpu --file "$tmp/text.txt" --context -5
expect_error 2 "--ctx 65 is out of range: must be in 2..64 \\(the model's n_positions\\)" -- perplexity --model "$M" --device cpu --file "$tmp/text.txt" --context 65
expect_error 2 "^error: --ctx 'lots' is not a decimal integer \\(--ctx\\)$" -- perplexity --model "$M" --device cpu --file "$tmp/text.txt" --context lots
expect_error 2 "--file" -- perplexity --model "$M" --device cpu
expect_error 2 "model directory not found" -- perplexity --model "$tmp/nope" --file "$tmp/text.txt"
expect_error 2 "device" -- perplexity --model "$M" --file "$tmp/text.txt" --device gpu
expect_error 2 "not supported on the CPU" -- perplexity --model "$M" --file "$tmp/text.txt" --device cpu --dtype fp16
expect_error 2 "--threads" -- perplexity --model "$M" --file "$tmp/text.txt" --device cpu --threads -1
expect_error 2 "frobnicate" -- perplexity --model "$M" --file "$tmp/text.txt" --frobnicate
cp -r "$M" "$tmp/x"; rm "$tmp/x/vocab.json"
expect_error 2 "missing vocab.json" -- perplexity --model "$tmp/x" --device cpu --file "$tmp/text.txt"; rm -rf "$tmp/x"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  expect_error 2 "--device cuda: " -- perplexity --model "$M" --file "$tmp/text.txt" --device cuda
fi

finish cli_perplexity
