#!/usr/bin/env bash
# gen's sharded batch runs on a real Slurm (scripts/slurm/, docs/slurm.md): a one-node cluster started
# here (tests/slurm/cluster.sh: munged, slurmctld, slurmd from a temp dir, on free ports), then
#   generate: a 4-task array over 40 prompts, merged by the dependent job = one unsharded run
#   requeue:  a task cancelled after some of its lines, requeued: it resumes, the merge is whole, no
#             index twice, = the unsharded run
#   missing:  a merge without one shard's file fails (exit 3) naming exactly that shard's indices
#   perplexity: a 2-task array over 8 files, merged = the unsharded run
# Env: GEN, MAKE_MODEL (build/gen, build/gen-make-model). Installs slurm-wlm and munge (apt-get) when
# missing and root; prints "skipped: ..." and exits 0 only when they are missing and cannot be.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
GEN=${GEN:-$root/build/gen}
MAKE_MODEL=${MAKE_MODEL:-$root/build/gen-make-model}
submit=$root/scripts/slurm/submit.sh
compare=$here/slurm/compare.py
# shellcheck source=slurm/cluster.sh
. "$here/slurm/cluster.sh"

slurm_have
case $? in
  1) echo "skipped: no $(slurm_missing): slurm-wlm and munge are not installed (apt-get install -y slurm-wlm munge, as root)"
     exit 0 ;;
  2) echo "FAIL: apt-get could not install slurm-wlm and munge"; exit 1 ;;
esac
[ -x "$GEN" ] || { echo "FAIL: no gen binary at $GEN"; exit 1; }
[ -x "$MAKE_MODEL" ] || { echo "FAIL: no gen-make-model at $MAKE_MODEL"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: no python3"; exit 1; }

tmp=$(mktemp -d)
cleanup() {
  slurm_stop
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

fails=0
fail() {
  fails=$((fails + 1))
  echo "FAIL: $*"
}
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
t_start=$(now)
t_phase=$t_start
# phase NAME: how long the phase that ends here took.
phase() {
  printf '[%6s s] %s\n' "$(since "$t_phase")" "$1"
  t_phase=$(now)
}

# wait_gone TIMEOUT JOBS: until no job of JOBS (comma list) is queued or running.
wait_gone() {
  local end=$((SECONDS + $1)) out
  until out=$(squeue -h -j "$2" -o %i 2>&1) && [ -z "$out" ]; do
    [ $SECONDS -ge $end ] && { fail "jobs $2 still queued after $1 s: $out"; return 1; }
    sleep 0.5
  done
}

# job_field JOB FIELD: JobState, ExitCode, Restarts, ... of a job (or an array task A_K).
job_field() { scontrol show job "$1" 2>/dev/null | grep -o "\b$2=[^ ]*" | head -1 | cut -d= -f2; }

# array_of RUN_DIR / merge_of RUN_DIR: the job ids submit.sh recorded.
array_of() { (. "$1/run.env" && echo "$ARRAY_JOB"); }
merge_of() { (. "$1/run.env" && echo "$MERGE_JOB"); }

# expect_merged RUN_DIR REFERENCE: the merge job completed and its merged.jsonl = REFERENCE.
expect_merged() {
  local m state code
  m=$(merge_of "$1")
  state=$(job_field "$m" JobState) code=$(job_field "$m" ExitCode)
  [ "$state" = COMPLETED ] && [ "$code" = 0:0 ] ||
    fail "merge job $m: $state, exit $code: $(tail -n 5 "$1"/logs/gen-merge-*.out 2>&1)"
  [ -f "$1/merged.jsonl" ] || { fail "no $1/merged.jsonl"; return; }
  python3 "$compare" same "$2" "$1/merged.jsonl" || fail "$1/merged.jsonl differs from the unsharded run"
}

make_inputs() {
  local tokflag=(--tokenizer "$root/../shared/gpt2-tokenizer") vocab=50257
  [ -f "${tokflag[1]}/vocab.json" ] || tokflag=(--tokenizer "$root/models/gpt2")
  [ -f "${tokflag[1]}/vocab.json" ] || { tokflag=(); vocab=600; echo "note: byte-level tokenizer"; }
  # Slow enough (about 0.3 s a prompt, one thread) that a task can be cancelled between its lines.
  "$MAKE_MODEL" --out "$tmp/model" --layers 4 --heads 4 --embd 384 --positions 256 --vocab $vocab \
    --std 0.3 "${tokflag[@]}" >/dev/null || { echo "FAIL: gen-make-model"; exit 1; }
  # 40 prompts, with the lines gen skips (blank, spaces and tabs, a lone '\r') and CRLF ends among them.
  local i words=(river lantern copper orchard signal harbor meadow engine silver winter)
  for i in $(seq 0 39); do
    printf '%s %d: the %s beside the %s' "Story" "$i" "${words[$((i % 10))]}" "${words[$((i * 7 % 10))]}"
    [ $((i % 9)) = 4 ] && printf '\r'
    printf '\n'
    case $((i % 13)) in 3) printf '\n' ;; 7) printf '  \t \n' ;; 11) printf '\r\n' ;; esac
  done >"$tmp/prompts.txt"
  mkdir -p "$tmp/texts"
  for i in $(seq 0 7); do
    for _ in $(seq $((3 + i * 2))); do echo "The ${words[$i]} and the ${words[$(((i + 3) % 10))]} met at dawn."; done \
      >"$tmp/texts/t$i.txt"
    echo "$tmp/texts/t$i.txt"
  done >"$tmp/files.txt"
  echo >>"$tmp/files.txt"
}

