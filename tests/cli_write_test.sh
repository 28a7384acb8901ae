#!/usr/bin/env bash
# Every write is checked, through the real binary: stdout on /dev/full, closed (>&-) and on a pipe whose
# reader left (SIGPIPE ignored), for every kind of output; --output and --trace files that cannot be
# written; a full disk in the middle of an --output line (whole lines kept); one writer per --output
# file; a resumed file with an index twice; an interrupted --compare (what it has, exit 130).
# Env: GEN (the gen binary), MAKE_MODEL (gen-make-model). GEN_TOKENIZER_DIR overrides the tokenizer.
set -u
source "$(dirname "$0")/cli_lib.sh"
make_model "$tmp/m"
M=$tmp/m
for i in $(seq 1 6); do echo "prompt number $i"; done >"$tmp/prompts.txt"
printf 'The cat sat on the mat. The dog sat on the log.\n' >"$tmp/text.txt"

# A launcher whose stdout is a pipe nobody reads any more (the read end closed before gen starts) and
# whose SIGPIPE is ignored: every write gets EPIPE, with no race.
cat >"$tmp/broken_pipe.py" <<'PY'
import os, signal, subprocess, sys
r, w = os.pipe()
os.close(r)
stdin = open(os.environ.get("IN", "/dev/null"), "rb")
p = subprocess.run(sys.argv[1:], stdin=stdin, stdout=w, stderr=open(os.environ["ERR"], "wb"),
                   preexec_fn=lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN))
sys.exit(p.returncode)
PY

# one_write_error RC REASON WHAT: exit 1 and stderr exactly "error: writing stdout failed: REASON".
one_write_error() {
  local rc=$1 reason=$2 what=$3
  if [ "$rc" = 1 ] && [ "$(cat "$tmp/err")" = "error: writing stdout failed: $reason" ]; then
    ok
  else
    bad "$what: exit $rc, stderr: $(head -c 400 "$tmp/err")"
  fi
}
# expect_stdout_checked NAME ARGS...: stdout on /dev/full, closed, and a broken pipe: each is one error
# line and exit 1. IN (a file) feeds stdin, /dev/null by default.
expect_stdout_checked() {
  local name=$1 in=${IN:-/dev/null}
  shift
  "$GEN" "$@" <"$in" >/dev/full 2>"$tmp/err"
  one_write_error $? "No space left on device" "$name >/dev/full"
  "$GEN" "$@" <"$in" 2>"$tmp/err" >&-
  one_write_error $? "Bad file descriptor" "$name >&-"
  IN=$in ERR=$tmp/err python3 "$tmp/broken_pipe.py" "$GEN" "$@"
  one_write_error $? "Broken pipe" "$name | (reader gone)"
}

# ---- stdout: every kind of output --------------------------------------------------------------------
GENERATE=(--model "$M" --device cpu -n 8 --ignore-eos)
expect_stdout_checked "streamed text" "${GENERATE[@]}" --prompt "Hello"
expect_stdout_checked "--json" "${GENERATE[@]}" --prompt "Hello" --json
expect_stdout_checked "batch text" "${GENERATE[@]}" --prompts-file "$tmp/prompts.txt"
expect_stdout_checked "batch --json" "${GENERATE[@]}" --prompts-file "$tmp/prompts.txt" --json
expect_stdout_checked "--compare" "${GENERATE[@]}" --prompt "Hello" --compare
expect_stdout_checked "--compare --json" "${GENERATE[@]}" --prompt "Hello" --compare --json
expect_stdout_checked "perplexity" perplexity --model "$M" --file "$tmp/text.txt" --device cpu
expect_stdout_checked "perplexity --json" perplexity --model "$M" --file "$tmp/text.txt" --device cpu --json
expect_stdout_checked "info" info --model gpt2
expect_stdout_checked "info --json" info --model gpt2 --json
printf 'Hi\nBye\n' >"$tmp/chat.in"
IN=$tmp/chat.in expect_stdout_checked "chat" chat --model "$M" --device cpu -n 4 --temperature 0
expect_stdout_checked "--help" --help
expect_stdout_checked "--version" --version
expect_stdout_checked "help chat" help chat
expect_stdout_checked "perplexity --help" perplexity --help
expect_stdout_checked "info --help" info --help
# A reader that leaves after the first byte, in the middle of a stream.
(trap '' PIPE; "$GEN" --model "$M" --device cpu -n 60 --ignore-eos --prompt "Hello" 2>"$tmp/err" | head -c 1 >/dev/null
 exit "${PIPESTATUS[0]}")
