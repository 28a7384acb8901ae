#!/usr/bin/env bash
# `gen info` through the real binary: the numbers for built-in shapes, a model directory's config
# over the built-in one, the JSON object, the what-if warning, and one-line errors with exit code 2.
# Env: GEN (the gen binary).
set -u
source "$(dirname "$0")/cli_lib.sh"


# expect_out ARGS... -- PATTERN...: exit 0, empty stderr, stdout contains every fixed-string PATTERN.
expect_out() {
  local args=()
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  "$GEN" info "${args[@]}" >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$?
  if [ "$rc" != 0 ] || [ -s "$tmp/err" ]; then bad "info ${args[*]} -> exit $rc: $(cat "$tmp/err")"; return; fi
  for p in "$@"; do
    if ! grep -qF -- "$p" "$tmp/out"; then bad "info ${args[*]}: no '$p' in: $(cat "$tmp/out")"; return; fi
  done
  ok
}

# A GEN_MODELS_DIR with nothing in it, so that names resolve the same way on every machine unless a
# models/ folder beside the build holds them (the numbers are the same either way).
mkdir -p "$tmp/none"
export GEN_MODELS_DIR=$tmp/none

# ---- the user stories -----------------------------------------------------------------------------
expect_out --model gpt2-xl --ctx 4096 --batch 8 -- \
  "48 layers, 25 heads, n_embd 1600, head_dim 64, n_positions 1024, vocab 50257" \
  "parameters  1,557,611,200" "fp32 6,230,444,800 B" "fp16 3,115,222,400 B" \
  "warning: context 4096 is beyond n_positions 1024" \
  "fp16  per token     307,200 B" "per sequence  1,258,291,200 B" "fp32  per token     614,400 B" \
  "2 x 8 x 4096 x 48 x 25 x 64 x 2 = 10,066,329,600 B (9.38 GiB)" \
  "2 x 8 x 4096 x 48 x 25 x 64 x 4 = 20,132,659,200 B (18.75 GiB)" \
  "GPU  " "CPU  available"
expect_out --model gpt2 -- "parameters  124,439,808" "per sequence  37,748,736 B" \
  "2 x 1 x 1024 x 12 x 12 x 64 x 2 = 37,748,736 B (36.00 MiB)"
if grep -q "warning" "$tmp/out"; then bad "gpt2 at its own n_positions warns: $(cat "$tmp/out")"; else ok; fi
expect_out --model gpt2 --dtype fp32 --batch-size 2 -- "2 x 2 x 1024 x 12 x 12 x 64 x 4 = 150,994,944 B"
if grep -q "fp16  per token" "$tmp/out"; then bad "--dtype fp32 still shows fp16"; else ok; fi
"$GEN" info --help >"$tmp/out" 2>&1 && grep -q -- "--batch" "$tmp/out" && ok || bad "info --help"

# ---- JSON ------------------------------------------------------------------------------------------
"$GEN" info --model gpt2-xl --ctx 4096 --batch 8 --json >"$tmp/xl.json" 2>"$tmp/err" || bad "json: $(cat "$tmp/err")"
python3 - "$tmp/xl.json" <<'PY' && ok || bad "JSON fields"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, "one line"
j = json.loads(lines[0])
assert j["config"] == {"n_layer": 48, "n_head": 25, "n_embd": 1600, "head_dim": 64, "n_positions": 1024,
                       "vocab_size": 50257}, j["config"]
assert j["params"] == 1557611200
# int8: 1554971200 matrix codes + 4 x 741457 scales + 4 x 2640000 fp32 others
assert j["weight_bytes"] == {"fp32": 6230444800, "fp16": 3115222400, "bf16": 3115222400, "int8": 1568497028}
assert j["context"] == 4096 and j["batch"] == 8 and j["dtype"] == "fp16"
assert j["context_beyond_n_positions"] is True and len(j["warnings"]) == 1
kv = j["kv_cache"]
assert set(kv) == {"fp16", "fp32"}
assert kv["fp16"]["bytes_per_token"] == 307200 and kv["fp16"]["bytes_per_sequence"] == 1258291200
assert kv["fp16"]["bytes_batch"] == 10066329600 and kv["fp32"]["bytes_batch"] == 20132659200
assert kv["fp16"]["formula"] == "2 x 8 x 4096 x 48 x 25 x 64 x 2 = 10066329600"
g = j["gpu"]
assert g["need_bytes"] == 3115222400 + 10066329600 and g["dtype"] == "fp16"
assert (g["available"] and g["total_bytes"] > 0 and isinstance(g["fits"], bool)) or \
       (not g["available"] and g["reason"] and g["fits"] is None), g
