#!/usr/bin/env bash
# gen serve under load against the CLI's batch run of the same prompts.
# For 1, 8, 32 and 64 concurrent clients (threads, one connection per request, streamed with
# stream_options.include_usage so that each response reports its tokens), each client sends PER_CLIENT
# prompts one after the other, greedy, max_tokens TOKENS, ignore_eos. Measured: aggregate completion tok/s
# (all tokens over the phase's wall time, first send to last byte), p50/p99 time to first token (send to the
# first data: event). Then the CLI runs the same prompts (--prompts-file, greedy, -n TOKENS, --ignore-eos) at
# --batch-size min(clients, BATCH); its throughput is its tokens over its run wall time (load excluded: the
# last prompt's timing.total_ms, which the summary line's "tokens in X s" rounds). Prints a markdown table;
# exits 1 if at 32 clients server/CLI < 0.85 (or a request failed).
#   scripts/bench_serve.sh [MODEL_DIR]
# Default model: the 4-layer 256-wide GPT-2-vocab checkpoint of bench_prefix.sh (made if missing).
# Each concurrency runs ROUNDS interleaved rounds (server, then CLI, fresh prompts each round): the table
# has the median round of each side (tok/s), and TTFT percentiles over all rounds' requests.
# Env: ROUNDS (3), BATCH (server --batch-size, default 32), PER_CLIENT (4), TOKENS (64), CLIENTS ("1 8 32 64"),
#      PROMPT_WORDS (24), STREAM (1; 0: plain responses, no TTFT), DEVICE (cpu), DTYPE, THREADS, BUILD_DIR,
#      GEN_TOKENIZER_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
[ -x "$build/gen" ] || "$root/scripts/build.sh" >&2
model=${1:-}
if [ -z "$model" ]; then
  . "$root/scripts/bench_model.sh"
  bench_model bench_serve ", or a MODEL_DIR"
fi
[ -f "$model/vocab.json" ] || { echo "bench_serve: $model has no vocab.json" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

GEN="$build/gen" MODEL="$model" WORK="$work" exec python3 - <<'EOF'
import json, os, re, signal, socket, statistics, subprocess, sys, threading, time, random

gen, model, work = os.environ["GEN"], os.environ["MODEL"], os.environ["WORK"]
batch = int(os.environ.get("BATCH", 32))
per_client = int(os.environ.get("PER_CLIENT", 4))
tokens = int(os.environ.get("TOKENS", 64))
clients_list = [int(x) for x in os.environ.get("CLIENTS", "1 8 32 64").split()]
words_per_prompt = int(os.environ.get("PROMPT_WORDS", 24))
stream = os.environ.get("STREAM", "1") != "0"
rounds = int(os.environ.get("ROUNDS", 3))
common = ["--model", model, "--device", os.environ.get("DEVICE", "cpu")]
if os.environ.get("DTYPE"):
    common += ["--dtype", os.environ["DTYPE"]]
if os.environ.get("THREADS"):
    common += ["--threads", os.environ["THREADS"]]

# Prompts of one-token words (as bench_prefix.sh makes them), all distinct: no prefix is shared.
vocab = json.load(open(os.path.join(model, "vocab.json")))
words = sorted(k[1:] for k in vocab if k.startswith("\u0120") and k[1:].isalpha() and k[1:].islower() and len(k) > 4)
rng = random.Random(2024)
def prompt():
    return "".join(" " + rng.choice(words) for _ in range(words_per_prompt))

# ---- the server ------------------------------------------------------------------------------------------
srv = subprocess.Popen([gen, "serve", *common, "--port", "0", "--batch-size", str(batch),
                        "--max-queue", str(max(256, 2 * max(clients_list)))],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
port = None
log = []
for raw in srv.stderr:
    line = raw.decode(errors="replace").rstrip()
    log.append(line)
    m = re.search(r"listening on http://[^:]+:(\d+)", line)
    if m:
        port = int(m.group(1))
        break
if port is None:
    sys.exit("bench_serve: the server did not start:\n" + "\n".join(log))
threading.Thread(target=lambda: [None for _ in srv.stderr], daemon=True).start()

def stop_server():
    if srv.poll() is None:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(30)
        except subprocess.TimeoutExpired:
            srv.kill()

def request(body):
    """One streamed completion on its own connection: (ttft seconds, completion tokens)."""
    payload = json.dumps(body).encode()
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=600)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
    ttft = None
    buf = bytearray()
    while True:
        chunk = s.recv(262144)
        if not chunk:
            break
        if ttft is None and b"data: {" in bytes(buf[-16:]) + chunk:
            ttft = time.perf_counter() - t0
        buf += chunk
    s.close()
    if not buf.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"bench_serve: {bytes(buf[:300])!r}")
    m = re.search(rb'"completion_tokens":(\d+)', buf[-600:])
    if not m or (stream and b"data: [DONE]" not in buf[-64:]):
        raise RuntimeError(f"bench_serve: a response without usage or [DONE]: {bytes(buf[-300:])!r}")
    return ttft, int(m.group(1))

