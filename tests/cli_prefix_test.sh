#!/usr/bin/env bash
# The prefix cache and the K/V files through the real binary: a prompts file whose prompts share a
# prefix gives the same tokens with and without the prefix cache, with the exact reused counts; a
# --prompt-cache miss then hit gives the same tokens and reuses all but the last prompt token; files of
# another model, dtype or kind, truncated or corrupted ones are one error line, exit 2; gen chat
# --session resumed by a second process replies as one process running every turn.
# Env: GEN (the gen binary), MAKE_MODEL (gen-make-model). GEN_TOKENIZER_DIR overrides the tokenizer.
set -u
source "$(dirname "$0")/cli_lib.sh"
make_model "$tmp/m" 2 2 32 256
"$MAKE_MODEL" --out "$tmp/other" --layers 2 --heads 2 --embd 32 --positions 256 --vocab $vocab --std 0.3 --seed 9 \
  "${tokflag[@]}" >/dev/null || exit 1
M=$tmp/m
RUN=("$GEN" --model "$M" --device cpu --temperature 0 --ignore-eos)
jq_py() { python3 -c "import json,sys; $1" "${@:2}"; }

# ---- a prompts file with shared prefixes ------------------------------------------------------------
shared="The same long preamble opens every prompt of this file, so that its K and V can be computed once"
{
  for q in "what is one?" "and two?" "three, then?" "four" "five and six" "seven"; do echo "$shared $q"; done
  echo "Something else entirely, sharing nothing"
  echo "${shared:0:30} but then it turns away"
} >"$tmp/prompts.txt"
"${RUN[@]}" --prompts-file "$tmp/prompts.txt" -n 6 --batch-size 3 --json >"$tmp/with.jsonl" 2>"$tmp/with.err"
rc1=$?
"${RUN[@]}" --prompts-file "$tmp/prompts.txt" -n 6 --batch-size 3 --json --no-prefix-cache >"$tmp/without.jsonl" \
  2>"$tmp/without.err"
