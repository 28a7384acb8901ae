#!/usr/bin/env bash
# Input and defaults a user expects (the hardening issue): ranges with the real bounds and the value
# as typed, the .jsonl seed rule, unknown keys and "stop" per line, --threads above the cores, odd
# files, huge prompts refused by their bytes, --stop checked as UTF-8, a random seed reported, --samples,
# one spelling (--ctx, --batch-size) in every command, and a positional prompt.
# Env: GEN (the gen binary), MAKE_MODEL (gen-make-model). GEN_TOKENIZER_DIR overrides the tokenizer.
set -u
source "$(dirname "$0")/cli_lib.sh"
make_model "$tmp/m"
M=$tmp/m
P=(--model "$M" --device cpu --prompt "Hello")
# tokens FILE: the "tokens" of each JSON line, one line each.
tokens() { python3 -c "import json,sys; [print(json.loads(l)['tokens']) for l in open(sys.argv[1])]" "$1"; }

# ---- ranges: the real bounds, the value as typed ---------------------------------------------
expect_error 2 "^error: --max-new-tokens 099999999999 is out of range: must be in 0..16777216 \(--max-new-tokens\)$" -- "${P[@]}" -n 099999999999
expect_error 2 "^error: --top-k 16777217 is out of range: must be in 0..16777216 \(--top-k\)$" -- "${P[@]}" --top-k 16777217
expect_error 2 "^error: --temperature 1e9 is out of range: must be in \[0, 100\] \(--temperature\)$" -- "${P[@]}" --temperature 1e9
expect_error 2 "^error: --top-p 0 is out of range: must be in \(0, 1\] \(--top-p\)$" -- "${P[@]}" --top-p 0
expect_error 2 "^error: --top-p '0x1p-1' is not a number \(--top-p\)$" -- "${P[@]}" --top-p 0x1p-1
expect_error 2 "^error: --batch-size 4097 is out of range: must be in 1..4096 \(--batch-size\)$" -- "${P[@]}" --batch-size 4097
expect_error 2 "^error: --samples 0 is out of range: must be in 1..4096 \(--samples\)$" -- "${P[@]}" --samples 0
expect_error 2 "^error: --threads -1 is out of range: must be in 0..4096 \(--threads\)$" -- "${P[@]}" --threads -1
expect_error 2 "^error: --ctx 99999999999999999999 is out of range: must be in 0..1048576 \(--ctx\)$" -- "${P[@]}" --ctx 99999999999999999999

# ---- --stop is checked like a prompt ----------------------------------------------------------
expect_error 2 "^error: invalid UTF-8 at byte 1 \(--stop\)$" -- "${P[@]}" --stop $'a\xff'

# ---- --threads above the cores: allowed, with a note; the tokens are those of one thread ---------
"$GEN" "${P[@]}" -n 6 --temperature 0 --ignore-eos --json --threads 1 2>/dev/null >"$tmp/t1.json"
"$GEN" "${P[@]}" -n 6 --temperature 0 --ignore-eos --json --threads 64 2>"$tmp/err" >"$tmp/t64.json" \
  && grep -q "^\[gen\] note: --threads 64 is more than the [0-9]* cores" "$tmp/err" \
  && [ "$(tokens "$tmp/t1.json")" = "$(tokens "$tmp/t64.json")" ] && ok || bad "--threads 64: $(cat "$tmp/err")"

# ---- a positional prompt is --prompt ---------------------------------------------------------
"$GEN" --model "$M" --device cpu "Hello" -n 4 --temperature 0 --json 2>/dev/null >"$tmp/pos.json"
"$GEN" "${P[@]}" -n 4 --temperature 0 --json 2>/dev/null >"$tmp/opt.json"
[ -s "$tmp/pos.json" ] && [ "$(tokens "$tmp/pos.json")" = "$(tokens "$tmp/opt.json")" ] && ok || bad "positional prompt"
expect_error 2 "excludes" -- --model "$M" "Hello" --prompt "Hi"

