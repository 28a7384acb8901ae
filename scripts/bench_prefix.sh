#!/usr/bin/env bash
# The prefix cache and the K/V files, measured in interleaved rounds (issue 15):
#   1. 32 prompts that share a 384-token prefix, each with its own 16-token question, 16 tokens decoded
#      each (greedy), with the prefix cache and with --no-prefix-cache: the run's wall time (the
#      summary's, load excluded) and the process's, prompt tokens reused, identical outputs.
#   2. --prompt-cache on a 900-token prompt: time to first token of a hit against a miss (ttft_ms, which
#      counts reading the file).
#   3. gen chat --session after 10 turns: the resumed process's time to its first reply token (the
#      session's load plus the turn's ttft) against a process that prefills the same history.
# On the 4-layer, 256-wide checkpoint with GPT-2's vocabulary (random weights, made as bench_cache.sh
# makes it). Needs GPT-2's vocab.json (../shared/gpt2-tokenizer or models/gpt2): the prompts are made of
# words that are one token each, so that the token counts are exact.
#   scripts/bench_prefix.sh [ROUNDS]        (default 5; BATCH=32, DEVICE=cpu, DTYPE=the device's default,
#                                            THREADS=all cores)
# Prints a table and whether each criterion of the issue holds; exits 1 when one does not.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
rounds=${1:-5}
batch=${BATCH:-32}
[ -x "$build/gen" ] || "$root/scripts/build.sh" >&2
. "$root/scripts/bench_model.sh"
bench_model bench_prefix
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--model "$model" --device "${DEVICE:-cpu}" ${DTYPE:+--dtype "$DTYPE"} ${THREADS:+--threads "$THREADS"})
gen=("$build/gen" "${common[@]}")
chat=("$build/gen" chat "${common[@]}")

# Prompts of one-token words: 32 x (384 shared + 16 own), a 900-token prompt, chat lines.
python3 - "$tok/vocab.json" "$work" <<'EOF'
import json, random, sys
vocab = json.load(open(sys.argv[1]))
words = sorted(k[1:] for k in vocab if k.startswith("\u0120") and k[1:].isalpha() and k[1:].islower() and len(k) > 4)
rng = random.Random(15)
text = lambda n: "".join(" " + rng.choice(words) for _ in range(n))
shared = text(384)
with open(sys.argv[2] + "/prompts.jsonl", "w") as f:
    for i in range(32):
        f.write(json.dumps({"prompt": shared + text(16)}) + "\n")
open(sys.argv[2] + "/long.txt", "w").write(text(900))
with open(sys.argv[2] + "/chat.txt", "w") as f:
    for i in range(11):
        f.write(text(12).strip() + "\n")
EOF

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
now() { date +%s.%N; }

# ---- 1. the shared prefix --------------------------------------------------------------------------
run_batch() {  # run_batch NAME FLAGS...: one run; appends "run_s process_s" to $work/NAME.times
  local name=$1; shift
  local t0 t1
  t0=$(now)
  "${gen[@]}" --prompts-file "$work/prompts.jsonl" -n 16 --temperature 0 --ignore-eos --batch-size "$batch" --json \
    "$@" >"$work/$name.jsonl" 2>"$work/$name.err"
  t1=$(now)
  local run_s
  run_s=$(sed -nE 's/.* tokens in ([0-9.]+) s .*/\1/p' "$work/$name.err")
  echo "$run_s $(echo "$t1 - $t0" | bc -l)" >>"$work/$name.times"
}
for r in $(seq "$rounds"); do
  run_batch with
  run_batch without --no-prefix-cache
done
read -r reused computed n_prompt identical < <(python3 - "$work/with.jsonl" "$work/without.jsonl" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
same = len(a) == len(b) == 32 and all(x["tokens"] == y["tokens"] for x, y in zip(a, b))
print(sum(x["timing"]["cached_tokens"] for x in a), sum(x["timing"]["prefill_tokens"] for x in a),
      len(a[0]["prompt_tokens"]), "yes" if same else "no")
EOF
)
with_run=$(cut -d' ' -f1 "$work/with.times" | median)
without_run=$(cut -d' ' -f1 "$work/without.times" | median)
with_proc=$(cut -d' ' -f2 "$work/with.times" | median)
without_proc=$(cut -d' ' -f2 "$work/without.times" | median)
speedup=$(echo "$without_run / $with_run" | bc -l)

# ---- 2. --prompt-cache, 900 tokens: a miss, then a hit, interleaved --------------------------------
pc=$work/long.kv
for r in $(seq "$rounds"); do
  rm -f "$pc"
  for kind in miss hit; do
    "${gen[@]}" --prompt-file "$work/long.txt" -n 1 --temperature 0 --json --prompt-cache "$pc" >"$work/$kind.json" 2>/dev/null
    python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["timing"]; print(t["ttft_ms"], t["cached_tokens"], t["prefill_tokens"])' \
      "$work/$kind.json" >>"$work/$kind.ttft"
  done
