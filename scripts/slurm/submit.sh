#!/usr/bin/env bash
# Runs a gen batch job as a Slurm job array, one shard per task, and merges the shards (docs/slurm.md).
#   submit.sh generate   RUN_DIR --shards N --prompts-file FILE [OPTIONS] [-- GEN_FLAGS...]
#   submit.sh perplexity RUN_DIR --shards N --file-list FILE [OPTIONS] [-- GEN_FLAGS...]
#   submit.sh merge      RUN_DIR   submit the merge job again (after a cancelled task was requeued)
#   submit.sh status     RUN_DIR   the run's jobs and how many lines each shard has
# OPTIONS: --model DIR (gen's --model), --gen PATH (default $GEN, else build/gen of this checkout),
#   --gpus auto|0|1 (auto: one GPU per task when sinfo lists a gpu GRES), --cpus C (--cpus-per-task).
# Other sbatch settings through sbatch's own environment: SBATCH_PARTITION, SBATCH_TIMELIMIT,
# SBATCH_ACCOUNT, SBATCH_QOS, ... GEN_FLAGS go to every task (e.g. -n 64 --seed 1 --temperature 0.8).
# RUN_DIR gets: the input (a frozen copy), run.env, logs/, shard-K.jsonl, and merged.jsonl at the end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

die() {
  echo "submit.sh: $*" >&2
  exit 2
}

usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# count_inputs FILE: the indices gen gives FILE's entries, prompts (src/engine/prompts.cpp) and file
# lists (src/cli/ppl_list.cpp) alike: every line but the blank ones (nothing but spaces and tabs once a
# final '\r' is cut), in .txt and .jsonl alike; a line gen cannot parse still has its index (an error line).
count_inputs() {
  LC_ALL=C awk '{ sub(/\r$/, "") } /[^ \t]/ { n++ } END { print n + 0 }' "$1"
}

# The first job id of sbatch --parsable's "ID[;CLUSTER]".
job_id() { echo "${1%%;*}"; }

# --gpus auto: a gpu GRES on the nodes of the partition the tasks go to ($SBATCH_PARTITION, else the
# cluster's default one, starred in sinfo).
want_gpu() {
  local part=${SBATCH_PARTITION:-}
  case "$gpus" in
    0) return 1 ;;
    1) return 0 ;;
    auto)
      [ -n "$part" ] || part=$(sinfo -h -o %P 2>/dev/null | sed -n 's/\*$//p' | head -1)
      sinfo -h ${part:+-p "$part"} -o %G 2>/dev/null | grep -q gpu
      ;;
    *) die "--gpus must be auto, 0 or 1" ;;
  esac
}

parse_args() {
  shards="" input="" model="" gpus=auto cpus="" gen=${GEN:-$root/build/gen}
  gen_flags=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --shards) shards=${2:?}; shift 2 ;;
      --prompts-file | --file-list) input=${2:?}; shift 2 ;;
      --model) model=${2:?}; shift 2 ;;
      --gen) gen=${2:?}; shift 2 ;;
      --gpus) gpus=${2:?}; shift 2 ;;
      --cpus) cpus=${2:?}; shift 2 ;;
      --) shift; gen_flags=("$@"); break ;;
      *) die "unknown option '$1' (gen's own flags go after --)" ;;
    esac
  done
  [[ "$shards" =~ ^[1-9][0-9]*$ ]] || die "--shards N: a positive number"
  [ -f "$input" ] || die "no input file '$input' (--prompts-file or --file-list)"
  [ -x "$gen" ] || die "no gen binary at $gen (--gen PATH or GEN=...)"
  gen=$(cd "$(dirname "$gen")" && pwd)/$(basename "$gen")
  expect=$(count_inputs "$input")
  [ "$expect" -gt 0 ] || die "$input has no entries"
  [ "$shards" -le "$expect" ] || die "--shards $shards: more than the $expect entries of $input"
  local f
  device=(--device auto)
  for f in "${gen_flags[@]}"; do
    case "$f" in
      --device*) device=() ;;
      --shard* | --output* | --resume | --json | --prompts-file* | --prompt | --prompt=* | --prompt-file* | -p | \
        --file | --file=* | --file-list* | --model*)
        die "$f: submit.sh sets it (or takes it as its own option)" ;;
    esac
  done
}

# Freezes the input in RUN_DIR (what tasks requeued tomorrow read, as --expect counted it); a RUN_DIR
# of an earlier submission is resumed only with the same input and shard count.
prepare_run_dir() {
  mkdir -p "$run_dir/logs"
  run_dir=$(cd "$run_dir" && pwd)
  frozen=$run_dir/input-$(basename "$input")
  if [ -f "$run_dir/run.env" ]; then
    local old_shards
    old_shards=$(. "$run_dir/run.env" && echo "$SHARDS")
    [ "$old_shards" = "$shards" ] || die "$run_dir holds a run of $old_shards shards, not $shards: use a new RUN_DIR"
    cmp -s "$input" "$frozen" || die "$run_dir holds a run of another $input: use a new RUN_DIR"
  else
    cp "$input" "$frozen"
  fi
}