# ---- a random seed by default, reported, and repeatable ----------------------------------------
for i in 1 2; do "$GEN" "${P[@]}" -n 8 --temperature 1 --ignore-eos --json 2>/dev/null >"$tmp/r$i.json"; done
seed1=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['seed'])" "$tmp/r1.json")
seed2=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['seed'])" "$tmp/r2.json")
[ -n "$seed1" ] && [ "$seed1" != "$seed2" ] && ok || bad "two runs without --seed drew seeds $seed1 and $seed2"
"$GEN" "${P[@]}" -n 8 --temperature 1 --ignore-eos --json --seed "$seed1" 2>/dev/null >"$tmp/again.json"
[ "$(tokens "$tmp/r1.json")" = "$(tokens "$tmp/again.json")" ] && ok || bad "--seed <reported seed> repeats the run"
"$GEN" "${P[@]}" -n 2 --seed 77 2>"$tmp/err" >/dev/null && grep -q "^\[gen\] device cpu (fp32), KV cache, seed 77, finish" "$tmp/err" \
  && ok || bad "the summary names the seed: $(cat "$tmp/err")"

"$GEN" "${P[@]}" -n 3 --compare --json --seed 9 2>/dev/null | python3 -c "
import json,sys
j=json.load(sys.stdin)
assert j['seed']==9 and j['cache']['seed']==9 and j['no_cache']['seed']==9, j" && ok || bad "--compare --json names the seed"
# gen chat too: without --seed the replies draw with a random seed, named on stderr; --seed repeats them.
CHAT=("$GEN" chat --model "$M" -n 8 --temperature 1 --device cpu)
printf 'Hi\n' | "${CHAT[@]}" >"$tmp/c1.out" 2>"$tmp/c1.err"
printf 'Hi\n' | "${CHAT[@]}" >"$tmp/c2.out" 2>"$tmp/c2.err"
cs1=$(sed -n 's/^\[chat\] seed \([0-9]*\)$/\1/p' "$tmp/c1.err")
cs2=$(sed -n 's/^\[chat\] seed \([0-9]*\)$/\1/p' "$tmp/c2.err")
printf 'Hi\n' | "${CHAT[@]}" --seed "$cs1" >"$tmp/c3.out" 2>/dev/null
[ -n "$cs1" ] && [ "$cs1" != "$cs2" ] && cmp -s "$tmp/c1.out" "$tmp/c3.out" && ok \
  || bad "chat's random seed: '$cs1' '$cs2' $(cat "$tmp/c1.err")"

# ---- --samples K: K lines, seeds seed..seed+K-1, each as its own run -----------------------------
"$GEN" "${P[@]}" -n 6 --temperature 1 --ignore-eos --json --seed 10 --samples 3 2>"$tmp/err" >"$tmp/s.json" || bad "--samples: $(cat "$tmp/err")"
for k in 0 1 2; do
  "$GEN" "${P[@]}" -n 6 --temperature 1 --ignore-eos --json --seed $((10 + k)) 2>/dev/null >"$tmp/s$k.json"
done
python3 - "$tmp/s.json" "$tmp/s0.json" "$tmp/s1.json" "$tmp/s2.json" <<'PY' && ok || bad "--samples 3 lines"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
alone = [json.load(open(p)) for p in sys.argv[2:]]
assert [l["sample"] for l in lines] == [0, 1, 2], lines
assert [l["index"] for l in lines] == [0, 0, 0]
assert [l["seed"] for l in lines] == [10, 11, 12]
assert [l["tokens"] for l in lines] == [a["tokens"] for a in alone]
assert "sample" not in alone[0]
PY
printf 'Hello\nOnce upon a time\n' >"$tmp/two.txt"
"$GEN" --model "$M" --device cpu --prompts-file "$tmp/two.txt" -n 4 --json --seed 5 --samples 2 --temperature 1 2>/dev/null >"$tmp/two.json"
python3 -c "
import json,sys
l=[json.loads(x) for x in open(sys.argv[1])]
assert [(x['index'],x['sample'],x['seed']) for x in l]==[(0,0,5),(0,1,6),(1,0,5),(1,1,6)], l" "$tmp/two.json" && ok || bad "--samples 2 over a prompts file"
expect_error 2 "--compare" -- "${P[@]}" --compare --samples 2
# --samples with --output and --resume: a cut file is completed, each (index, sample) once, and the
# resumed lines are those of the whole run. A long prompt's error line (its prompt echoed in part)
# resumes too.
python3 -c "print('z' * 9000)" >>"$tmp/two.txt"
RUN=(--model "$M" --device cpu --prompts-file "$tmp/two.txt" -n 4 --seed 5 --samples 2 --temperature 1)
"$GEN" "${RUN[@]}" --json 2>/dev/null >"$tmp/whole.json"
"$GEN" "${RUN[@]}" --output "$tmp/o.jsonl" 2>/dev/null
head -n 2 "$tmp/o.jsonl" >"$tmp/o2.jsonl"
"$GEN" "${RUN[@]}" --output "$tmp/o2.jsonl" --resume 2>"$tmp/err"; rc=$?
python3 - "$tmp/whole.json" "$tmp/o2.jsonl" <<'PY' && [ $rc = 3 ] && ok || bad "--samples --resume (exit $rc): $(cat "$tmp/err")"
import json, sys
key = lambda j: (j["index"], j.get("sample", -1))
whole = {key(j): j for j in map(json.loads, open(sys.argv[1]))}
resumed = [json.loads(l) for l in open(sys.argv[2])]
assert len(resumed) == len(whole) == 5, (len(resumed), len(whole))
assert len({key(j) for j in resumed}) == 5
for j in resumed:
    w = whole[key(j)]
    assert j.get("tokens") == w.get("tokens") and j.get("error") == w.get("error"), (j, w)