one_write_error $? "Broken pipe" "streamed text | head -c 1"
# A closed stdout is no free file number: the --trace file opened next must not take the JSON line.
"$GEN" "${GENERATE[@]}" --prompt "Hello" --json --trace "$tmp/t.csv" 2>"$tmp/err" >&-
one_write_error $? "Bad file descriptor" "--trace with stdout closed"
! grep -q '"index"' "$tmp/t.csv" && ok || bad "the JSON line went into the trace: $(head -c 300 "$tmp/t.csv")"

# ---- --output and --trace files ---------------------------------------------------------------------
expect_error 1 "^error: writing /dev/full failed: No space left on device$" -- "${GENERATE[@]}" \
  --prompts-file "$tmp/prompts.txt" --output /dev/full
"$GEN" "${GENERATE[@]}" --prompt "Hello" --json --trace /dev/full >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 1 ] && [ "$(cat "$tmp/err")" = "error: writing /dev/full failed: No space left on device" ] && [ -c /dev/full ] \
  && ok || bad "--trace /dev/full: exit $rc $(cat "$tmp/err")"

# A disk that fills in the middle of a line: the file keeps its whole lines. A small tmpfs in a mount
# namespace of our own (root, or a user namespace), where the system allows one.
if unshare -m true 2>/dev/null; then ns=(unshare -m); elif unshare -rm true 2>/dev/null; then ns=(unshare -rm); else ns=(); fi
if [ ${#ns[@]} -gt 0 ]; then
  for i in $(seq 1 60); do echo "prompt number $i"; done >"$tmp/many.txt"
  mkdir "$tmp/small"
  "${ns[@]}" bash -c 'mount -t tmpfs -o size=12k tmpfs "$1" || exit 99
    "$2" --model "$3" --device cpu -n 20 --ignore-eos --prompts-file "$4" --output "$1/out.jsonl" 2>"$5"
    rc=$?; cp "$1/out.jsonl" "$6"; exit $rc' _ "$tmp/small" "$GEN" "$M" "$tmp/many.txt" "$tmp/err" "$tmp/full.jsonl"
  rc=$?
  if [ $rc = 99 ]; then
    echo "note: no tmpfs mount here: the full-disk case is covered by the unit test only"
  else
    [ $rc = 1 ] && [ "$(cat "$tmp/err")" = "error: writing $tmp/small/out.jsonl failed: No space left on device" ] \
      && [ "$(tail -c 1 "$tmp/full.jsonl" | od -An -c | tr -d ' ')" = '\n' ] \
      && python3 -c "import json,sys; [json.loads(l) for l in open(sys.argv[1])]" "$tmp/full.jsonl" \
      && [ "$(wc -l <"$tmp/full.jsonl")" -lt 60 ] && ok \
      || bad "a full disk: exit $rc $(cat "$tmp/err"), last bytes: $(tail -c 60 "$tmp/full.jsonl")"
  fi
else
  echo "note: no mount namespace here: the full-disk case is covered by the unit test only"
fi

# ---- one writer per --output file; an index twice is not one run ------------------------------------
: >"$tmp/locked.jsonl"
if command -v flock >/dev/null; then
  flock "$tmp/locked.jsonl" bash -c 'touch "$1"; while [ -e "$1" ]; do sleep 0.1; done' _ "$tmp/holding" &
else  # util-linux missing: the same lock from python
  python3 -c 'import fcntl,os,sys,time; f=open(sys.argv[1],"a"); fcntl.flock(f,fcntl.LOCK_EX); open(sys.argv[2],"w")
while os.path.exists(sys.argv[2]): time.sleep(0.1)' "$tmp/locked.jsonl" "$tmp/holding" &
fi
holder=$!
for _ in $(seq 1 100); do [ -e "$tmp/holding" ] && break; sleep 0.05; done
expect_error 2 "^error: $tmp/locked.jsonl is being written by another gen run \(locked\) \(--output\)$" -- \
  "${GENERATE[@]}" --prompts-file "$tmp/prompts.txt" --output "$tmp/locked.jsonl" --resume
rm -f "$tmp/holding"
wait "$holder"
"$GEN" "${GENERATE[@]}" --prompts-file "$tmp/prompts.txt" --output "$tmp/locked.jsonl" --resume 2>/dev/null \
  && [ "$(wc -l <"$tmp/locked.jsonl")" = 6 ] && ok || bad "the file once the lock is gone"
head -n 2 "$tmp/locked.jsonl" >"$tmp/twice.jsonl"
sed -n 2p "$tmp/locked.jsonl" >>"$tmp/twice.jsonl"
idx=$(sed -n 2p "$tmp/locked.jsonl" | python3 -c "import json,sys; print(json.load(sys.stdin)['index'])")
expect_error 2 "^error: index $idx appears twice in the output file; not one run \($tmp/twice.jsonl:3\)$" -- \
  "${GENERATE[@]}" --prompts-file "$tmp/prompts.txt" --output "$tmp/twice.jsonl" --resume

# ---- an interrupted --compare prints what it has, exit 130 ------------------------------------------
# A long prompt: the cached run is quick, the uncached one recomputes the whole prompt every step.
make_model "$tmp/long" 2 2 64 1024
# The stand-in tokenizer gives one token a byte: 100 words are 500 tokens, and 300 more fit in 1024.
if [ "$real_tok" = 1 ]; then words=700; else words=100; fi
printf 'word %.0s' $(seq 1 $words) >"$tmp/long.txt"
# compare_int WHEN OUT ERR ARGS...: SIGINT once stderr says the run WHEN ("with", "without") started
# and (with GROW=N) stdout holds more than N bytes, else 0.3 s later. WHEN a number: SIGINT after as
# many seconds. WHEN trace:FILE: once the --trace FILE has a no-cache row (--json prints no progress).
# Sets $took: seconds to the SIGINT.
compare_int() {
  local when=$1 out=$2 err=$3
  shift 3
  local t0=$(date +%s.%N)
  "$GEN" --model "${MODEL:-$tmp/long}" --device cpu --ignore-eos --temperature 0 --compare "$@" >"$out" 2>"$err" &
  local pid=$!
  case $when in
    with | without) for _ in $(seq 1 600); do
        grep -q "^\[gen\] --compare: running $when the KV cache" "$err" && break
        sleep 0.05
      done ;;
    trace:*) for _ in $(seq 1 600); do
        grep -q "^no-cache," "${when#trace:}" 2>/dev/null && break
        sleep 0.05
      done ;;
    *) sleep "$when" ;;
  esac
  took=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t0" "$(date +%s.%N)")
  if [ "${GROW:-0}" -gt 0 ]; then
    for _ in $(seq 1 600); do
      [ "$(wc -c <"$out")" -gt "$GROW" ] && break
      sleep 0.05
    done
  else
    sleep 0.3
  fi
  kill -INT "$pid"
  wait "$pid"
}
compare_int without "$tmp/c.out" "$tmp/c.err" --prompt-file "$tmp/long.txt" -n 300
rc=$?
[ $rc = 130 ] && grep -qE '^finish +length +interrupted$' "$tmp/c.out" && grep -qE '^generated tokens +300 +[0-9]+$' "$tmp/c.out" \
  && grep -q '^interrupted: the runs are incomplete' "$tmp/c.out" && ! grep -q '^speed-up' "$tmp/c.out" && ok \
  || bad "--compare cut in the uncached run: exit $rc $(cat "$tmp/c.out") $(cat "$tmp/c.err")"