gen_flags=(-n 40 --temperature 0.8 --top-k 50 --seed 7)

references() {
  "$GEN" --model "$tmp/model" --prompts-file "$tmp/prompts.txt" --json --threads 1 "${gen_flags[@]}" \
    >"$tmp/ref.jsonl" 2>"$tmp/ref.err" || { echo "FAIL: the unsharded run: $(cat "$tmp/ref.err")"; exit 1; }
  [ "$(grep -c '' "$tmp/ref.jsonl")" = 40 ] || fail "the unsharded run has $(grep -c '' "$tmp/ref.jsonl") lines, not 40"
  "$GEN" perplexity --model "$tmp/model" --file-list "$tmp/files.txt" --ctx 32 --json --threads 1 \
    >"$tmp/ref_ppl.jsonl" 2>"$tmp/ref_ppl.err" || { echo "FAIL: unsharded perplexity: $(cat "$tmp/ref_ppl.err")"; exit 1; }
}

# The plain run: 4 tasks (2 at a time on 2 cores), the merge after them.
test_generate() {
  "$submit" generate "$tmp/run1" --shards 4 --model "$tmp/model" --prompts-file "$tmp/prompts.txt" \
    -- "${gen_flags[@]}" >"$tmp/submit1.out" || { fail "submit.sh generate: $(cat "$tmp/submit1.out")"; return; }
  grep -q "40 indices" "$tmp/submit1.out" || fail "submit.sh counted: $(head -1 "$tmp/submit1.out")"
  wait_gone 300 "$(array_of "$tmp/run1"),$(merge_of "$tmp/run1")" || return
  expect_merged "$tmp/run1" "$tmp/ref.jsonl"
}