assert whole[(2, -1)]["prompt"] == "z" * 64 + "..."
PY

# ---- .jsonl: the seed rule of --seed, unknown keys, "stop" per line -----------------------------
cat >"$tmp/p.jsonl" <<'EOF'
{"prompt": "Hello", "seed": -1}
{"prompt": "Hello", "seed": 18446744073709551616}
{"prompt": "Hello", "seed": 18446744073709551615}
{"prompt": "Hello", "seed": 2.5}
{"prompt": "Hello", "max_tokens": 3}
{"prompt": "Hello", "top_k": 99999999}
{"prompt": "Hello", "stop": 7}
EOF
"$GEN" --model "$M" --device cpu --prompts-file "$tmp/p.jsonl" -n 2 --json 2>/dev/null >"$tmp/p.out"; rc=$?
python3 - "$tmp/p.out" <<'PY' && [ $rc = 3 ] && ok || bad ".jsonl field rules (exit $rc): $(cat "$tmp/p.out")"
import json, sys
l = {j["index"]: j for j in map(json.loads, open(sys.argv[1]))}
assert l[0]["error"] == '"seed" -1 is out of range: must be in 0..18446744073709551615 (line 1)', l[0]
assert l[1]["error"].startswith('"seed" ') and "is out of range: must be in 0..18446744073709551615" in l[1]["error"], l[1]
assert "error" not in l[2] and l[2]["seed"] == 18446744073709551615, l[2]
assert l[3]["error"] == '"seed" must be an integer (line 4)', l[3]
assert l[4]["error"].startswith('unknown key "max_tokens" (prompt, max_new_tokens'), l[4]
assert l[5]["error"] == '"top_k" 99999999 is out of range: must be in 0..16777216 (line 6)', l[5]
assert l[6]["error"].startswith('"stop" must be a non-empty string'), l[6]
PY
# "stop" per line: the line's stop string ends its prompt; the other line runs to its length.
"$GEN" "${P[@]}" -n 12 --temperature 0 --ignore-eos --json 2>/dev/null >"$tmp/free.json"
stop=$(python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['text'][2:5]))" "$tmp/free.json")
printf '{"prompt": "Hello", "stop": %s}\n{"prompt": "Hello"}\n' "$stop" >"$tmp/stop.jsonl"
"$GEN" --model "$M" --device cpu --prompts-file "$tmp/stop.jsonl" -n 12 --temperature 0 --ignore-eos --json 2>/dev/null >"$tmp/stop.out"
python3 -c "
import json,sys
a,b=[json.loads(x) for x in open(sys.argv[1])]
assert a['finish_reason']=='stop' and len(a['tokens'])<12, a
assert b['finish_reason']=='length' and len(b['tokens'])==12, b" "$tmp/stop.out" && ok || bad "\"stop\" per .jsonl line: $(cat "$tmp/stop.out")"