# --json: no progress on stderr; the trace's first no-cache row says the second run began.
compare_int "trace:$tmp/c.csv" "$tmp/c.out" "$tmp/c.err" --prompt-file "$tmp/long.txt" -n 300 --json --trace "$tmp/c.csv"
rc=$?
python3 - "$tmp/c.out" <<'PY' && [ $rc = 130 ] && ok || bad "--compare --json cut in the uncached run: exit $rc $(cat "$tmp/c.err")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
j = json.loads(lines[0])
assert j["interrupted"] is True and j["speedup"] is None and j["identical"] is None, j
assert j["no_cache"]["finish_reason"] == "interrupted" and len(j["no_cache"]["tokens"]) < 300, j
# The SIGINT came once the second run had begun: the first is whole.
assert j["cache"]["finish_reason"] == "length" and len(j["cache"]["tokens"]) == 300, j
PY
# Cut in the first run: the second never starts ("-" in its column).
# A wider model, so that its 1000 cached tokens take about a second even with the stand-in tokenizer's
# small vocabulary (on the 64-wide one they took 60 ms, ending before the SIGINT).
make_model "$tmp/wide" 8 8 512 1024
MODEL=$tmp/wide GROW=45 compare_int with "$tmp/c.out" "$tmp/c.err" --prompt "Hello" -n 1000
rc=$?
[ $rc = 130 ] && grep -qE '^finish +interrupted +interrupted$' "$tmp/c.out" && grep -qE '^generated tokens +[0-9]+ +-$' "$tmp/c.out" \
  && ! grep -q 'running without' "$tmp/c.err" && ok \
  || bad "--compare cut in the cached run: exit $rc $(cat "$tmp/c.out") $(cat "$tmp/c.err")"

finish cli_write
