#!/usr/bin/env bash
# --shard K/N|slurm and gen merge end to end, through the real binary: the shards of a --prompts-file run
# (with --samples) and of a gen perplexity list, merged, equal one unsharded run line by line; a shard
# cut by SIGKILL and resumed; --resume and merge refuse another run's lines; merge names what is missing
# (exit 3) and refuses disagreeing duplicates (exit 2); the Slurm variables and their errors.
# Env: GEN (the gen binary), MAKE_MODEL (gen-make-model). GEN_TOKENIZER_DIR overrides the tokenizer.
set -u
source "$(dirname "$0")/cli_lib.sh"
make_model "$tmp/m" 2 2 32 128
M=$tmp/m
for i in $(seq 0 22); do echo "Prompt $i: tell me about the number $((i * 7))"; done >"$tmp/p.txt"
COMMON=(--model "$M" --device cpu --prompts-file "$tmp/p.txt" --temperature 0.8 --seed 11 --samples 2 --batch-size 3)
RUN=("${COMMON[@]}" -n 6)
OTHER=("${COMMON[@]}" -n 7)  # another run: one setting differs

# same A B: the two files hold the same results, line by line (timing, device and memory fields aside).
same() {
  python3 - "$1" "$2" <<'PY'
import json, sys
skip = {"timing", "device", "kv_cache_bytes", "kv_cache_bytes_used", "tokens_per_s"}
load = lambda f: [{k: v for k, v in json.loads(l).items() if k not in skip} for l in open(f)]
a, b = load(sys.argv[1]), load(sys.argv[2])
assert len(a) == len(b) and len(a) > 0, (len(a), len(b))
for x, y in zip(a, b):
    assert x == y, (x, y)
PY
}

# ---- sharded, merged: the unsharded run ------------------------------------------------------------
"$GEN" "${RUN[@]}" --json >"$tmp/full.jsonl" 2>"$tmp/err" || bad "unsharded run: $(cat "$tmp/err")"
[ "$(wc -l <"$tmp/full.jsonl")" = 46 ] && ok || bad "unsharded: $(wc -l <"$tmp/full.jsonl") lines, not 23 x 2"
for k in 0 1 2 3; do
  "$GEN" "${RUN[@]}" --shard $k/4 --output "$tmp/s$k.jsonl" 2>"$tmp/err$k" || bad "shard $k/4: $(cat "$tmp/err$k")"
done
grep -q "shard 1/4: 6 of 23 prompts (index % 4 == 1)" "$tmp/err1" && ok || bad "shard summary: $(cat "$tmp/err1")"
python3 -c "
import json, sys
idx = sorted({json.loads(l)['index'] for l in open('$tmp/s3.jsonl')})
assert idx == [3, 7, 11, 15, 19], idx" && ok || bad "shard 3/4 holds the indices i % 4 == 3, as global indices"
"$GEN" merge "$tmp"/s{3,1,0,2}.jsonl --expect 23 -o "$tmp/merged.jsonl" 2>"$tmp/err" && same "$tmp/merged.jsonl" "$tmp/full.jsonl" \
  && ok || bad "merged shards != unsharded run: $(cat "$tmp/err")"
grep -q "merged 46 lines (23 indices, 2 samples each) from 4 files" "$tmp/err" && ok || bad "merge summary: $(cat "$tmp/err")"
# The shard's stdout (--json): its own prompts, in index order; the same lines as its --output file.
"$GEN" "${RUN[@]}" --shard 2/4 --json >"$tmp/s2.out" 2>/dev/null && python3 -c "
import json
a = [(j['index'], j['sample']) for j in map(json.loads, open('$tmp/s2.out'))]
assert a == [(i, s) for i in range(2, 23, 4) for s in (0, 1)], a" && sort "$tmp/s2.out" >"$tmp/s2.a" \
  && sort "$tmp/s2.jsonl" >"$tmp/s2.b" && same "$tmp/s2.a" "$tmp/s2.b" && ok || bad "shard 2/4 on stdout, in order"
# Without --seed each run draws its own seed (recorded in each line): the shards are still one run.
NOSEED=(--model "$M" --device cpu --prompts-file "$tmp/p.txt" --temperature 0.8 -n 2)
"$GEN" "${NOSEED[@]}" --shard 0/2 --json 2>/dev/null | head -1 >"$tmp/r0.json"
"$GEN" "${NOSEED[@]}" --shard 1/2 --json 2>/dev/null | head -1 >"$tmp/r1.json"
python3 -c "
import json
a, b = json.load(open('$tmp/r0.json')), json.load(open('$tmp/r1.json'))
assert a['run'] == b['run'] and a['seed'] != b['seed'], (a['run'], b['run'], a['seed'], b['seed'])" \
  && ok || bad "random seeds: one run fingerprint, each line its own seed"

