#!/usr/bin/env bash
# The command-line contract end to end through the real binary: JSON output, cache = no-cache,
# and one line "error: ..." with the right exit code for each broken input.
# Env: GEN (the gen binary), MAKE_MODEL (gen-make-model). GEN_TOKENIZER_DIR overrides the tokenizer.
set -u
source "$(dirname "$0")/cli_lib.sh"
make_model "$tmp/m"
M=$tmp/m

# ---- happy paths ------------------------------------------------------------------------------
"$GEN" --help >"$tmp/out" 2>&1 && grep -q -- "--no-cache" "$tmp/out" && ok || bad "--help"
"$GEN" --model "$M" --prompt "Hello world" -n 12 --temperature 0 --ignore-eos --json --device cpu >"$tmp/a.json" 2>"$tmp/err" || bad "json run: $(cat "$tmp/err")"
"$GEN" --model "$M" --prompt "Hello world" -n 12 --temperature 0 --ignore-eos --json --no-cache >"$tmp/b.json" 2>"$tmp/err" || bad "no-cache run: $(cat "$tmp/err")"
python3 - "$tmp/a.json" "$tmp/b.json" "$real_tok" <<'PY' && ok || bad "JSON contract"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == 1 and len(b) == 1, "one line per prompt"
a, b = a[0], b[0]
keys = {"index", "prompt", "prompt_tokens", "tokens", "text", "finish_reason", "use_cache", "device", "timing"}
assert keys <= set(a), set(a)
assert set(a["timing"]) >= {"load_ms", "prefill_ms", "decode_ms", "ttft_ms", "decode_tokens_per_s", "total_ms"}
assert a["index"] == 0 and a["prompt"] == "Hello world" and a["device"] == "cpu"
if sys.argv[3] == "1":
    assert a["prompt_tokens"] == [15496, 995], a["prompt_tokens"]
assert len(a["tokens"]) == 12 and a["finish_reason"] == "length"
assert a["use_cache"] is True and b["use_cache"] is False
assert a["dtype"] == "fp32", a["dtype"]  # the CPU's default
assert a["tokens"] == b["tokens"], (a["tokens"], b["tokens"])
assert a["text"] == b["text"]
PY
# Streaming mode prints the prompt then the text; the summary goes to stderr.
"$GEN" --model "$M" --prompt "Hi" -n 5 --temperature 0 >"$tmp/out" 2>"$tmp/err" \
  && head -c 2 "$tmp/out" | grep -q '^Hi' && grep -q 'decode' "$tmp/err" && grep -q 'KV cache' "$tmp/err" && ok \
  || bad "streaming output: $(cat "$tmp/out" "$tmp/err")"
# --prompt-file - reads stdin; the same seed gives the same text.
printf 'Once upon a time' | "$GEN" --model "$M" --prompt-file - -n 10 --seed 3 --temperature 0.8 --json >"$tmp/s1" 2>/dev/null
"$GEN" --model "$M" --prompt "Once upon a time" -n 10 --seed 3 --temperature 0.8 --json >"$tmp/s2" 2>/dev/null
python3 -c "import json,sys; a,b=(json.load(open(p)) for p in sys.argv[1:]); assert a['tokens']==b['tokens'] and len(a['tokens'])==10" \
  "$tmp/s1" "$tmp/s2" && ok || bad "seeded sampling from stdin"
# A prompt that fills the context exactly: no token fits, finish_reason "context".
"$GEN" --model "$M" --prompt "a a a a" -n 0 --json >"$tmp/out" 2>/dev/null
n=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['prompt_tokens']))" "$tmp/out")
"$GEN" --model "$M" --prompt "a a a a" -n 3 --ctx "$n" --json >"$tmp/out" 2>/dev/null
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['tokens']==[] and r['finish_reason']=='context', r" \
  "$tmp/out" && ok || bad "prompt filling the context"

# ---- Ctrl-C: the first SIGINT ends the run after the current step, keeps what was generated, prints
# the summary (or one whole JSON line) and exits 130. A model slow enough without the cache that the
# signal surely lands mid-run.
make_model "$tmp/slow" 4 4 256 1024
interrupt_run() {  # interrupt_run OUTFILE ERRFILE ARGS...: SIGINT once OUTFILE has grown past 40 bytes
  local out=$1 err=$2
  shift 2
  "$GEN" --model "$tmp/slow" --prompt "Stop me" -n 1000 --ignore-eos --no-cache --temperature 0 "$@" >"$out" 2>"$err" &
  local pid=$! i
  for i in $(seq 1 600); do
    [ "$(wc -c <"$out")" -gt 40 ] && break
    [ "$#" -gt 0 ] && [ "$1" = --json ] && [ "$i" -gt 20 ] && break  # JSON prints at the end: wait 2 s
    sleep 0.1
  done
  kill -INT "$pid"
  wait "$pid"
}
interrupt_run "$tmp/int.out" "$tmp/int.err"; rc=$?
[ $rc = 130 ] && head -c 7 "$tmp/int.out" | grep -q '^Stop me' && grep -q 'finish: interrupted' "$tmp/int.err" \
  && grep -q 'decode' "$tmp/int.err" && ok || bad "SIGINT in streaming mode: rc=$rc $(cat "$tmp/int.err")"
