#!/usr/bin/env bash
# `gen chat` through the real binary: three piped turns whose stderr summaries show the KV cache
# reused on turns 2 and 3 with the exact counts, --no-cache giving the same replies, the context
# trimmed, Ctrl-C (stops a reply, the chat goes on; at the prompt it ends the chat), and one-line errors
# for bad lines (the chat goes on, exit 3) and bad flags (exit 2).
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

# ---- bad lines: one error line for that turn, the chat goes on, and exits 3 (as a batch does) --------
printf 'Hi\nok \xc3\x28 bad\nBye\n' | "${CHAT[@]}" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 3 ] && grep -qx 'error: invalid UTF-8 at byte 3 (stdin line 2)' "$tmp/err" \
  && [ "$(grep -c '^error: ' "$tmp/err")" = 1 ] && grep -q '^\[chat\] turn 2: ' "$tmp/err" \
  && ! grep -q '^\[chat\] turn 3' "$tmp/err" && [ "$(wc -l <"$tmp/out")" = 2 ] && ok \
  || bad "invalid UTF-8 line: exit $rc $(cat "$tmp/err")"
long=$(printf 'word %.0s' $(seq 1 40))
printf '%s\nHi\n' "$long" | "${CHAT[@]}" --ctx 24 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 3 ] && grep -qE '^error: the line takes [0-9]+ tokens: no room for a reply in the context of 24 \(stdin line 1\)$' "$tmp/err" \
  && grep -q '^\[chat\] turn 1: 0 tokens reused' "$tmp/err" && ok || bad "line beyond the context: exit $rc $(cat "$tmp/err")"
: | "${CHAT[@]}" >"$tmp/out" 2>"$tmp/err" && [ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ] && ok || bad "empty stdin"

# ---- bad flags: one line, exit 2, nothing on stdout -----------------------------------------------
expect_error 2 "frobnicate" -- chat --model "$M" --frobnicate
expect_error 2 "^error: --max-new-tokens 0 is out of range: must be in 1..16777216 \\(--max-new-tokens\\)$" -- chat --model "$M" -n 0
expect_error 2 "max-new-tokens" -- chat --model "$M" -n lots
expect_error 2 "--top-p" -- chat --model "$M" --top-p 0
expect_error 2 "--temperature nan is out of range" -- chat --model "$M" --temperature nan
expect_error 2 "--ctx 129 is out of range: must be in 0..128 \\(0: the model's n_positions\\)" -- chat --model "$M" --ctx 129
expect_error 2 "excludes" -- chat --model "$M" --use-cache --no-cache
expect_error 2 "device" -- chat --model "$M" --device gpu
expect_error 2 "not supported on the CPU" -- chat --model "$M" --device cpu --dtype fp16
expect_error 2 "model directory not found" -- chat --model "$tmp/nope"
expect_error 2 "invalid UTF-8 at byte 1 \(--system\)" -- chat --model "$M" --system $'a\xff'
expect_error 2 "system text is [0-9]+ tokens: it leaves no room for a turn in the context of 8" -- chat \
  --model "$M" --ctx 8 --system "$long"
"$GEN" chat --help >"$tmp/out" 2>&1 && grep -q -- "--no-cache" "$tmp/out" && grep -q -- "--system" "$tmp/out" \
  && ok || bad "chat --help"

# ---- Ctrl-C: it stops the reply and the chat goes on; at the prompt it ends the chat (130) ---------
"$MAKE_MODEL" --out "$tmp/slow" --layers 4 --heads 4 --embd 256 --positions 1024 --vocab $vocab "${tokflag[@]}" \
  >/dev/null || exit 1
# A driver: two lines, each reply cut by SIGINT once it shows; then SIGINT at the prompt ("int") or EOF.
# -n 700 leaves turn 1 in the context of 1024 for turn 2, with room for a cut reply of a few hundred
# tokens (the stand-in tokenizer makes one token a byte).
cat >"$tmp/drive.py" <<'PY'
import os, signal, subprocess, sys, time
gen, model, out, err, mode = sys.argv[1:6]
p = subprocess.Popen([gen, "chat", "--model", model, "-n", "700", "--temperature", "0", "--device", "cpu"],
                     stdin=subprocess.PIPE, stdout=open(out, "wb"), stderr=open(err, "wb"))
def wait_for(cond, what):
    t0 = time.time()
    while not cond():
        if p.poll() is not None or time.time() - t0 > 120:
            p.kill()
            sys.exit("gave up waiting for %s (exit %s): %s" % (what, p.poll(), open(err).read()))
        time.sleep(0.02)
for turn, line in ((1, b"Tell me a long story\n"), (2, b"And another\n")):
    start = os.path.getsize(out)
    p.stdin.write(line)
    p.stdin.flush()
    wait_for(lambda: os.path.getsize(out) > start + 40, "reply %d" % turn)
    p.send_signal(signal.SIGINT)
    wait_for(lambda: ("[chat] turn %d:" % turn) in open(err).read(), "turn %d's summary" % turn)
if mode == "int":
    p.send_signal(signal.SIGINT)
else:
    p.stdin.close()
print(p.wait(60))
PY
for mode in int eof; do
  rc=$(python3 "$tmp/drive.py" "$GEN" "$tmp/slow" "$tmp/int.out" "$tmp/int.err" $mode)
  [ "$mode" = int ] && want=130 || want=0
  [ "$rc" = $want ] && [ "$(grep -c '^\[chat\] turn [12]: .*finish interrupted$' "$tmp/int.err")" = 2 ] \
    && ! grep -q '^error' "$tmp/int.err" && [ "$(wc -l <"$tmp/int.out")" = 2 ] && ok \
    || bad "Ctrl-C ($mode): exit $rc, want $want: $(cat "$tmp/int.err")"
  # The cut reply stays in the conversation and the cache: turn 2 reuses all of turn 1 but the last
  # token drawn (never computed).
  cp "$tmp/int.err" "$tmp/err"
  [ "$(field 2 reused)" = $(($(field 1 context) - 1)) ] && ok || bad "Ctrl-C ($mode): reuse after a cut reply: $(cat "$tmp/err")"
done

finish cli_chat