def body(p):
    b = {"prompt": p, "max_tokens": tokens, "temperature": 0, "ignore_eos": True}
    if stream:
        b.update(stream=True, stream_options={"include_usage": True})
    return b

# Ready, then a warm-up.
end = time.time() + 300
while True:
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        if c.recv(100).startswith(b"HTTP/1.1 200"):
            c.close()
            break
        c.close()
    except OSError:
        pass
    if time.time() > end or srv.poll() is not None:
        stop_server()
        sys.exit("bench_serve: the server never became healthy:\n" + "\n".join(log))
    time.sleep(0.1)
for _ in range(2):
    request(body(prompt()))

def run_server(nclients, prompts):
    ttfts, counts, errors = [], [], []
    lock = threading.Lock()
    def client(ps):
        for p in ps:
            try:
                t, n = request(body(p))
                with lock:
                    if t is not None:
                        ttfts.append(t)
                    counts.append(n)
            except Exception as e:
                with lock:
                    errors.append(repr(e))
    threads = [threading.Thread(target=client, args=(prompts[i::nclients],)) for i in range(nclients)]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return sum(counts), wall, ttfts, errors, time.process_time() - c0

def run_cli(prompts, bsize):
    path = os.path.join(work, f"p{len(prompts)}_{bsize}.jsonl")
    with open(path, "w") as f:
        for p in prompts:
            f.write(json.dumps({"prompt": p}) + "\n")
    r = subprocess.run([gen, *common, "--prompts-file", path, "--batch-size", str(bsize), "-n", str(tokens),
                        "--temperature", "0", "--ignore-eos", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError(f"bench_serve: the CLI failed: {r.stderr.decode()[-1000:]}")
    # The run's wall time, load excluded, to the millisecond: the last prompt's total_ms (timed from the start
    # of the run, queue included; docs/decisions.md). The summary line says the same to 10 ms.
    lines = [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]
    if len(lines) != len(prompts) or any("error" in x for x in lines):
        raise RuntimeError(f"bench_serve: the CLI's output is not one line per prompt: {r.stderr.decode()[-500:]}")
    return sum(len(x["tokens"]) for x in lines), max(x["timing"]["total_ms"] for x in lines) / 1000

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))]

rows, ratio32, failed = [], None, False
try:
    for n in clients_list:
        bsize = min(n, batch)
        s_runs, c_runs, all_ttfts, cpu = [], [], [], []
        for r in range(rounds):  # interleaved: server, CLI, server, CLI, ... on fresh prompts each round
            prompts = [prompt() for _ in range(n * per_client)]
            stoks, swall, ttfts, errors, client_cpu = run_server(n, prompts)
            if errors:
                print(f"clients {n}: {len(errors)} errors, first: {errors[0]}", file=sys.stderr)
                failed = True
            ctoks, cwall = run_cli(prompts, bsize)
            s_runs.append((stoks / swall, stoks, swall))
            c_runs.append((ctoks / cwall, ctoks, cwall))
            all_ttfts += ttfts
            cpu.append(client_cpu)
        s_tps, stoks, swall = sorted(s_runs)[len(s_runs) // 2]
        c_tps, ctoks, cwall = sorted(c_runs)[len(c_runs) // 2]
        ratio = s_tps / c_tps
        if n == 32:
            ratio32 = ratio
        rows.append((n, n * per_client, stoks, swall, s_tps,
                     1000 * statistics.median(all_ttfts) if all_ttfts else float("nan"),
                     1000 * pct(all_ttfts, 0.99) if all_ttfts else float("nan"),
                     statistics.median(cpu), bsize, ctoks, cwall, c_tps, ratio))
        print(f"clients {n}: server {[round(x[0]) for x in s_runs]} tok/s, CLI {[round(x[0]) for x in c_runs]} tok/s, "
              f"median ratio {ratio:.3f}", file=sys.stderr)
finally:
    stop_server()

print(f"model {os.path.basename(model)}; {' '.join(common[2:])}; server --batch-size {batch}; {os.cpu_count()} CPUs; "
      f"{per_client} requests per client, {tokens} tokens each (greedy, ignore_eos, {'streamed' if stream else 'not streamed'}), prompts of "
      f"{words_per_prompt} one-token words; medians of {rounds} interleaved rounds (server, then CLI, on fresh prompts)")
print()
print("| clients | requests | server tokens | server wall s | server tok/s | TTFT p50 ms | TTFT p99 ms "
      "| client CPU s | CLI --batch-size | CLI tokens | CLI run s | CLI tok/s | server / CLI |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print("| %d | %d | %d | %.2f | %.1f | %.1f | %.1f | %.2f | %d | %d | %.2f | %.1f | %.3f |" % r)
print()
print("client CPU s: the load generator's own CPU time during the server phase, taken from the same cores.")
print()
status = 1 if failed else 0
if ratio32 is not None:
    ok = ratio32 >= 0.85
    print(f"{'holds' if ok else 'NOT MET'}: at 32 clients server/CLI throughput {ratio32:.3f} >= 0.85")
    if not ok:
        status = 1
sys.exit(status)
EOF
