#!/usr/bin/env bash
# --prompts-file end to end: the same tokens per prompt at every batch size, JSON lines in input order,
# error lines for bad prompts, --output + --resume after SIGINT and after SIGKILL (every prompt exactly
# once), --compare, --trace and --stop.
set -u
source "$(dirname "$0")/cli_lib.sh"
make_model "$tmp/m"
M=$tmp/m

python3 - "$tmp/prompts.txt" <<'PY'
import random, sys
random.seed(4)
words = "the a cat dog sat on mat under tree KV cache GPU token of and".split()
with open(sys.argv[1], "w") as f:
    for i in range(20):
        f.write(" ".join(random.choice(words) for _ in range(random.randint(1, 12))) + "\n")
        if i % 7 == 3:
            f.write("\n")  # blank lines are skipped
PY
for b in 1 3 16; do
  "$GEN" --model "$M" --prompts-file "$tmp/prompts.txt" --batch-size $b -n 20 --temperature 0 --json --device cpu \
    >"$tmp/b$b.jsonl" 2>"$tmp/err" || bad "batch $b: $(cat "$tmp/err")"
done
python3 - "$tmp"/b1.jsonl "$tmp"/b3.jsonl "$tmp"/b16.jsonl "$tmp/prompts.txt" <<'PY' && ok || bad "batch sizes 1, 3, 16 differ"
import json, sys
prompts = [l.rstrip("\n") for l in open(sys.argv[4]) if l.strip()]
runs = [[json.loads(l) for l in open(p)] for p in sys.argv[1:4]]
for r in runs:
    assert [x["index"] for x in r] == list(range(20)), "input order"
    assert [x["prompt"] for x in r] == prompts
for i in range(20):
    assert runs[0][i]["tokens"] == runs[1][i]["tokens"] == runs[2][i]["tokens"], i
    assert runs[0][i]["text"] == runs[2][i]["text"]
PY
# Sampling with per-prompt seeds from a .jsonl file: the same text at batch 1 and 8.
python3 -c "
import json
for i in range(9):
    print(json.dumps({'prompt': 'Story %d:' % i, 'seed': 100 + i, 'temperature': 0.9, 'max_new_tokens': 5 + i}))
" >"$tmp/p.jsonl"
for b in 1 8; do
  "$GEN" --model "$M" --prompts-file "$tmp/p.jsonl" --batch-size $b --json --ignore-eos >"$tmp/s$b.jsonl" 2>/dev/null
done
python3 - "$tmp/s1.jsonl" "$tmp/s8.jsonl" <<'PY' && ok || bad "per-prompt seeds differ across batch sizes"
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
assert len(a) == 9 and [x["tokens"] for x in a] == [x["tokens"] for x in b]
assert [len(x["tokens"]) for x in a] == [5 + i for i in range(9)]
assert len({tuple(x["tokens"][:3]) for x in a}) > 1
PY

# A bad prompt gives its error line, the others run, and the exit code is 3.
{ echo "fine prompt"; printf 'bad \xff byte\n'; printf 'word %.0s' $(seq 1 80); echo; echo "also fine"; } >"$tmp/mixed.txt"
"$GEN" --model "$M" --prompts-file "$tmp/mixed.txt" -n 3 --json >"$tmp/out" 2>"$tmp/err"; rc=$?
python3 - "$tmp/out" <<'PY' && [ $rc = 3 ] && ok || bad "error lines: rc=$rc $(cat "$tmp/out" "$tmp/err")"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert [x["index"] for x in r] == [0, 1, 2, 3]
assert "tokens" in r[0] and "tokens" in r[3]
assert r[1]["error"] == "invalid UTF-8 at byte 4 of line 2", r[1]
assert "longer than the context of 64" in r[2]["error"], r[2]
PY

# On a terminal (script(1) makes one) a progress line goes to stderr and is cleared at the end; a pipe
# gets none.
if command -v script >/dev/null 2>&1; then
  script -qec "'$GEN' --model '$M' --prompts-file '$tmp/prompts.txt' -n 4 --json --device cpu >/dev/null" /dev/null \
    >"$tmp/tty" 2>&1
  grep -aqE $'\r\[gen\] [0-9]+/20 prompts, [0-9]+ tokens, [0-9.]+ tok/s, ~[0-9]+m[0-9]{2}s left' "$tmp/tty" \
    && grep -aq $'\r\033\[K\[gen\] 20 prompts finished' "$tmp/tty" && ok || bad "progress line: $(od -c "$tmp/tty" | head -5)"
  "$GEN" --model "$M" --prompts-file "$tmp/prompts.txt" -n 4 --json --device cpu 2>"$tmp/err" >/dev/null
  ! grep -q 'left' "$tmp/err" && ok || bad "progress line on a pipe"
fi