interrupt_run "$tmp/int.json" "$tmp/int.err" --json; rc=$?
python3 -c "
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
r = json.loads(lines[0])
assert r['finish_reason'] == 'interrupted' and 0 < len(r['tokens']) < 1000, r['finish_reason']
" "$tmp/int.json" && [ $rc = 130 ] && ok || bad "SIGINT in JSON mode: rc=$rc $(head -c 300 "$tmp/int.json") $(cat "$tmp/int.err")"

# ---- broken inputs -----------------------------------------------------------------------------
P=(--prompt "Hello")
expect_error 2 "model directory not found" -- --model "$tmp/nope" "${P[@]}"
expect_error 2 "is not downloaded" -- --model gpt2-xl "${P[@]}"
for f in config.json model.safetensors vocab.json merges.txt; do
  cp -r "$M" "$tmp/x"; rm "$tmp/x/$f"
  expect_error 2 "missing $f" -- --model "$tmp/x" "${P[@]}"; rm -rf "$tmp/x"
done
cp -r "$M" "$tmp/x"; truncate -s -100 "$tmp/x/model.safetensors"
expect_error 2 "model.safetensors" -- --model "$tmp/x" "${P[@]}"; rm -rf "$tmp/x"
cp -r "$M" "$tmp/x"; printf '\xff\xff\xff\xff\xff\xff\x00\x00{}' >"$tmp/x/model.safetensors"
expect_error 2 "header" -- --model "$tmp/x" "${P[@]}"; rm -rf "$tmp/x"
cp -r "$M" "$tmp/x"; : >"$tmp/x/model.safetensors"
expect_error 2 "model.safetensors" -- --model "$tmp/x" "${P[@]}"; rm -rf "$tmp/x"
cp -r "$M" "$tmp/x"; sed -i 's/"n_layer": 2/"n_layer": 3/' "$tmp/x/config.json"
expect_error 2 "missing tensor 'h.2" -- --model "$tmp/x" "${P[@]}"; rm -rf "$tmp/x"
cp -r "$M" "$tmp/x"; sed -i 's/"n_embd": 32/"n_embd": 48/' "$tmp/x/config.json"
expect_error 2 "shape" -- --model "$tmp/x" "${P[@]}"; rm -rf "$tmp/x"
cp -r "$M" "$tmp/x"; sed -i 's/"n_head": 2/"n_head": 5/' "$tmp/x/config.json"
expect_error 2 "divisible" -- --model "$tmp/x" "${P[@]}"; rm -rf "$tmp/x"
cp -r "$M" "$tmp/x"; sed -i 's/"gelu_new"/"relu"/' "$tmp/x/config.json"
expect_error 2 "relu" -- --model "$tmp/x" "${P[@]}"; rm -rf "$tmp/x"
cp -r "$M" "$tmp/x"; echo '{"n_layer": ' >"$tmp/x/config.json"
expect_error 2 "config.json" -- --model "$tmp/x" "${P[@]}"; rm -rf "$tmp/x"
cp -r "$M" "$tmp/x"; echo '["not", "an", "object"]' >"$tmp/x/vocab.json"
expect_error 2 "vocab.json" -- --model "$tmp/x" "${P[@]}"; rm -rf "$tmp/x"
printf 'ok \xc3\x28 bad' >"$tmp/badutf8.txt"
expect_error 2 "invalid UTF-8 in prompt at byte 3" -- --model "$M" --prompt-file "$tmp/badutf8.txt"
expect_error 2 "cannot read prompt file" -- --model "$M" --prompt-file "$tmp/none.txt"
expect_error 2 "cannot read prompt file: it is a directory" -- --model "$M" --prompt-file "$tmp"
expect_error 2 "longer than the context of 8|more than the context of 8 tokens can hold" -- --model "$M" --prompt "$(printf 'word %.0s' $(seq 1 50))" --ctx 8
expect_error 2 "--ctx 65 is out of range: must be in 0..64 \\(0: the model's n_positions\\)" -- --model "$M" "${P[@]}" --ctx 65
expect_error 2 "--top-p" -- --model "$M" "${P[@]}" --top-p 0
expect_error 2 "--top-p" -- --model "$M" "${P[@]}" --top-p 1.5
expect_error 2 "--temperature" -- --model "$M" "${P[@]}" --temperature -1
expect_error 2 "--temperature nan is out of range" -- --model "$M" "${P[@]}" --temperature nan
expect_error 2 "--max-new-tokens" -- --model "$M" "${P[@]}" -n -1
expect_error 2 "--top-k" -- --model "$M" "${P[@]}" --top-k -3
expect_error 2 "--threads" -- --model "$M" "${P[@]}" --threads -2
expect_error 2 "max-new-tokens" -- --model "$M" "${P[@]}" -n lots
expect_error 2 "device" -- --model "$M" "${P[@]}" --device gpu
expect_error 2 "excludes" -- --model "$M" "${P[@]}" --prompt-file "$tmp/badutf8.txt"
expect_error 2 "excludes" -- --model "$M" "${P[@]}" --use-cache --no-cache
expect_error 2 "required" -- --model "$M"
expect_error 2 "frobnicate" -- --model "$M" "${P[@]}" --frobnicate
expect_error 2 "not supported on the CPU" -- --model "$M" "${P[@]}" --device cpu --dtype fp16
# Help lists the commands; gen help CMD is CMD --help; -p is --prompt; .ndjson and .JSONL are JSON lines.
"$GEN" --help >"$tmp/out" 2>&1 && grep -q "gen chat" "$tmp/out" && grep -q "gen perplexity" "$tmp/out" \
  && grep -q "gen info" "$tmp/out" && ok || bad "--help lists the commands"
