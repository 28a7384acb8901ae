# A bounded soak: 2,000 requests over 32 keep-alive connections against its own server, no error, and the
# server's RSS at the end within 10% of its RSS after a 200-request warm-up. Prints requests/s and the RSS
# numbers. Select it alone with: python3 -m pytest -q tests/serve/test_soak.py -s
# Env: SOAK_REQUESTS (default 2000), SOAK_CONNECTIONS (32), SOAK_WARMUP (200).
import http.client as httpclient
import json
import os
import threading
import time

from conftest import metric, sse_events

REQUESTS = int(os.environ.get("SOAK_REQUESTS", 2000))
CONNECTIONS = int(os.environ.get("SOAK_CONNECTIONS", 32))
WARMUP = int(os.environ.get("SOAK_WARMUP", 200))


def body(i):
    b = {"prompt": f"Request number {i} says", "max_tokens": 8, "temperature": 0 if i % 2 else 0.8, "seed": i}
    if i % 5 == 0:
        b["stream"] = True
    if i % 7 == 0:
        b["logprobs"] = 2
    return json.dumps(b).encode()


def run_phase(port, total, conns):
    """TOTAL requests spread over CONNS keep-alive connections; returns (errors, seconds, new connections)."""
    counter = iter(range(total))
    lock = threading.Lock()
    errors = []
    opened = [0]

    def worker():
        conn = None
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            try:
                if conn is None:
                    conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=120)
                    with lock:
                        opened[0] += 1
                conn.request("POST", "/v1/completions", body=body(i), headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status != 200:
                    errors.append(f"{i}: HTTP {r.status} {data[:200]!r}")
                elif i % 5 == 0:
                    ev = sse_events(data)
                    if ev[-1] != "[DONE]":
                        errors.append(f"{i}: stream without [DONE]")
                elif len(json.loads(data)["choices"]) != 1:
                    errors.append(f"{i}: bad body {data[:200]!r}")
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:
                errors.append(f"{i}: {e!r}")
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    assert all(not t.is_alive() for t in threads), "soak clients hung"
    return errors, time.time() - t0, opened[0]


def test_soak(model, start_server, capsys):
    s = start_server(model, ["--batch-size", "8", "--max-queue", "64"])
    errors, warm_s, _ = run_phase(s.port, WARMUP, CONNECTIONS)
    assert not errors, errors[:10]
    rss_warm = s.rss_kib()
    before = s.metrics()
    errors, secs, opened = run_phase(s.port, REQUESTS, CONNECTIONS)
    rss_end = s.rss_kib()
    after = s.metrics()
    line = (f"soak: {REQUESTS} requests over {CONNECTIONS} keep-alive connections in {secs:.2f} s = "
            f"{REQUESTS / secs:.1f} requests/s ({opened} connections opened); RSS after {WARMUP}-request warm-up "
            f"{rss_warm / 1024:.1f} MiB, at the end {rss_end / 1024:.1f} MiB ({(rss_end - rss_warm) / rss_warm:+.1%}); "
            f"errors {len(errors)}")
    with capsys.disabled():
        print("\n" + line)
    assert not errors, "\n".join(errors[:20])
    done = metric(after, "gen_requests_total", endpoint="/v1/completions", status="200") - \
        metric(before, "gen_requests_total", endpoint="/v1/completions", status="200")
    assert done == REQUESTS, done
    assert metric(after, "gen_batch_live") == 0 and metric(after, "gen_queue_depth") == 0
    assert s.alive()
    if "ASAN_OPTIONS" in os.environ:
        # Under AddressSanitizer (scripts/test_sanitize.sh) the allocator keeps freed memory in its
        # quarantine and caches, so RSS says nothing about leaks; LeakSanitizer does, at the exit:
        # a leak makes it exit non-zero.
        rc, _ = s.stop()
        assert rc == 0, f"the server exited {rc} (LeakSanitizer?):\n{s.log_tail()}"
        return
    assert abs(rss_end - rss_warm) <= 0.10 * rss_warm, line