# ---- a shard killed in the middle, resumed: nothing lost, nothing twice ----------------------------
# 12 prompts, one thread, one prompt at a time, 60 tokens: about 0.1 s or more a prompt, so that the
# signals land in the middle of a shard. GPT-2's vocabulary makes the LM head the cost (a narrow model);
# the byte-level stand-in's 600 ids make the layers the cost (a wider one).
head -12 "$tmp/p.txt" >"$tmp/p12.txt"
if [ "$real_tok" = 1 ]; then make_model "$tmp/slow" 2 2 128 512; else make_model "$tmp/slow" 4 4 512 512; fi
SLOW=(--model "$tmp/slow" --device cpu --prompts-file "$tmp/p12.txt" -n 60 --ignore-eos --temperature 0 --seed 5 --batch-size 1 --threads 1)
"$GEN" "${SLOW[@]}" --json >"$tmp/slow_full.jsonl" 2>/dev/null
"$GEN" "${SLOW[@]}" --shard 0/2 --output "$tmp/k0.jsonl" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 200); do [ "$(wc -l <"$tmp/k0.jsonl" 2>/dev/null || echo 0)" -ge 2 ] && break; sleep 0.02; done
kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
n=$(wc -l <"$tmp/k0.jsonl")
[ "$n" -ge 2 ] && [ "$n" -lt 6 ] && ok || bad "the kill should land in the middle of shard 0/2 (it wrote $n of 6 lines)"
"$GEN" "${SLOW[@]}" --shard 0/2 --output "$tmp/k0.jsonl" --resume >/dev/null 2>"$tmp/err" || bad "resume: $(cat "$tmp/err")"
# SIGTERM (scancel, a Slurm requeue) stops after the current step: whole lines only, exit 130, resumable.
"$GEN" "${SLOW[@]}" --shard 1/2 --output "$tmp/k1.jsonl" >/dev/null 2>"$tmp/term.err" &
pid=$!
for _ in $(seq 1 200); do [ "$(wc -l <"$tmp/k1.jsonl" 2>/dev/null || echo 0)" -ge 2 ] && break; sleep 0.02; done
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
n=$(wc -l <"$tmp/k1.jsonl")
[ $rc = 130 ] && [ "$n" -ge 2 ] && [ "$n" -lt 6 ] && [ "$(tail -c 1 "$tmp/k1.jsonl" | od -An -c | tr -d ' ')" = '\n' ] \
  && grep -q -- "--resume to finish" "$tmp/term.err" && ok || bad "SIGTERM: exit $rc, $n of 6 lines, $(cat "$tmp/term.err")"
"$GEN" "${SLOW[@]}" --shard 1/2 --output "$tmp/k1.jsonl" --resume >/dev/null 2>"$tmp/err" && grep -q "$n already in the output" "$tmp/err" \
  && ok || bad "resume after SIGTERM: $(cat "$tmp/err")"
"$GEN" merge "$tmp/k0.jsonl" "$tmp/k1.jsonl" --expect 12 >"$tmp/k.jsonl" 2>"$tmp/err" && same "$tmp/k.jsonl" "$tmp/slow_full.jsonl" \
  && ok || bad "killed, resumed and merged != unsharded: $(cat "$tmp/err")"

# -o into something that is not a regular file (here a FIFO; /dev/null is one too) is written in place:
# the atomic rename would have replaced it with a regular file.
mkfifo "$tmp/fifo"
cat "$tmp/fifo" >"$tmp/fifo.out" &
"$GEN" merge "$tmp"/s{0,1,2,3}.jsonl -o "$tmp/fifo" 2>/dev/null
wait
[ -p "$tmp/fifo" ] && cmp -s "$tmp/fifo.out" "$tmp/merged.jsonl" && ok || bad "merge -o FIFO: replaced, or not the merged lines"
expect_error 1 "writing .* failed: Is a directory" -- merge "$tmp/s0.jsonl" -o "$tmp"

# ---- what merge and --resume refuse ----------------------------------------------------------------
"$GEN" merge "$tmp"/s{0,1,3}.jsonl --expect 23 >"$tmp/part.jsonl" 2>"$tmp/err"
rc=$?
[ $rc = 3 ] && grep -q "^error: 12 of 46 results missing: 2, 6, 10, 14, 18, 22$" "$tmp/err" && [ "$(wc -l <"$tmp/part.jsonl")" = 34 ] \
  && ok || bad "a missing shard: exit $rc, $(cat "$tmp/err")"