done
miss_ttft=$(cut -d' ' -f1 "$work/miss.ttft" | median)
hit_ttft=$(cut -d' ' -f1 "$work/hit.ttft" | median)
read -r _ hit_reused hit_computed < <(tail -1 "$work/hit.ttft")
read -r _ _ miss_computed < <(tail -1 "$work/miss.ttft")

# ---- 3. gen chat --session after 10 turns ---------------------------------------------------------
session=$work/chat.kv
head -10 "$work/chat.txt" | "${chat[@]}" -n 32 --temperature 0 --session "$session" >/dev/null 2>"$work/chat10.err"
last=$(tail -1 "$work/chat.txt")
# The history as text (the file's "extra.text", docs/kv_file.md) and the turn's piece: what a process
# without the session's K/V prefills before the reply's first token.
python3 - "$session" "$last" "$work/history.txt" <<'EOF'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
meta_bytes = struct.unpack_from("<I", data, 12)[0]
meta = json.loads(data[48:48 + meta_bytes])
open(sys.argv[3], "w").write(meta["extra"]["text"] + "User: " + sys.argv[2] + "\nAssistant:")
EOF
for r in $(seq "$rounds"); do
  cp "$session" "$work/resume.kv"
  echo "$last" | "${chat[@]}" -n 1 --temperature 0 --session "$work/resume.kv" >/dev/null 2>"$work/resume.err"
  load=$(sed -nE 's/^\[chat\] resumed .* in ([0-9.]+) ms from .*/\1/p' "$work/resume.err")
  first=$(sed -nE 's/^\[chat\] turn 11: .* first token ([0-9.]+) ms.*/\1/p' "$work/resume.err")
  reused_chat=$(sed -nE 's/^\[chat\] turn 11: ([0-9]+) tokens reused.*/\1/p' "$work/resume.err")
  echo "$(echo "$load + $first" | bc -l) $load $first $reused_chat" >>"$work/resume.times"
  "${gen[@]}" --prompt-file "$work/history.txt" -n 1 --temperature 0 --json >"$work/recompute.json" 2>/dev/null
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["timing"]["ttft_ms"], len(j["prompt_tokens"]))' \
    "$work/recompute.json" >>"$work/recompute.times"
done
resume_ttft=$(cut -d' ' -f1 "$work/resume.times" | median)
resume_load=$(cut -d' ' -f2 "$work/resume.times" | median)
recompute_ttft=$(cut -d' ' -f1 "$work/recompute.times" | median)
read -r _ _ _ chat_reused < <(tail -1 "$work/resume.times")
read -r _ history_tokens < <(tail -1 "$work/recompute.times")

# ---- report ----------------------------------------------------------------------------------------
echo "model: 4 layers, n_embd 256, vocab 50257 (random weights); device ${DEVICE:-cpu} ${DTYPE:-}; $(nproc) CPU threads; medians of $rounds interleaved rounds"
echo
echo "1. 32 prompts of $n_prompt tokens sharing 384, 16 tokens decoded each, --batch-size $batch"
printf '   %-34s %12s %12s %8s\n' "" "prefix cache" "--no-prefix-cache" "ratio"
printf '   %-34s %12.3f %12.3f %7.2fx\n' "run wall time, s (load excluded)" "$with_run" "$without_run" "$speedup"
printf '   %-34s %12.3f %12.3f %7.2fx\n' "process wall time, s" "$with_proc" "$without_proc" "$(echo "$without_proc / $with_proc" | bc -l)"
echo "   prompt tokens reused $reused, computed $computed (at least 31 x 368 = 11408 reused asked); outputs identical: $identical"
echo
echo "2. --prompt-cache, a 900-token prompt: time to first token (reading the file included)"
printf '   miss %.1f ms (%s tokens computed)   hit %.1f ms (%s reused, %s computed)   hit / miss = %.3f (%.1fx faster)\n' \
  "$miss_ttft" "$miss_computed" "$hit_ttft" "$hit_reused" "$hit_computed" "$(echo "$hit_ttft / $miss_ttft" | bc -l)" \
  "$(echo "$miss_ttft / $hit_ttft" | bc -l)"
echo
echo "3. gen chat --session, turn 11 after 10 turns: time to the reply's first token"
printf '   resumed %.1f ms (session load %.1f ms + turn; %s tokens reused)   recomputing the %s-token history %.1f ms   (%.1fx faster)\n' \
  "$resume_ttft" "$resume_load" "$chat_reused" "$history_tokens" "$recompute_ttft" "$(echo "$recompute_ttft / $resume_ttft" | bc -l)"
echo
status=0
check() {  # check DESCRIPTION CONDITION
  if [ "$(echo "$2" | bc -l)" = 1 ]; then echo "holds:    $1"; else echo "NOT MET:  $1"; status=1; fi
}
check "reused prompt tokens >= 31 x 368 ($reused)" "$reused >= 11408"
check "outputs identical with and without the prefix cache" "$([ "$identical" = yes ] && echo 1 || echo 0)"
check "run wall time at least 4x faster with the prefix cache ($(printf '%.2f' "$speedup")x)" "$speedup >= 4"
exit $status