# ---- --output and --resume: an interrupted run loses no finished prompt and repeats none ----------
make_model "$tmp/slow" 4 4 256 1024
for i in $(seq 1 24); do echo "Prompt number $i is here"; done >"$tmp/many.txt"
RUN=(--model "$tmp/slow" --prompts-file "$tmp/many.txt" --batch-size 4 -n 40 --temperature 0 --ignore-eos)
"$GEN" "${RUN[@]}" --json >"$tmp/ref.jsonl" 2>/dev/null || bad "reference run"
# stop_after SIGNAL FILE: start a run writing FILE, send SIGNAL once it holds 3 lines.
stop_after() {
  "$GEN" "${RUN[@]}" --output "$2" ${3:-} >"$tmp/stop.out" 2>"$tmp/stop.err" &
  local pid=$! i
  for i in $(seq 1 300); do
    [ -f "$2" ] && [ "$(wc -l <"$2")" -ge 3 ] && break
    sleep 0.05
  done
  kill -"$1" "$pid"
  wait "$pid"
}
check_complete() {  # check_complete FILE: every index exactly once, tokens as in the reference run
  python3 - "$1" "$tmp/ref.jsonl" <<'PY'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
ref = {x["index"]: x["tokens"] for x in map(json.loads, open(sys.argv[2]))}
idx = sorted(x["index"] for x in got)
assert idx == list(range(24)), idx
assert all(x["tokens"] == ref[x["index"]] for x in got)
assert open(sys.argv[1], "rb").read().endswith(b"\n")
PY
}
stop_after INT "$tmp/o1.jsonl"; rc=$?
n1=$(wc -l <"$tmp/o1.jsonl")
[ $rc = 130 ] && [ "$n1" -lt 24 ] && grep -q -- "--resume to finish" "$tmp/stop.err" && [ ! -s "$tmp/stop.out" ] && ok \
  || bad "SIGINT in a batch run: rc=$rc, $n1 lines, $(cat "$tmp/stop.err")"
python3 -c "
import json, sys
for l in open(sys.argv[1]): assert json.loads(l)['finish_reason'] != 'interrupted'
" "$tmp/o1.jsonl" && ok || bad "an interrupted prompt was written"
"$GEN" "${RUN[@]}" --output "$tmp/o1.jsonl" --resume >/dev/null 2>"$tmp/err" && check_complete "$tmp/o1.jsonl" && ok \
  || bad "resume after SIGINT: $(cat "$tmp/err")"
grep -q "$n1 already in the output" "$tmp/err" && ok || bad "resume summary: $(cat "$tmp/err")"
# SIGKILL, and a line cut in the middle (as a kill during a write leaves it).
stop_after KILL "$tmp/o2.jsonl"
head -c 37 "$tmp/ref.jsonl" >>"$tmp/o2.jsonl"
"$GEN" "${RUN[@]}" --output "$tmp/o2.jsonl" --resume >/dev/null 2>"$tmp/err" && check_complete "$tmp/o2.jsonl" \
  && grep -q "dropped a partial last line" "$tmp/err" && ok || bad "resume after SIGKILL: $(cat "$tmp/err")"
# A finished file: --resume has nothing to do and changes nothing.
cp "$tmp/o2.jsonl" "$tmp/o2.copy"
"$GEN" "${RUN[@]}" --output "$tmp/o2.jsonl" --resume >/dev/null 2>&1 && cmp -s "$tmp/o2.jsonl" "$tmp/o2.copy" && ok \
  || bad "resume of a finished file"

# ---- --compare, --trace, --stop ---------------------------------------------------------------------
"$GEN" --model "$M" --prompt "Compare me" -n 30 --ignore-eos --compare --trace "$tmp/t.csv" >"$tmp/out" 2>/dev/null \
  && grep -q "outputs identical: yes" "$tmp/out" && grep -q "speed-up with the cache" "$tmp/out" && ok \
  || bad "--compare table: $(cat "$tmp/out")"
python3 - "$tmp/t.csv" <<'PY' && ok || bad "--trace of --compare"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert list(rows[0]) == ["mode", "step", "context", "batch", "step_ms"]
for mode in ("cache", "no-cache"):
    r = [x for x in rows if x["mode"] == mode]
    assert [int(x["step"]) for x in r] == list(range(30)), mode
    assert all(float(x["step_ms"]) > 0 and x["batch"] == "1" for x in r)
    ctx = [int(x["context"]) for x in r]
    assert ctx == list(range(ctx[0], ctx[0] + 30)), ctx