"$GEN" "${OTHER[@]}" --shard 2/4 --output "$tmp/other.jsonl" 2>/dev/null
expect_error 2 "is from another run than .*s0.jsonl:1 .*other.jsonl:1" -- merge "$tmp/s0.jsonl" "$tmp/other.jsonl"
expect_error 2 "lines are from another run .*s2.jsonl:1" -- "${OTHER[@]}" --shard 2/4 --output "$tmp/s2.jsonl" --resume
expect_error 2 "index 2 is not in shard 1/4" -- "${RUN[@]}" --shard 1/4 --output "$tmp/s2.jsonl" --resume
python3 -c "
import json
l = json.loads(open('$tmp/s1.jsonl').readline()); l['text'] += '!'
print(json.dumps(l))" >"$tmp/bad.jsonl"
expect_error 2 "index 1 is also in .*s1.jsonl:1 with a different result" -- merge "$tmp/s1.jsonl" "$tmp/bad.jsonl"
echo '{"index": 0, "text": "x"}' >"$tmp/norun.jsonl"
expect_error 2 "no \"run\"" -- merge "$tmp/norun.jsonl"
expect_error 2 "not a JSON line .*p.txt:1" -- merge "$tmp/p.txt"
expect_error 2 "cannot read shard file" -- merge "$tmp/none.jsonl"
expect_error 2 "beyond --expect 5" -- merge "$tmp/s1.jsonl" --expect 5
expect_error 2 "out of range: K must be in 0..3" -- "${RUN[@]}" --shard 4/4
expect_error 2 "--shard goes with --prompts-file" -- --model "$M" -p hi --shard 0/2
expect_error 2 "not in a Slurm array job" -- "${RUN[@]}" --shard slurm
SLURM_ARRAY_TASK_ID=6 SLURM_ARRAY_TASK_MIN=5 SLURM_ARRAY_TASK_COUNT=4 "$GEN" "${RUN[@]}" --shard slurm --output "$tmp/sl.jsonl" 2>/dev/null \
  && cmp -s <(cut -d, -f1 "$tmp/sl.jsonl" | sort) <(cut -d, -f1 "$tmp/s1.jsonl" | sort) && python3 - "$tmp/sl.jsonl" "$tmp/s1.jsonl" <<'PY' \
  && ok || bad "--shard slurm with task 6 of 5..8 is shard 1/4"
import json, sys
key = lambda f: sorted((j["index"], j.get("sample"), j["text"]) for j in map(json.loads, open(f)))
assert key(sys.argv[1]) == key(sys.argv[2])
PY

# ---- gen perplexity over a list, sharded and merged ------------------------------------------------
for i in $(seq 0 6); do for j in $(seq 0 $((i * 3 + 2))); do echo "Text $i, line $j: a quick brown fox."; done >"$tmp/t$i.txt"; done
: >"$tmp/t7.txt"
{ ls "$tmp"/t?.txt; printf ' \t\r\n\n'; } >"$tmp/list.txt"  # blank lines (spaces and tabs too) are skipped
P=(perplexity --model "$M" --device cpu --file-list "$tmp/list.txt" --ctx 64)
"$GEN" "${P[@]}" >"$tmp/pfull.jsonl" 2>"$tmp/err"
rc=$?
[ $rc = 3 ] && [ "$(wc -l <"$tmp/pfull.jsonl")" = 8 ] && python3 -c "
import json
j = [json.loads(l) for l in open('$tmp/pfull.jsonl')][7]
assert j['index'] == 7 and j['error'].startswith('the file is empty') and j['file'].endswith('t7.txt'), j" \
  && ok || bad "perplexity list: exit $rc (3: one empty file), $(cat "$tmp/err")"
"$GEN" perplexity --model "$M" --device cpu --file "$tmp/t3.txt" --ctx 64 --json >"$tmp/one.json" 2>/dev/null
python3 - "$tmp/one.json" "$tmp/pfull.jsonl" <<'PY' && ok || bad "a list's line equals the single-file result"
import json, sys
one = json.load(open(sys.argv[1]))
line = [j for j in map(json.loads, open(sys.argv[2])) if j["index"] == 3][0]
assert line["file"].endswith("t3.txt") and all(line[k] == one[k] for k in ("ppl", "nll", "tokens_scored", "windows", "tokens")), (one, line)
PY
"$GEN" "${P[@]}" --shard 0/3 --output "$tmp/q0.jsonl" 2>/dev/null
"$GEN" "${P[@]}" --shard 1/3 --output "$tmp/q1.jsonl" 2>/dev/null
"$GEN" "${P[@]}" --shard 2/3 --output "$tmp/q2.jsonl" --resume 2>/dev/null
"$GEN" merge "$tmp"/q{0,1,2}.jsonl --expect 8 >"$tmp/q.jsonl" 2>"$tmp/err" && same "$tmp/q.jsonl" "$tmp/pfull.jsonl" \
  && ok || bad "perplexity shards merged != unsharded: $(cat "$tmp/err")"
"$GEN" "${P[@]}" --shard 1/3 --output "$tmp/q1.jsonl" --resume >/dev/null 2>"$tmp/err"; [ $? = 3 ] && grep -q "0 files scored, 1 failed, 3 already in the output" "$tmp/err" \
  && ok || bad "a finished perplexity shard resumes to nothing: $(cat "$tmp/err")"
expect_error 2 "another file than the list" -- perplexity --model "$M" --file "$tmp/t5.txt" --file "$tmp/t6.txt" --output "$tmp/q1.jsonl" --resume
expect_error 2 "--file or --file-list is required" -- perplexity --model "$M"
finish cli_shard