h = j["host"]
assert h["need_bytes"] == 6230444800 + 6219884800 + 20132659200 and h["dtype"] == "fp32"  # + the matrices' copy
assert h["mem_available_bytes"] > 0 and h["fits"] == (h["need_bytes"] <= h["mem_available_bytes"]), h
PY

# ---- a model directory's config wins ------------------------------------------------------------
mkdir -p "$tmp/models/gpt2" "$tmp/empty"
echo '{"n_layer": 3, "n_head": 2, "n_embd": 32, "n_positions": 64, "vocab_size": 600}' >"$tmp/models/gpt2/config.json"
expect_out --model "$tmp/models/gpt2" -- "($tmp/models/gpt2/config.json)" "3 layers, 2 heads, n_embd 32" \
  "2 x 1 x 64 x 3 x 2 x 16 x 2 = 24,576 B"
touch "$tmp/models/gpt2/model.safetensors" "$tmp/models/gpt2/vocab.json" "$tmp/models/gpt2/merges.txt"  # complete
GEN_MODELS_DIR=$tmp/models "$GEN" info --model gpt2 --json >"$tmp/named.json" 2>"$tmp/err" || bad "named: $(cat "$tmp/err")"
python3 -c "
import json, sys
j = json.load(open(sys.argv[1]))
assert j['config']['n_layer'] == 3 and j['config_source'].endswith('models/gpt2/config.json'), j
assert j['params'] == 3 * (12 * 32 * 32 + 13 * 32) + 600 * 32 + 64 * 32 + 2 * 32, j['params']
" "$tmp/named.json" && ok || bad "GEN_MODELS_DIR config over the built-in shape"

# ---- an empty or partial models/NAME is "not downloaded": the built-in shape -------------------------
mkdir -p "$tmp/partial/gpt2" "$tmp/cwd/models/gpt2-medium"
echo '{"n_layer": 3, "n_head": 2, "n_embd": 32, "n_positions": 64, "vocab_size": 600}' >"$tmp/partial/gpt2/config.json"
GEN_MODELS_DIR=$tmp/partial expect_out --model gpt2 -- "built-in shape: no model directory found" "12 layers, 12 heads"
if [ ! -f "$(dirname "$GEN")/../models/gpt2-medium/model.safetensors" ]; then  # else gen finds that one
  cd "$tmp/cwd"
  expect_out --model gpt2-medium -- "built-in shape" "24 layers, 16 heads"
  cd - >/dev/null
fi

# ---- a vocabulary padded past the tokenizer (nanoGPT and llm.c: 50304 rows, 50257 ids) -------------
"$MAKE_MODEL" --out "$tmp/pad" --layers 2 --heads 2 --embd 32 --positions 64 --vocab 647 --tokenizer-vocab 600 \
  >/dev/null || bad "gen-make-model --tokenizer-vocab"
expect_out --model "$tmp/pad" -- "vocab 647 (padded; the tokenizer has 600)"
"$GEN" info --model "$tmp/pad" --json | python3 -c "
import json, sys
c = json.load(sys.stdin)['config']
assert c['vocab_size'] == 647 and c['tokenizer_vocab'] == 600, c
" && ok || bad "padded vocabulary in --json"
expect_out --model "$tmp/models/gpt2" -- "vocab 600"
if grep -q padded "$tmp/out"; then bad "an unpadded vocabulary said padded: $(cat "$tmp/out")"; else ok; fi

# ---- errors ------------------------------------------------------------------------------------------
expect_error 2 "not a known name" -- info --model gpt3
expect_error 2 "no model directory '$tmp/missing'" -- info --model "$tmp/missing"
expect_error 2 "cannot open config: no such file" -- info --model "$tmp/empty"
expect_error 2 "^error: --batch-size 0 is out of range: must be in 1..2147483647 \\(--batch-size\\)$" -- info --model gpt2 --batch 0
expect_error 2 "--batch-size -3 is out of range" -- info --model gpt2 --batch -3
expect_error 2 "^error: --ctx 0 is out of range: must be in 1..2147483647 \\(--ctx\\)$" -- info --model gpt2 --ctx 0
expect_error 2 "--dtype must be fp32, fp16 or bf16 \(got 'fp8'\)" -- info --model gpt2 --dtype fp8
expect_error 2 "overflow" -- info --model gpt2-xl --ctx 2000000000 --batch 2000000000
expect_error 2 "batch" -- info --model gpt2 --batch many
expect_error 2 "bogus" -- info --bogus

finish cli_info
