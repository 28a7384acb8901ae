#!/usr/bin/env bash
# `gen chat` through the real binary: three piped turns whose stderr summaries show the KV cache
# reused on turns 2 and 3 with the exact counts, --no-cache giving the same replies, the context
# trimmed, Ctrl-C, and one-line errors for bad lines (the chat goes on) and bad flags (exit 2).
# Env: GEN (the gen binary), MAKE_MODEL (gen-make-model). GEN_TOKENIZER_DIR overrides the tokenizer.
set -u
source "$(dirname "$0")/cli_lib.sh"
make_model "$tmp/m" 2 2 32 128
M=$tmp/m
N=5
CHAT=("$GEN" chat --model "$M" -n $N --temperature 0 --device cpu)

# Tokens of a text, as gen's own prompt encoding counts them.
ntok() {
  "$GEN" --model "$M" --prompt "$1" -n 0 --json --device cpu 2>/dev/null |
    python3 -c "import json,sys; print(len(json.load(sys.stdin)['prompt_tokens']))"
}
# field TURN WHAT: a number from the turn's summary line ("reused", "computed", "generated", "context").
field() {
  local line
  line=$(grep "^\[chat\] turn $1: " "$tmp/err")
  case $2 in
    reused) sed -E 's/.*: ([0-9]+) tokens reused.*/\1/' <<<"$line" ;;
    computed) sed -E 's/.*, ([0-9]+) computed.*/\1/' <<<"$line" ;;
    generated) sed -E 's/.*, ([0-9]+) generated.*/\1/' <<<"$line" ;;
    context) sed -E 's/.*context ([0-9]+)\/.*/\1/' <<<"$line" ;;
  esac
}
# expect_turn TURN REUSED COMPUTED: the summary of that turn says so.
expect_turn() {
  local r c
  r=$(field "$1" reused)
  c=$(field "$1" computed)
  [ "$r" = "$2" ] && [ "$c" = "$3" ] && ok || bad "$4 turn $1: reused $r computed $c, expected $2 and $3 ($(cat "$tmp/err"))"
}

# ---- three piped turns: reuse on turns 2 and 3 ------------------------------------------------------
P1=$(ntok $'User: Hi\nAssistant:')
P2=$(ntok $'User: How are you?\nAssistant:')
P3=$(ntok $'User: Bye\nAssistant:')
NL=$(ntok $'\n')
printf 'Hi\nHow are you?\nBye\n' | "${CHAT[@]}" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 0 ] && ok || bad "piped chat exit $rc: $(cat "$tmp/err")"
[ "$(grep -c '^\[chat\] turn [123]: .* generated, .* ms/token, context .*/128, finish length$' "$tmp/err")" = 3 ] \
  && ok || bad "three turn summaries ending by length: $(cat "$tmp/err")"
[ "$(wc -l <"$tmp/out")" = 3 ] && ! grep -aq '^$' "$tmp/out" && ok || bad "stdout is not three replies: $(cat "$tmp/out")"
head -c 2 "$tmp/out" | grep -q '^> ' && bad "a prompt marker with stdin not a terminal" || ok
# Each reply ends by length: its last token was drawn but never computed, and a newline ends it in the
# conversation; both are prefilled with the next user piece. (The random model's replies do not end in
# a newline; if that changed, these counts would change with it.)
C1=$((P1 + N + NL))
C2=$((C1 + P2 + N + NL))
expect_turn 1 0 "$P1" cache
expect_turn 2 $((C1 - 1 - NL)) $((P2 + 1 + NL)) cache
expect_turn 3 $((C2 - 1 - NL)) $((P3 + 1 + NL)) cache
[ "$(field 3 context)" = $((C2 + P3 + N)) ] && ok || bad "turn 3 context: $(field 3 context)"
cp "$tmp/out" "$tmp/cached.out"

# --no-cache: the same replies, everything computed every turn.
printf 'Hi\nHow are you?\nBye\n' | "${CHAT[@]}" --no-cache >"$tmp/out" 2>"$tmp/err" || bad "--no-cache chat failed"
cmp -s "$tmp/out" "$tmp/cached.out" && ok || bad "--no-cache replies differ: $(cat "$tmp/out") vs $(cat "$tmp/cached.out")"
expect_turn 2 0 $((C1 + P2)) no-cache
expect_turn 3 0 $((C2 + P3)) no-cache

# A --system text, a blank line (not a turn) and CRLF input give the same reuse pattern.
S=$(ntok $'Be brief.\n')
printf 'Hi\r\n\nHow are you?\n' | "${CHAT[@]}" --system "Be brief." >"$tmp/out" 2>"$tmp/err" || bad "--system chat failed"
expect_turn 1 0 $((S + P1)) system
expect_turn 2 $((S + C1 - 1 - NL)) $((P2 + 1 + NL)) system
grep -q '^\[chat\] turn 3' "$tmp/err" && bad "a blank line made a turn" || ok