"$GEN" help chat >"$tmp/out" 2>&1 && grep -q "Usage: gen chat" "$tmp/out" && ok || bad "gen help chat: $(head -2 "$tmp/out")"
"$GEN" help >"$tmp/out" 2>&1 && grep -q "Usage: gen \[OPTIONS\]" "$tmp/out" && ok || bad "gen help: $(head -2 "$tmp/out")"
expect_error 2 "unknown command 'nope' \\(chat, perplexity, info, serve, merge\\)" -- help nope
"$GEN" --model "$M" -p "Hello" -n 4 --temperature 0 --json --device cpu 2>/dev/null | grep -o '"tokens":\[[^]]*\]' >"$tmp/t.p"
"$GEN" --model "$M" --prompt "Hello" -n 4 --temperature 0 --json --device cpu 2>/dev/null | grep -o '"tokens":\[[^]]*\]' >"$tmp/t.prompt"
[ -s "$tmp/t.p" ] && cmp -s "$tmp/t.p" "$tmp/t.prompt" && ok || bad "-p is --prompt"
for ext in ndjson JSONL; do
  printf '{"prompt": "Hello"}\n' >"$tmp/p.$ext"
  "$GEN" --model "$M" --prompts-file "$tmp/p.$ext" -n 2 --json --device cpu 2>"$tmp/err" | grep -q '"prompt":"Hello"' \
    && ok || bad ".$ext is JSON lines: $(cat "$tmp/err")"
done
# Integers are decimal only (CLI11 alone read 010 as eight and took 0x10), with the real bounds.
"$GEN" --model "$M" "${P[@]}" -n 010 --ignore-eos --json --device cpu 2>"$tmp/err" |
  python3 -c "import json,sys; assert len(json.loads(sys.stdin.readline())['tokens']) == 10" && ok || bad "-n 010 is ten: $(cat "$tmp/err")"