rc2=$?
[ $rc1 = 0 ] && [ $rc2 = 0 ] && ok || bad "batch runs exit $rc1 / $rc2: $(cat "$tmp/with.err" "$tmp/without.err")"
# Tokens equal; each prompt reuses the whole 16-token blocks it shares with an earlier prompt (all but
# its last token), computes the rest; the summary's totals add them up.
check=$(jq_py '
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 8, "8 lines"
for x, y in zip(a, b):
    assert x["tokens"] == y["tokens"], ("tokens differ", x["index"])
    assert y["timing"]["cached_tokens"] == 0, "reuse without the prefix cache"
for i, x in enumerate(a):
    p = x["prompt_tokens"]
    best = 0
    for y in a[:i]:
        q, n = y["prompt_tokens"], 0
        while n + 1 < len(p) and n < len(q) and p[n] == q[n]:
            n += 1
        best = max(best, n // 16 * 16)
    t = x["timing"]
    assert t["cached_tokens"] == best, ("prompt", i, "reused", t["cached_tokens"], "expected", best)
    assert t["prefill_tokens"] == len(p) - best, ("prompt", i, "computed", t["prefill_tokens"])
print(sum(x["timing"]["cached_tokens"] for x in a), sum(x["timing"]["prefill_tokens"] for x in a))
' "$tmp/with.jsonl" "$tmp/without.jsonl" 2>&1)
if [[ $check =~ ^([0-9]+)\ ([0-9]+)$ ]]; then
  ok
  reused=${BASH_REMATCH[1]} computed=${BASH_REMATCH[2]}
  [ "$reused" -ge 5 ] && ok || bad "only $reused prompt tokens reused: the prefix should be"
  grep -q "^\[gen\] prompt tokens: $reused reused, $computed computed (prefix cache " "$tmp/with.err" && ok ||
    bad "summary totals: $(cat "$tmp/with.err")"
else
  bad "prefix cache batch: $check"
fi
grep -q "^\[gen\] prompt tokens: 0 reused, .* (prefix cache off)" "$tmp/without.err" && ok || bad "off: $(cat "$tmp/without.err")"
"${RUN[@]}" --prompts-file "$tmp/prompts.txt" -n 6 --batch-size 3 --json --prefix-cache-mb 0 >"$tmp/zero.jsonl" 2>/dev/null
jq_py 'import sys
a = [json.loads(l) for l in open(sys.argv[1])]; b = [json.loads(l) for l in open(sys.argv[2])]
sys.exit(not (all(x["timing"]["cached_tokens"] == 0 for x in a) and [x["tokens"] for x in a] == [x["tokens"] for x in b]))' \
  "$tmp/zero.jsonl" "$tmp/without.jsonl" && ok || bad "--prefix-cache-mb 0 reused something or changed tokens"
expect_error 2 "excludes" -- --model "$M" --prompts-file "$tmp/prompts.txt" --no-prefix-cache --prefix-cache-mb 8
expect_error 2 "prefix-cache-mb.*out of range" -- --model "$M" --prompts-file "$tmp/prompts.txt" --prefix-cache-mb -1

# ---- --prompt-cache: a miss, then hits ---------------------------------------------------------------
P="A prompt whose K and V are saved to a file and loaded again by the next run of gen"
PC=$tmp/prompt.kv
"${RUN[@]}" -p "$P" -n 8 --json --prompt-cache "$PC" >"$tmp/miss.json" 2>"$tmp/miss.err" && [ -s "$PC" ] && ok ||
  bad "miss: $(cat "$tmp/miss.err")"
before=$(stat -c %Y.%s "$PC")
"${RUN[@]}" -p "$P" -n 8 --json --prompt-cache "$PC" >"$tmp/hit.json" 2>"$tmp/hit.err" && ok || bad "hit: $(cat "$tmp/hit.err")"
jq_py '
m, h = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
n = len(m["prompt_tokens"])
assert m["tokens"] == h["tokens"], "tokens differ"
assert m["timing"]["cached_tokens"] == 0 and m["timing"]["prefill_tokens"] == n, m["timing"]
assert h["timing"]["cached_tokens"] == n - 1 and h["timing"]["prefill_tokens"] == 1, h["timing"]
assert h["timing"]["prompt_cache_ms"] > 0' "$tmp/miss.json" "$tmp/hit.json" && ok || bad "miss/hit JSON"
[ "$(stat -c %Y.%s "$PC")" = "$before" ] && ok || bad "a file holding this very prompt was rewritten"
# A longer prompt that starts with P reuses what the file holds, then saves itself.
"${RUN[@]}" -p "$P and then some more words" -n 4 --prompt-cache "$PC" >/dev/null 2>"$tmp/longer.err" && ok ||
  bad "longer: $(cat "$tmp/longer.err")"
grep -qE "^\[gen\] prompt cache .*: [1-9][0-9]* tokens reused \([0-9]+ ms\), saved [0-9]+ tokens$" "$tmp/longer.err" && ok ||
  bad "longer prompt summary: $(cat "$tmp/longer.err")"
grep -qE "^\[gen\] prompt +[1-9][0-9]* tokens' K/V reused, [0-9]+ computed$" "$tmp/longer.err" && ok ||
  bad "reused line: $(cat "$tmp/longer.err")"

# ---- files that cannot serve this run: one error line, exit 2, the file untouched --------------------
cp "$PC" "$tmp/good.kv"
expect_error 2 "K/V file is for other weights" -- --model "$tmp/other" -p "$P" -n 2 --prompt-cache "$tmp/good.kv" --device cpu
expect_error 2 "computed with --dtype fp32; this run uses bf16" -- --model "$M" -p "$P" -n 2 --prompt-cache "$tmp/good.kv" \
  --device cpu --dtype bf16
size=$(stat -c %s "$tmp/good.kv")
head -c $((size - 100)) "$tmp/good.kv" >"$tmp/short.kv"
expect_error 2 "truncated" -- --model "$M" -p "$P" -n 2 --prompt-cache "$tmp/short.kv" --device cpu
cp "$tmp/good.kv" "$tmp/flip.kv"
printf '\x55' | dd of="$tmp/flip.kv" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect_error 2 "corrupted" -- --model "$M" -p "$P" -n 2 --prompt-cache "$tmp/flip.kv" --device cpu
cmp -s "$PC" "$tmp/good.kv" && ok || bad "a refused run changed the prompt cache"
mkdir "$tmp/dir.kv"
expect_error 2 "prompt cache" -- --model "$M" -p "$P" -n 2 --prompt-cache "$tmp/dir.kv" --device cpu
expect_error 2 "cannot write the prompt cache" -- --model "$M" -p "$P" -n 2 --prompt-cache "$tmp/no/such/dir/x.kv"
expect_error 2 "--prompt-cache takes a single prompt.*--prompts-file" -- --model "$M" --prompts-file "$tmp/prompts.txt" \
  --prompt-cache "$PC"
expect_error 2 "--prompt-cache takes a single prompt.*--no-cache" -- --model "$M" -p "$P" --no-cache --prompt-cache "$PC"
expect_error 2 "--prompt-cache takes a single prompt.*--samples" -- --model "$M" -p "$P" --samples 2 --prompt-cache "$PC"
ls "$tmp" | grep -q '\.tmp\.' && bad "a temporary file was left: $(ls "$tmp")" || ok

# ---- gen chat --session: resumed by a second process --------------------------------------------------
CHAT=("$GEN" chat --model "$M" -n 6 --temperature 0.8 --device cpu)
printf 'Hello\nHow is the weather?\nThank you\n' | "${CHAT[@]}" --seed 7 >"$tmp/one.out" 2>"$tmp/one.err"
S=$tmp/chat.kv
printf 'Hello\nHow is the weather?\n' | "${CHAT[@]}" --seed 7 --session "$S" >"$tmp/two.out" 2>"$tmp/two.err" && ok ||
  bad "session turns 1-2: $(cat "$tmp/two.err")"
printf 'Thank you\n' | "${CHAT[@]}" --session "$S" >>"$tmp/two.out" 2>"$tmp/three.err" && ok ||
  bad "session turn 3: $(cat "$tmp/three.err")"
cmp -s "$tmp/one.out" "$tmp/two.out" && ok || bad "resumed replies differ: $(cat "$tmp/one.out") // $(cat "$tmp/two.out")"
grep -q "^\[chat\] resumed 2 turns ([0-9]* tokens with their K/V) in .* ms from $S$" "$tmp/three.err" && ok ||
  bad "resume note: $(cat "$tmp/three.err")"
# Turn 3 reuses, in the second process, exactly what it reused in the first.
r1=$(grep '^\[chat\] turn 3: ' "$tmp/one.err" | sed -E 's/.*: ([0-9]+) tokens reused.*/\1/')
r3=$(grep '^\[chat\] turn 3: ' "$tmp/three.err" | sed -E 's/.*: ([0-9]+) tokens reused.*/\1/')
[ -n "$r1" ] && [ "$r1" = "$r3" ] && [ "$r1" -gt 0 ] && ok || bad "turn 3 reused $r3 resumed, $r1 in one process"
printf 'Hi\n' | "$GEN" chat --model "$M" --device cpu --session "$S" --system "Another system text" >/dev/null \
  2>"$tmp/err"
[ $? = 2 ] && grep -q "^error: --system differs from the chat session's" "$tmp/err" && ok || bad "--system conflict: $(cat "$tmp/err")"
printf 'Hi\n' | "$GEN" chat --model "$M" --device cpu --session "$S" --no-cache >/dev/null 2>"$tmp/err"
[ $? = 2 ] && grep -q "^error: --session keeps the conversation's K/V" "$tmp/err" && ok || bad "--no-cache: $(cat "$tmp/err")"
printf 'Hi\n' | "$GEN" chat --model "$M" --device cpu --session "$PC" >/dev/null 2>"$tmp/err"
[ $? = 2 ] && grep -q "^error: the K/V file is a prompt cache, not a chat session" "$tmp/err" && ok ||
  bad "prompt cache as a session: $(cat "$tmp/err")"
expect_error 2 "K/V file is a chat session, not a prompt cache" -- --model "$M" -p "$P" -n 2 --prompt-cache "$S" --device cpu

# ---- gen info: how many tokens a GiB of prefix cache holds --------------------------------------------
"$GEN" info --model "$M" --json >"$tmp/info.json" 2>/dev/null
jq_py 'j = json.load(open(sys.argv[1])); k = j["kv_cache"]["fp32"]
assert k["bytes_per_token"] == 2 * 2 * 32 * 4, k
assert k["prefix_cache_tokens_per_gib"] == (1 << 30) // (16 * k["bytes_per_token"]) * 16, k' "$tmp/info.json" && ok ||
  bad "gen info prefix cache: $(cat "$tmp/info.json")"

finish cli_prefix