# ---- the context fills: the oldest turn is dropped, the system text kept --------------------------
# A context one token short of the three turns: turn 3 drops turn 1 and prefills what follows the
# system text again (the cache cannot shift; only tokens still at their positions are reused).
CTX=$((S + C2 + P3 + N - 1))
printf 'Hi\nHow are you?\nBye\n' | "${CHAT[@]}" --system "Be brief." --ctx $CTX >"$tmp/out" 2>"$tmp/err" \
  || bad "chat with a full context failed: $(cat "$tmp/err")"
line=$(grep '^\[chat\] context full: dropped the oldest turn; prefilling [0-9]* tokens again$' "$tmp/err")
again=$(sed -E 's/.*prefilling ([0-9]+) tokens.*/\1/' <<<"$line")
[ -n "$line" ] && [ "$again" = "$(field 3 computed)" ] && [ "$(field 3 reused)" -ge "$S" ] \
  && [ "$(field 3 reused)" -lt $((S + P1)) ] && [ "$(wc -l <"$tmp/out")" = 3 ] && ok \
  || bad "context trimming: $(cat "$tmp/err")"

# ---- bad lines: one error line for that turn, the chat goes on -----------------------------------
printf 'Hi\nok \xc3\x28 bad\nBye\n' | "${CHAT[@]}" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 0 ] && grep -qx 'error: invalid UTF-8 at byte 3 (stdin line 2)' "$tmp/err" \
  && [ "$(grep -c '^error: ' "$tmp/err")" = 1 ] && grep -q '^\[chat\] turn 2: ' "$tmp/err" \
  && ! grep -q '^\[chat\] turn 3' "$tmp/err" && [ "$(wc -l <"$tmp/out")" = 2 ] && ok \
  || bad "invalid UTF-8 line: exit $rc $(cat "$tmp/err")"
long=$(printf 'word %.0s' $(seq 1 40))
printf '%s\nHi\n' "$long" | "${CHAT[@]}" --ctx 24 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 0 ] && grep -qE '^error: the line takes [0-9]+ tokens: no room for a reply in the context of 24 \(stdin line 1\)$' "$tmp/err" \
  && grep -q '^\[chat\] turn 1: 0 tokens reused' "$tmp/err" && ok || bad "line beyond the context: exit $rc $(cat "$tmp/err")"
: | "${CHAT[@]}" >"$tmp/out" 2>"$tmp/err" && [ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ] && ok || bad "empty stdin"

# ---- bad flags: one line, exit 2, nothing on stdout -----------------------------------------------
expect_error 2 "frobnicate" -- chat --model "$M" --frobnicate
expect_error 2 "--max-new-tokens 0 is out of range" -- chat --model "$M" -n 0
expect_error 2 "max-new-tokens" -- chat --model "$M" -n lots
expect_error 2 "--top-p" -- chat --model "$M" --top-p 0
expect_error 2 "--temperature nan is out of range" -- chat --model "$M" --temperature nan
expect_error 2 "--ctx 129 is outside 1..128" -- chat --model "$M" --ctx 129
expect_error 2 "excludes" -- chat --model "$M" --use-cache --no-cache
expect_error 2 "device" -- chat --model "$M" --device gpu
expect_error 2 "not supported on the CPU" -- chat --model "$M" --device cpu --dtype fp16
expect_error 2 "model directory not found" -- chat --model "$tmp/nope"
expect_error 2 "invalid UTF-8 at byte 1 \(--system\)" -- chat --model "$M" --system $'a\xff'
expect_error 2 "system text is [0-9]+ tokens: it leaves no room for a turn in the context of 8" -- chat \
  --model "$M" --ctx 8 --system "$long"
"$GEN" chat --help >"$tmp/out" 2>&1 && grep -q -- "--no-cache" "$tmp/out" && grep -q -- "--system" "$tmp/out" \
  && ok || bad "chat --help"

# ---- Ctrl-C during a reply: the reply stops, the chat ends with exit 130 ----------------------------
"$MAKE_MODEL" --out "$tmp/slow" --layers 4 --heads 4 --embd 256 --positions 1024 --vocab $vocab "${tokflag[@]}" || exit 1
printf 'Tell me a long story\nAnd another\n' >"$tmp/in"
"$GEN" chat --model "$tmp/slow" -n 1000 --no-cache --temperature 0 --device cpu <"$tmp/in" >"$tmp/int.out" 2>"$tmp/int.err" &
pid=$!
for _ in $(seq 1 600); do
  [ "$(wc -c <"$tmp/int.out")" -gt 40 ] && break
  sleep 0.1
done
kill -INT "$pid"
wait "$pid"
rc=$?
[ $rc = 130 ] && grep -q '^\[chat\] turn 1: .*finish interrupted$' "$tmp/int.err" \
  && ! grep -q '^\[chat\] turn 2' "$tmp/int.err" && ok || bad "Ctrl-C: exit $rc $(cat "$tmp/int.err")"

finish cli_chat
