# 64 concurrent clients, greedy and seeded, some streamed: each answer equals the CLI's for its prompt
# (one --prompts-file run over the same 64 prompts with per-line seed/temperature/max_new_tokens).
import json
import random
import threading
import time

from conftest import FINISH, http, metric, sse_events

N = 64
WORDS = "the a cat dog sat on mat under tree KV cache GPU token of and 日本 😀 über".split()


def make_cases():
    rng = random.Random(64)
    cases = []
    for i in range(N):
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 20)))
        line = {"prompt": prompt, "max_new_tokens": rng.randint(4, 24)}
        if i % 2 == 0:
            line["temperature"] = 0
        else:
            line["temperature"] = round(rng.uniform(0.5, 1.5), 3)
            line["seed"] = rng.randint(0, 2**64 - 1)
            if i % 3 == 0:
                line["top_k"] = rng.randint(1, 50)
            if i % 5 == 0:
                line["top_p"] = 0.8
        cases.append(line)
    return cases


def request_body(line, stream):
    b = {"prompt": line["prompt"], "max_tokens": line["max_new_tokens"], "temperature": line["temperature"]}
    for k in ("seed", "top_k", "top_p"):
        if k in line:
            b[k] = line[k]
    if stream:
        b["stream"] = True
    return b


def test_64_concurrent_clients_match_cli(server, cli):
    cases = make_cases()
    want = cli(server.model, cases, extra=["--batch-size", "8"])
    assert len(want) == N
    barrier = threading.Barrier(N)
    results = [None] * N

    def worker(i):
        stream = i % 4 == 1
        barrier.wait()
        t0 = time.time()
        try:
            r = http(server.port, "POST", "/v1/completions", request_body(cases[i], stream), timeout=300)
            if r.status != 200:
                results[i] = ("status", r.status, r.body[:300])
                return
            if stream:
                chunks = [json.loads(e) for e in sse_events(r.body) if e != "[DONE]"]
                text = "".join(c["text"] for ch in chunks for c in ch["choices"])
                finish = [c["finish_reason"] for ch in chunks for c in ch["choices"] if c["finish_reason"]]
                results[i] = ("ok", text, finish[-1] if finish else None, time.time() - t0)
            else:
                c = r.json()["choices"][0]
                results[i] = ("ok", c["text"], c["finish_reason"], time.time() - t0)
        except Exception as e:
            results[i] = ("exception", repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    wall = time.time() - t0
    assert all(not t.is_alive() for t in threads), "clients hung"
    failures = []
    for i, (res, w) in enumerate(zip(results, want)):
        if res[0] != "ok":
            failures.append(f"{i}: {res}")
        elif res[1] != w["text"] or res[2] != FINISH[w["finish_reason"]]:
            failures.append(f"{i} ({cases[i]}): server {res[1]!r}/{res[2]} != CLI {w['text']!r}/{w['finish_reason']}")
    assert not failures, "\n".join(failures)
    m = server.metrics()
    assert metric(m, "gen_batch_live") == 0 and metric(m, "gen_queue_depth") == 0
    print(f"64 concurrent clients: {wall:.2f} s wall, slowest {max(r[3] for r in results):.2f} s")
