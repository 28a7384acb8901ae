#!/usr/bin/env bash
# Two `gen serve` replicas behind nginx with scripts/serve/nginx.conf.example (docs/replicas.md): 200
# greedy completions (half streamed) from 16 clients through nginx, one replica SIGKILLed mid-run.
# Checks (tests/replicas/load.py) that every request but the streams already started on the killed
# replica succeeds with the CLI's text, that those end cleanly (no hang), and that the clients' counts,
# the survivor's /metrics and nginx's access log agree. Everything lives in a temporary directory,
# removed with the processes on exit, failed or not.
# Env: GEN, MAKE_MODEL (default build/gen, build/gen-make-model), GEN_TOKENIZER_DIR (as tests/serve),
# NGINX (default: nginx on PATH or /usr/sbin/nginx; installed with apt-get when missing and root),
# NGINX_CONF (default scripts/serve/nginx.conf.example: another config with the same placeholders).
# Prints "skipped: ..." and exits 0 only without nginx or a usable python3; exit 1 on a failed check.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
GEN=${GEN:-$root/build/gen}
MAKE_MODEL=${MAKE_MODEL:-$root/build/gen-make-model}
load="$here/replicas/load.py"
conf_example=${NGINX_CONF:-$root/scripts/serve/nginx.conf.example}

find_nginx() {
  local n
  for n in "${NGINX:-}" "$(command -v nginx)" /usr/sbin/nginx; do
    [ -n "$n" ] && [ -x "$n" ] && { echo "$n"; return 0; }
  done
  return 1
}

nginx_bin=$(find_nginx)
if [ -z "$nginx_bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "replicas: installing nginx (apt-get)"
  { apt-get install -y nginx || { apt-get update && apt-get install -y nginx; }; } >/dev/null 2>&1
  nginx_bin=$(find_nginx)
fi
[ -n "$nginx_bin" ] || { echo "skipped: no nginx (apt-get install nginx)"; exit 0; }
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 0; }
python3 -c 'import sys, http.client, statistics, threading; assert sys.version_info >= (3, 7)' 2>/dev/null ||
  { echo "skipped: python3 >= 3.7 with its standard library is needed"; exit 0; }
[ -x "$GEN" ] || { echo "FAIL: no gen binary at $GEN"; exit 1; }
[ -x "$MAKE_MODEL" ] || { echo "FAIL: no gen-make-model at $MAKE_MODEL"; exit 1; }
export PYTHONDONTWRITEBYTECODE=1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gen-replicas.XXXXXX")
chmod 755 "$tmp"  # started as root, nginx's workers run as nobody and must enter the prefix
pids=()
cleanup() {
  local p alive
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "replicas: interrupted"; exit 1' INT TERM HUP

fail() {
  echo "FAIL: $*"
  local f
  for f in "$tmp"/replica*.log "$tmp"/nginx/error.log "$tmp"/nginx/stderr.log; do
    [ -f "$f" ] && { echo "--- ${f#"$tmp"/} (last lines)"; tail -n 15 "$f"; }
  done
  exit 1
}

tokenizer_dir() {
  local d
  for d in "${GEN_TOKENIZER_DIR:-$root/../shared/gpt2-tokenizer}" "$root/models/gpt2"; do
    [ -f "$d/vocab.json" ] && [ -f "$d/merges.txt" ] && { echo "$d"; return 0; }
  done
  return 1
}

# 4 layers, 256 wide, GPT-2's vocabulary: a request of 48-62 tokens takes a few hundred ms on one thread,
# so that streams are running when the replica dies.
make_model() {
  local tok args=(--out "$tmp/model" --layers 4 --heads 4 --embd 256 --positions 256 --std 0.3)
  if tok=$(tokenizer_dir); then args+=(--vocab 50257 --tokenizer "$tok"); else args+=(--vocab 600); fi
  timeout 120 "$MAKE_MODEL" "${args[@]}" >/dev/null 2>"$tmp/make_model.log" ||
    { cat "$tmp/make_model.log"; fail "gen-make-model"; }
}

# The CLI's greedy texts: what every completion through nginx must equal.
expected_texts() {
  python3 "$load" prompts >"$tmp/prompts.jsonl" || fail "load.py prompts"
  timeout 120 "$GEN" --model "$tmp/model" --prompts-file "$tmp/prompts.jsonl" --json --temperature 0 \
    --ignore-eos --device cpu --threads 1 >"$tmp/expected.jsonl" 2>"$tmp/cli.log" ||
    { tail -n 5 "$tmp/cli.log"; fail "the CLI's expected texts"; }
}

# start_replica N: `gen serve` on a free port; sets ports[N] and pids once it is ready.
ports=() replica_pids=()
start_replica() {
  local n=$1 log="$tmp/replica$1.log" line
  "$GEN" serve --model "$tmp/model" --port 0 --device cpu --threads 1 --batch-size 16 2>"$log" >/dev/null &
  pids+=($!)
  replica_pids[n]=$!
  disown $!  # no "Killed" line from bash when the load kills it; cleanup still ends it by its pid
  for _ in $(seq 600); do
    grep -q "gen serve: ready" "$log" && break
    kill -0 "${replica_pids[$n]}" 2>/dev/null || fail "replica $n exited"
    sleep 0.1
  done
  grep -q "gen serve: ready" "$log" || fail "replica $n not ready in 60 s"
  line=$(grep -m1 "gen serve: listening on" "$log")
  ports[n]=${line##*:}
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nginx with the example config, its placeholders replaced; a few tries in case the port was taken.
start_nginx() {
  local d="$tmp/nginx"
  mkdir -p "$d" && chmod 755 "$d"
  for _ in 1 2 3; do
    nginx_port=$(free_port)
    sed -e "s|@PREFIX@|$d|g" -e "s|@LISTEN@|127.0.0.1:$nginx_port|g" \
        -e "s|@PORT0@|${ports[0]}|g" -e "s|@PORT1@|${ports[1]}|g" "$conf_example" >"$d/nginx.conf"
    ! grep -n '@[A-Z0-9]*@' "$d/nginx.conf" || fail "placeholders left in the config"
    "$nginx_bin" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" -g 'daemon off;' 2>>"$d/stderr.log" &
    nginx_pid=$!
    pids+=("$nginx_pid")
    python3 "$load" wait "http://127.0.0.1:$nginx_port/health" 10 2>/dev/null && return 0
    kill -TERM "$nginx_pid" 2>/dev/null
    wait "$nginx_pid" 2>/dev/null
  done
  fail "nginx did not answer /health (port $nginx_port)"
}

t0=$(date +%s%N)
make_model
expected_texts
start_replica 0
start_replica 1
start_nginx
# In the background with a wait, which a signal interrupts (bash runs a trap only between commands).
timeout -k 5 150 python3 "$load" run --nginx "$nginx_port" --replicas "${ports[0]},${ports[1]}" \
  --victim-pid "${replica_pids[0]}" --expected "$tmp/expected.jsonl" --access-log "$tmp/nginx/access.log" &
pids+=($!)
wait $! || fail "the load through nginx (exit $?)"
grep -q "\[crit\]\|\[emerg\]" "$tmp/nginx/error.log" && fail "nginx logged a critical error"
ms=$((($(date +%s%N) - t0) / 1000000))
printf 'replicas: PASS in %d.%d s (the model, the CLI, 2 replicas, nginx and the load)\n' $((ms / 1000)) $((ms % 1000 / 100))