write_run_env() {
  {
    printf 'KIND=%q\nSHARDS=%q\nEXPECT=%q\nGEN=%q\nINPUT=%q\n' "$kind" "$shards" "$expect" "$gen" "$frozen"
    printf 'ARRAY_JOB=%q\nMERGE_JOB=%q\nWORKDIR=%q\n' "$array_job" "$merge_job" "$PWD"
  } >"$run_dir/run.env"
}

# submit_merge [always]: the merge job, after the array's tasks have all ended (always, or when some are
# still queued). afterany, not afterok: a task that was cancelled and then requeued leaves afterok on
# the array unsatisfiable for good (DependencyNeverSatisfied, Slurm 22.05, docs/slurm.md); the merge's
# --expect checks the result instead.
submit_merge() {
  local dep=()
  merge_when="now: array job $array_job has ended"
  if [ "${1:-}" = always ] || squeue -h -j "$array_job" -o %i 2>/dev/null | grep -q .; then
    dep=(--dependency="afterany:$array_job")
    merge_when="once every task of array job $array_job has ended"
  fi
  merge_job=$(job_id "$(sbatch --parsable "${dep[@]}" --chdir="$PWD" \
    --output="$run_dir/logs/%x-%j.out" "$here/merge.sbatch" "$run_dir" "$gen" "$expect" "$shards")")
}

submit_run() {
  local script=$here/$kind.sbatch opts=(--parsable --array="0-$((shards - 1))" --chdir="$PWD"
    --output="$run_dir/logs/%x-%A_%a.out")
  local flags=("${device[@]}")
  want_gpu && opts+=(--gres=gpu:1)
  [ -n "$cpus" ] && opts+=(--cpus-per-task="$cpus")
  [ -n "$model" ] && flags+=(--model "$model")
  if [ "$kind" = generate ]; then flags+=(--prompts-file "$frozen"); else flags+=(--file-list "$frozen"); fi
  array_job=$(job_id "$(sbatch "${opts[@]}" "$script" "$run_dir" "$gen" "${flags[@]}" "${gen_flags[@]}")")
  submit_merge always
  write_run_env
  echo "array job $array_job: $shards tasks ($(want_gpu && echo "a GPU each" || echo "CPU only")," \
    "$expect indices); merge job $merge_job"
  watch_hint
}

watch_hint() {
  cat <<EOF
watch:   squeue -j $array_job,$merge_job     (sacct -j $array_job where accounting is on)
         tail -f $run_dir/logs/*.out
         $here/submit.sh status $run_dir
result:  $run_dir/merged.jsonl (written by the merge job when every index is there)
EOF
}

load_run() {
  [ -f "$run_dir/run.env" ] || die "no $run_dir/run.env: not a submit.sh run directory"
  run_dir=$(cd "$run_dir" && pwd)
  # shellcheck disable=SC1091
  . "$run_dir/run.env"  # KIND SHARDS EXPECT GEN INPUT ARRAY_JOB MERGE_JOB WORKDIR
  kind=$KIND shards=$SHARDS expect=$EXPECT gen=$GEN frozen=$INPUT array_job=$ARRAY_JOB merge_job=$MERGE_JOB
  cd "$WORKDIR"
}

status() {
  squeue -j "$array_job,$merge_job" -o "%.14i %.9T %.20r %.10M %j" 2>/dev/null || true
  local k f n total=0
  for ((k = 0; k < shards; k++)); do
    f=$run_dir/shard-$k.jsonl
    n=0
    [ -f "$f" ] && n=$(grep -c '' "$f" || true)
    total=$((total + n))
    echo "shard $k: $n lines"
  done
  echo "$total lines of $expect indices (more with --samples)"
  [ -f "$run_dir/merged.jsonl" ] && echo "merged: $run_dir/merged.jsonl"
  return 0
}

[ $# -ge 2 ] || usage
kind=$1 run_dir=$2
shift 2
case "$kind" in
  generate | perplexity)
    parse_args "$@"
    prepare_run_dir
    submit_run
    ;;
  merge)
    load_run
    # A merge job still queued would only merge again (or run early): replace it.
    squeue -h -j "$merge_job" -o %i 2>/dev/null | grep -q . && scancel "$merge_job"
    rm -f "$run_dir/merged.jsonl"
    submit_merge
    write_run_env
    echo "merge job $merge_job, to run $merge_when"
    watch_hint
    ;;
  status)
    load_run
    status
    ;;
  *) usage ;;
esac