expect_error 2 "^error: --max-new-tokens '0x10' is not a decimal integer \(--max-new-tokens\)$" -- --model "$M" "${P[@]}" -n 0x10
expect_error 2 "^error: --seed -1 is out of range: must be in 0..18446744073709551615 \(--seed\)$" -- --model "$M" "${P[@]}" --seed -1
expect_error 2 "^error: --seed 18446744073709551616 is out of range: must be in 0..18446744073709551615 \(--seed\)$" -- --model "$M" "${P[@]}" --seed 18446744073709551616
expect_error 2 "^error: --threads '' is not a decimal integer \(--threads\)$" -- --model "$M" "${P[@]}" --threads ""
expect_error 2 "^error: --ctx '0x20' is not a decimal integer \(--ctx\)$" -- perplexity --model "$M" --file /dev/null --context 0x20
"$GEN" --model "$M" "${P[@]}" -n 2 --seed 18446744073709551615 --json --device cpu >/dev/null 2>"$tmp/err" && ok || bad "--seed 2^64-1: $(cat "$tmp/err")"
# The environment cannot crash gen: a thread count libgomp cannot start (it crashed in the first
# parallel region) is overridden before any parallel region; the tokens are those of a plain run.
"$GEN" --model "$M" "${P[@]}" -n 4 --temperature 0 --json --device cpu 2>/dev/null | grep -o '"tokens":\[[^]]*\]' >"$tmp/t.plain"
for v in 100000 0 abc; do
  OMP_NUM_THREADS=$v OPENBLAS_NUM_THREADS=$v "$GEN" --model "$M" "${P[@]}" -n 4 --temperature 0 --json --device cpu \
    2>"$tmp/err" | grep -o '"tokens":\[[^]]*\]' >"$tmp/t.env" && [ -s "$tmp/t.plain" ] && cmp -s "$tmp/t.plain" "$tmp/t.env" \
    && ok || bad "OMP_NUM_THREADS=$v: $(tail -2 "$tmp/err")"
done
# int8 is the CPU's: refused for cuda by name, whether or not a GPU is there.
expect_error 2 "--dtype int8 is not supported on cuda yet" -- --model "$M" "${P[@]}" --device cuda --dtype int8
# bf16 and int8 on the CPU: the JSON and the summary say which dtype ran.
for dt in bf16 int8; do
  "$GEN" --model "$M" "${P[@]}" -n 3 --device cpu --dtype $dt --json >"$tmp/out" 2>"$tmp/err" \
    && grep -q "\"dtype\":\"$dt\"" "$tmp/out" && ok || bad "--dtype $dt json: $(cat "$tmp/err")"
  "$GEN" --model "$M" "${P[@]}" -n 3 --device cpu --dtype $dt >/dev/null 2>"$tmp/err" \
    && grep -q "^\[gen\] device cpu ($dt), KV cache" "$tmp/err" && ok || bad "--dtype $dt summary: $(cat "$tmp/err")"
done
# GEN_CPU_PLAIN=1 forces the plain loops: int8's integer sums are exact both ways, so the tokens agree.
for plain in 0 1; do
  GEN_CPU_PLAIN=$plain "$GEN" --model "$M" "${P[@]}" -n 8 --temperature 0 --ignore-eos --device cpu --dtype int8 --json \
    2>"$tmp/err" | python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['tokens'])" >"$tmp/int8.$plain" \
    || bad "int8 GEN_CPU_PLAIN=$plain: $(cat "$tmp/err")"
done
[ -s "$tmp/int8.0" ] && cmp -s "$tmp/int8.0" "$tmp/int8.1" && ok || bad "int8 plain and oneDNN tokens differ: $(cat "$tmp/int8.0" "$tmp/int8.1")"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  expect_error 2 "--device cuda: " -- --model "$M" "${P[@]}" --device cuda
  # auto falls back to the CPU with a note on stderr and still answers.
  "$GEN" --model "$M" "${P[@]}" -n 2 --json >"$tmp/out" 2>"$tmp/err" && grep -q '"device":"cpu"' "$tmp/out" \
    && grep -q '^note: .*running on the CPU' "$tmp/err" && ok || bad "--device auto fallback: $(cat "$tmp/err")"
fi

# ---- checkpoints: padded vocabularies, non-finite weights, models not (fully) downloaded -----------
# A vocabulary padded past the tokenizer (nanoGPT's 50304 rows for GPT-2's 50257 ids) loads, never
# draws a padded id, and scores text.
padflags=("${tokflag[@]}")
[ "$real_tok" = 1 ] || padflags=(--tokenizer-vocab $vocab)
"$MAKE_MODEL" --out "$tmp/pad" --layers 2 --heads 2 --embd 32 --positions 64 --vocab $((vocab + 47)) --std 0.3 \
  "${padflags[@]}" >/dev/null || bad "gen-make-model --vocab $((vocab + 47))"
"$GEN" --model "$tmp/pad" --prompt "Hello" -n 40 --temperature 2 --seed 1 --ignore-eos --json --device cpu \
  >"$tmp/pad.json" 2>"$tmp/err" && python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r['tokens']) == 40 and max(r['tokens']) < int(sys.argv[2]), r['tokens']
" "$tmp/pad.json" $vocab && ok || bad "padded vocabulary: $(cat "$tmp/err")"
printf 'Hello world, hello padded rows.' >"$tmp/pad.txt"
"$GEN" perplexity --model "$tmp/pad" --file "$tmp/pad.txt" --json --device cpu >/dev/null 2>"$tmp/err" \
  && ok || bad "perplexity on a padded vocabulary: $(cat "$tmp/err")"