# Polls shard-1 until it has a line, then scancel; returns once the task's processes are gone (squeue
# lists a cancelled task while it is completing).
cancel_mid_task() {
  local a=$1 f=$2 end=$((SECONDS + 120)) n=0
  while [ $SECONDS -lt $end ]; do
    [ -f "$f" ] && n=$(grep -c '' "$f")
    [ "$n" -ge 1 ] && break
    sleep 0.05
  done
  scancel "${a}_1"
  end=$((SECONDS + 60))
  while [ -n "$(squeue -h -j "${a}_1" -o %i 2>/dev/null)" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
}

# scontrol requeue, again while the cancelled task is still completing.
requeue() {
  local out
  for _ in $(seq 50); do
    out=$(scontrol requeue "$1" 2>&1) && return 0
    sleep 0.2
  done
  fail "scontrol requeue $1: $out"
  return 1
}

# A task cancelled in the middle and requeued resumes (--resume): its file gets each index once.
# --batch-size 1 writes the lines one by one; the merge must still equal the batch-size-8 reference.
test_requeue() {
  local d=$tmp/run2 a kept state
  "$submit" generate "$d" --shards 4 --model "$tmp/model" --prompts-file "$tmp/prompts.txt" \
    -- "${gen_flags[@]}" --batch-size 1 >/dev/null || { fail "submit.sh generate (requeue)"; return; }
  a=$(array_of "$d")
  cancel_mid_task "$a" "$d/shard-1.jsonl"
  state=$(job_field "${a}_1" JobState)
  [ "$state" = CANCELLED ] || fail "task ${a}_1 is $state after scancel, not CANCELLED"
  kept=$(python3 "$compare" shard "$d/shard-1.jsonl" 1 4 cut-ok) || fail "shard 1 after the cancel: $kept"
  kept=${kept##*$'\n'}
  echo "  task ${a}_1 cancelled with $kept of 10 lines written"
  [ "$kept" -ge 1 ] && [ "$kept" -lt 10 ] || fail "the cancelled task had $kept of its 10 lines: not mid-task"
  requeue "${a}_1" || return
  wait_gone 300 "$a,$(merge_of "$d")" || return
  [ "$(job_field "${a}_1" Restarts)" = 1 ] || fail "task ${a}_1 restarts: $(job_field "${a}_1" Restarts)"
  grep -q "restart 1" "$d/logs/gen-generate-${a}_1.out" || fail "no 'restart 1' in the task's log"
  grep -q "$kept already in the output" "$d/logs/gen-generate-${a}_1.out" ||
    fail "the requeued task did not resume from $kept lines: $(grep finished "$d/logs/gen-generate-${a}_1.out")"
  python3 "$compare" shard "$d/shard-1.jsonl" 1 4 all:40 >/dev/null || fail "shard 1 after the requeue"
  expect_merged "$d" "$tmp/ref.jsonl"
}

# A shard file gone: the merge job fails (exit 3) naming its indices; gen merge itself lists exactly them.
test_missing() {
  local d=$tmp/run1 m
  mv "$d/shard-2.jsonl" "$tmp/shard-2.away"
  "$submit" merge "$d" >/dev/null || { fail "submit.sh merge"; return; }
  m=$(merge_of "$d")
  wait_gone 60 "$m" || return
  [ "$(job_field "$m" JobState)" = FAILED ] && [ "$(job_field "$m" ExitCode)" = 3:0 ] ||
    fail "merge job $m without shard 2: $(job_field "$m" JobState) $(job_field "$m" ExitCode)"
  [ -f "$d/merged.jsonl" ] && fail "an incomplete merge left merged.jsonl"
  [ "$(grep -c '' "$d/merged.partial.jsonl" 2>/dev/null)" = 30 ] || fail "merged.partial.jsonl: not 30 lines"
  python3 "$compare" missing "$d/logs/gen-merge-$m.out" 40 2 4 || fail "the merge job's log: missing indices"
  "$GEN" merge "$d/shard-0.jsonl" "$d/shard-1.jsonl" "$d/shard-3.jsonl" --expect 40 >/dev/null 2>"$tmp/m.err"
  local rc=$?
  [ "$rc" = 3 ] || fail "gen merge without shard 2: exit $rc, not 3 ($(cat "$tmp/m.err"))"
  python3 "$compare" missing "$tmp/m.err" 40 2 4 || fail "gen merge without shard 2: missing indices"
  mv "$tmp/shard-2.away" "$d/shard-2.jsonl"
}

test_perplexity() {
  "$submit" perplexity "$tmp/run3" --shards 2 --model "$tmp/model" --file-list "$tmp/files.txt" \
    -- --ctx 32 >"$tmp/submit3.out" || { fail "submit.sh perplexity: $(cat "$tmp/submit3.out")"; return; }
  grep -q "8 indices" "$tmp/submit3.out" || fail "submit.sh counted: $(head -1 "$tmp/submit3.out")"
  wait_gone 300 "$(array_of "$tmp/run3"),$(merge_of "$tmp/run3")" || return
  expect_merged "$tmp/run3" "$tmp/ref_ppl.jsonl"
}

slurm_start "$tmp/slurm" || { echo "FAIL: the one-node Slurm did not start"; exit 1; }
phase "slurm up: $(sinfo -h -N -o '%N %c CPUs %m MB %T')"
make_inputs
references
phase "model and unsharded references"
test_generate
phase "generate: 4 tasks, merged"
test_requeue
phase "requeue: a task cancelled mid-run, requeued, merged"
test_missing
phase "missing shard: merge job and gen merge"
test_perplexity
phase "perplexity: 2 tasks, merged"
slurm_stop
phase "slurm stopped"
echo "slurm_test: $([ "$fails" = 0 ] && echo pass || echo "$fails FAILED") in $(since "$t_start") s"
[ "$fails" = 0 ]