# ---- huge inputs: refused by their bytes, before the tokenizer; the error echoes a short prefix --
python3 -c "import sys; sys.stdout.write('x' * (100 << 20) + '\nHello\n')" >"$tmp/huge.txt"
start=$(date +%s)
timeout 120 "$GEN" --model "$M" --device cpu --prompts-file "$tmp/huge.txt" -n 2 --json 2>/dev/null >"$tmp/huge.out"; rc=$?
secs=$(($(date +%s) - start))
python3 - "$tmp/huge.out" <<'PY' && [ $rc = 3 ] && ok || bad "a 100 MB prompt line (exit $rc, ${secs} s): $(head -c 300 "$tmp/huge.out")"
import json, sys
a, b = [json.loads(l) for l in open(sys.argv[1])]
assert a["index"] == 0 and a["error"].startswith("prompt is 104857600 bytes, more than the context of 64 tokens can hold"), a["error"]
assert a["prompt"] == "x" * 64 + "...", len(a["prompt"])
assert b["index"] == 1 and "error" not in b
PY
echo "note: a 100 MB prompt line took ${secs} s"
python3 -c "import sys; sys.stdout.write('y' * (8 << 20))" >"$tmp/huge_prompt.txt"
expect_error 2 "^error: prompt is 8388608 bytes, more than the context of 64 tokens can hold \([0-9]+ bytes per token at most\) \(prompt\)$" -- --model "$M" --device cpu --prompt-file "$tmp/huge_prompt.txt"

# ---- odd files: one line, exit 2 -------------------------------------------------------------
ln -s "$tmp/loop" "$tmp/loop"
mkfifo "$tmp/fifo"
mkdir -p "$tmp/dir" "$tmp/fifo_model"
cp "$M"/* "$tmp/fifo_model/" && rm "$tmp/fifo_model/model.safetensors" && mkfifo "$tmp/fifo_model/model.safetensors"
expect_error 2 "^error: cannot read prompt file: .*\($tmp/loop\)$" -- --model "$M" --prompt-file "$tmp/loop"
expect_error 2 "^error: cannot read prompts file: .*\($tmp/loop\)$" -- --model "$M" --prompts-file "$tmp/loop"
expect_error 2 "^error: cannot read prompt file: it is a directory \($tmp/dir\)$" -- --model "$M" --prompt-file "$tmp/dir"
expect_error 2 "$tmp/loop" -- --model "$tmp/loop" --prompt "Hello"
expect_error 2 "not a regular file" -- --model "$tmp/fifo_model" --prompt "Hello"
expect_error 2 "$tmp/dir" -- --model "$M" --prompts-file "$tmp/two.txt" --output "$tmp/dir"
expect_error 2 "$tmp/dir" -- "${P[@]}" --trace "$tmp/dir"
expect_error 2 "$tmp/loop" -- perplexity --model "$M" --file "$tmp/loop"
if [ "$(id -u)" != 0 ]; then
  echo hi >"$tmp/unreadable" && chmod 000 "$tmp/unreadable"
  expect_error 2 "^error: cannot read prompt file: Permission denied" -- --model "$M" --prompt-file "$tmp/unreadable"
else
  echo "note: running as root, so an unreadable file cannot be made; that case is not tested"
fi
# A FIFO is a fine prompt file (bash's <(...) gives one): it is read, not refused.
"$GEN" --model "$M" --device cpu --prompt-file <(printf 'Hello') -n 4 --temperature 0 --json 2>/dev/null >"$tmp/fifo.json"
[ "$(tokens "$tmp/fifo.json")" = "$(tokens "$tmp/opt.json")" ] && ok || bad "--prompt-file <(...)"

# ---- one spelling in every command: --ctx and --batch-size, the old ones kept as aliases ---------
printf 'The quick brown fox jumps over the lazy dog. ' >"$tmp/text.txt"
"$GEN" perplexity --model "$M" --device cpu --file "$tmp/text.txt" --ctx 8 --json 2>/dev/null >"$tmp/ppl_ctx"
"$GEN" perplexity --model "$M" --device cpu --file "$tmp/text.txt" --context 8 --json 2>/dev/null >"$tmp/ppl_context"
python3 -c "
import json,sys
a,b=(json.load(open(p)) for p in sys.argv[1:])
assert a['context']==8 and a['nll']==b['nll'], (a,b)" "$tmp/ppl_ctx" "$tmp/ppl_context" && ok || bad "perplexity --ctx is --context"
"$GEN" info --model gpt2 --batch-size 4 --json 2>/dev/null >"$tmp/i1"
"$GEN" info --model gpt2 --batch 4 --json 2>/dev/null >"$tmp/i2"
python3 -c "
import json,sys
a,b=(json.load(open(p)) for p in sys.argv[1:])
assert a['batch']==b['batch']==4 and a['gpu']['kv_cache_bytes']==b['gpu']['kv_cache_bytes'], (a,b)" "$tmp/i1" "$tmp/i2" \
  && ok || bad "info --batch-size is --batch"

finish cli_input_test
