#!/usr/bin/env bash
# How a --prompts-file run scales with --shard on this machine (issue 17): the same prompts run as 1, 2
# and 4 shards, all shards of a configuration at once (as Slurm array tasks on one node would run), then
# `gen merge`. Each configuration's wall time covers its slowest shard and the merge; the tokens/s and
# the speed-up are against 1 shard, measured in the same interleaved rounds. Each shard gets
# max(1, cores / shards) threads. The merged output is checked equal to the 1-shard run's (greedy).
# On the 4-layer, 256-wide checkpoint with GPT-2's vocabulary (random weights; scripts/bench_model.sh).
#   scripts/bench_shards.sh [ROUNDS]   (default 3; PROMPTS=64, TOKENS=64, BATCH=16, SHARDS="1 2 4")
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
rounds=${1:-3}
nprompts=${PROMPTS:-64}
tokens=${TOKENS:-64}
batch=${BATCH:-16}
shards_list=${SHARDS:-"1 2 4"}
cores=$(nproc)
[ -x "$build/gen" ] || "$root/scripts/build.sh" >&2
. "$root/scripts/bench_model.sh"
bench_model bench_shards
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 "$nprompts"); do echo "Question $i: what is the meaning of the number $((i * 13)) in the story?"; done >"$work/p.txt"
run=("$build/gen" --model "$model" --device cpu --prompts-file "$work/p.txt" -n "$tokens" --ignore-eos --temperature 0
     --seed 1 --batch-size "$batch")

# one_config N ROUND: N shards at once, then the merge; prints the wall seconds.
one_config() {
  local n=$1 r=$2 threads=$(( cores / $1 )) t0 t1 k pids=()
  [ "$threads" -ge 1 ] || threads=1
  rm -f "$work"/s"$n"_*.jsonl
  t0=$(date +%s.%N)
  for k in $(seq 0 $((n - 1))); do
    "${run[@]}" --threads "$threads" --shard "$k/$n" --output "$work/s${n}_$k.jsonl" 2>/dev/null &
    pids+=($!)
  done
  for k in "${pids[@]}"; do wait "$k"; done
  "$build/gen" merge "$work"/s"$n"_*.jsonl --expect "$nprompts" -o "$work/merged$n.jsonl" 2>/dev/null
  t1=$(date +%s.%N)
  python3 -c "print($t1 - $t0)" >>"$work/t$n"
}

for r in $(seq 1 "$rounds"); do
  for n in $shards_list; do one_config "$n" "$r"; done
done
python3 - "$work" "$nprompts" "$tokens" "$cores" $shards_list <<'EOF'
import json, statistics, sys
work, nprompts, tokens, cores, shards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
load = lambda f: [(j["index"], j["tokens"]) for j in map(json.loads, open(f))]
ref = load(f"{work}/merged{shards[0]}.jsonl")
med = {n: statistics.median(float(x) for x in open(f"{work}/t{n}")) for n in shards}
print(f"{nprompts} prompts x {tokens} tokens, {cores} cores; medians of {len(open(f'{work}/t{shards[0]}').read().split())} interleaved rounds")
print("| shards | threads each | wall s (slowest shard + merge) | tok/s | speed-up vs 1 | merged == 1 shard |")
print("|---:|---:|---:|---:|---:|:---:|")
for n in shards:
    same = load(f"{work}/merged{n}.jsonl") == ref
    tps = nprompts * tokens / med[n]
    print(f"| {n} | {max(1, cores // int(n))} | {med[n]:.2f} | {tps:.0f} | {med[shards[0]] / med[n]:.2f} | {'yes' if same else 'NO'} |")
    if not same:
        sys.exit(1)
EOF