PY
"$GEN" --model "$M" --prompt "Compare me" -n 30 --ignore-eos --compare --json >"$tmp/out" 2>/dev/null
python3 - "$tmp/out" <<'PY' && ok || bad "--compare --json"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1
j = json.loads(lines[0])
assert j["identical"] is True and j["speedup"] > 0
assert j["cache"]["use_cache"] is True and j["no_cache"]["use_cache"] is False
assert j["cache"]["tokens"] == j["no_cache"]["tokens"] and len(j["cache"]["tokens"]) == 30
assert j["cache"]["decode_ms_per_token_last_tenth"] > 0
PY
"$GEN" --model "$M" --prompt "Stop" -n 40 --ignore-eos --temperature 0 --json >"$tmp/full" 2>/dev/null
stop=$(python3 -c "
import json, sys
t = json.load(open(sys.argv[1]))['text']
i = next(i for i in range(2, len(t) - 1) if t[i:i+2].isascii() and t[i:i+2].strip() and '\"' not in t[i:i+2] and '\\\\' not in t[i:i+2])
print(t[i:i+2])" "$tmp/full")
"$GEN" --model "$M" --prompt "Stop" -n 40 --ignore-eos --temperature 0 --json --stop "$stop" >"$tmp/out" 2>/dev/null
python3 - "$tmp/out" "$tmp/full" "$stop" <<'PY' && ok || bad "--stop '$stop'"
import json, sys
r, full = (json.load(open(p)) for p in sys.argv[1:3])
assert r["finish_reason"] == "stop" and sys.argv[3] in r["text"], r
assert full["tokens"][:len(r["tokens"])] == r["tokens"] and len(r["tokens"]) < 40
PY
"$GEN" --model "$M" --prompt "x" -n 3 --trace "$tmp/t2.csv" >/dev/null 2>&1 && [ "$(wc -l <"$tmp/t2.csv")" = 4 ] && ok \
  || bad "--trace rows"

# ---- usage errors ---------------------------------------------------------------------------------
cp "$tmp/o1.jsonl" "$tmp/o1.before"
expect_error 2 "--resume needs --output" -- --model "$M" --prompts-file "$tmp/prompts.txt" --resume
expect_error 2 "--output goes with --prompts-file" -- --model "$M" --prompt hi --output "$tmp/x.jsonl"
expect_error 2 "pass --resume" -- --model "$M" --prompts-file "$tmp/prompts.txt" --output "$tmp/o1.jsonl"
expect_error 2 "different prompt" -- --model "$M" --prompts-file "$tmp/prompts.txt" --output "$tmp/o1.jsonl" --resume
expect_error 2 "no prompts in the file" -- --model "$M" --prompts-file /dev/null
expect_error 2 "cannot read prompts file" -- --model "$M" --prompts-file "$tmp/none.txt"
expect_error 2 "cannot read prompts file: it is a directory" -- --model "$M" --prompts-file "$tmp"
expect_error 2 "^error: --batch-size 0 is out of range: must be in 1..4096 \\(--batch-size\\)$" -- --model "$M" --prompts-file "$tmp/prompts.txt" --batch-size 0
expect_error 2 "excludes" -- --model "$M" --prompt hi --prompts-file "$tmp/prompts.txt"
expect_error 2 "--compare takes one prompt" -- --model "$M" --prompts-file "$tmp/prompts.txt" --compare
expect_error 2 "excludes" -- --model "$M" --prompt hi --compare --no-cache
expect_error 2 "cannot write the trace file" -- --model "$M" --prompt hi --trace "$tmp/no/such/t.csv"
expect_error 2 "model directory not found" -- --model "$tmp/none" --prompt hi --trace "$tmp/t3.csv"
[ ! -e "$tmp/t3.csv" ] && ok || bad "a failed run left its trace file"
# A batch whose KV cache cannot fit is refused before anything is allocated (4096 x 8192 positions x
# 2 layers x 1024 x 4 bytes x 2 = 512 GiB: a batch run's cache holds its longest prompt plus -n, at
# most the context).
"$MAKE_MODEL" --out "$tmp/long" --layers 2 --heads 8 --embd 1024 --positions 8192 --vocab $vocab "${tokflag[@]}" >/dev/null
seq 1 4096 >"$tmp/4096.txt"
expect_error 2 "KV cache for 4096 sequences x 8192 positions needs 512.00 GiB, more than the .* available; lower --batch-size or --ctx" \
  -- --model "$tmp/long" --prompts-file "$tmp/4096.txt" --batch-size 4096 -n 9000 --device cpu
# Sized to the run: 64 slots x (the longest prompt + 2) positions, not x 8192.
head -n 200 "$tmp/4096.txt" >"$tmp/200.txt"
"$GEN" --model "$tmp/long" --prompts-file "$tmp/200.txt" --batch-size 64 -n 2 --device cpu --json \
  >"$tmp/200.jsonl" 2>/dev/null && python3 -c "
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 200, len(lines)
need = max(len(x['prompt_tokens']) for x in lines) + 2
assert all(x['kv_cache_bytes'] == 64 * need * 2 * 2 * 1024 * 4 for x in lines), (need, lines[0]['kv_cache_bytes'])
" "$tmp/200.jsonl" && ok || bad "a batch run's KV cache is not sized to its longest prompt plus -n"
cmp -s "$tmp/o1.jsonl" "$tmp/o1.before" && ok || bad "a refused run changed the output file"
finish cli_batch