# A NaN or an Inf in a weight is refused at load, naming the tensor and the element.
for v in nan inf; do
  cp -r "$M" "$tmp/x"
  python3 - "$tmp/x/model.safetensors" $v <<'PY'
import json, struct, sys
path, v = sys.argv[1], float(sys.argv[2])
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    t = json.loads(f.read(n))["transformer.h.0.attn.c_attn.weight"]
    assert t["dtype"] == "F32"
    f.seek(8 + n + t["data_offsets"][0] + 4 * 3)
    f.write(struct.pack("<f", v))
PY
  what=$([ $v = nan ] && echo "a NaN" || echo "an Inf")
  expect_error 2 "^error: tensor 'transformer.h.0.attn.c_attn.weight' holds $what at element 3 \(.*/x/model.safetensors\)$" \
    -- --model "$tmp/x" "${P[@]}"
  rm -rf "$tmp/x"
done
# An empty or partial models/NAME is "not downloaded", with the hint an absent one gets: found from the
# working directory (the default --model models/gpt2) and through GEN_MODELS_DIR.
mkdir -p "$tmp/cwd/models/gpt2" "$tmp/partial/gpt2-medium"
cp "$M/config.json" "$M/vocab.json" "$tmp/partial/gpt2-medium/"
if [ ! -f "$(dirname "$GEN")/../models/gpt2/model.safetensors" ]; then  # else gen finds that one
  cd "$tmp/cwd"
  expect_error 2 "^error: model 'gpt2' is not downloaded; run scripts/download_model.sh gpt2 \(needs internet\) or pass --model DIR \(models/gpt2 has no config.json\)$" \
    -- "${P[@]}"
  cd - >/dev/null
fi
GEN_MODELS_DIR=$tmp/partial expect_error 2 "model 'gpt2-medium' is not downloaded; run scripts/download_model.sh gpt2-medium .*gpt2-medium has no model.safetensors" \
  -- --model gpt2-medium "${P[@]}"
# scripts/download_model.sh removes what it created when a download fails. A stand-in curl on PATH
# fetches config.json, then fails half-way through the next file.
mkdir -p "$tmp/bin"
cat >"$tmp/bin/curl" <<'SH'
#!/bin/sh
out=; url=
while [ $# -gt 0 ]; do case "$1" in -o) out=$2; shift ;; -*) ;; *) url=$1 ;; esac; shift; done
case "$url" in *config.json) echo '{}' >"$out" ;; *) echo partial >"$out"; exit 22 ;; esac
SH
chmod +x "$tmp/bin/curl"
dl() { PATH="$tmp/bin:$PATH" GEN_MODELS_DIR=$tmp/dl bash "$here/../scripts/download_model.sh" "$1" >/dev/null 2>"$tmp/err"; }
dl gpt2-medium
rc=$?
[ $rc = 1 ] && [ ! -e "$tmp/dl/gpt2-medium" ] && grep -q "could not fetch .*vocab.json" "$tmp/err" && ok \
  || bad "failed download left $(ls -A "$tmp/dl/gpt2-medium" 2>&1) (rc $rc: $(cat "$tmp/err"))"
# A directory that was there before stays, with what it held; only this run's files go.
mkdir -p "$tmp/dl/gpt2-large" && echo keep >"$tmp/dl/gpt2-large/notes.txt"
dl gpt2-large
rc=$?
[ $rc = 1 ] && [ "$(ls -A "$tmp/dl/gpt2-large")" = notes.txt ] && ok \
  || bad "failed download into an existing dir: $(ls -A "$tmp/dl/gpt2-large") (rc $rc)"
# gpt2's sizes are pinned: a config.json of the wrong size is refused and removed too.
dl gpt2
rc=$?
[ $rc = 1 ] && [ ! -e "$tmp/dl/gpt2" ] && grep -q "expected 665" "$tmp/err" && ok || bad "wrong size left files (rc $rc)"
# The real curl against a mirror that does not answer (GEN_DOWNLOAD_BASE): nothing is left either.
if command -v curl >/dev/null; then
  GEN_DOWNLOAD_BASE=http://127.0.0.1:9 GEN_MODELS_DIR=$tmp/dl bash "$here/../scripts/download_model.sh" gpt2 \
    >/dev/null 2>"$tmp/err"
  rc=$?
  [ $rc = 1 ] && [ ! -e "$tmp/dl/gpt2" ] && ok || bad "unreachable mirror: rc $rc, left $(ls -A "$tmp/dl")"
fi

finish cli_test
