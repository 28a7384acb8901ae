# --api-key / GEN_API_KEY (401 JSON, type authentication_error), and a full queue (503 + Retry-After), each on
# its own server.
import threading
import time

import openai
import pytest

from conftest import assert_error, metric

KEY = "sk-test-0123456789"


def check_auth(s):
    body = {"prompt": "Hello", "max_tokens": 2, "temperature": 0}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": "Basic " + KEY},
                    {"Authorization": "Bearer " + KEY + "x"}, {"Authorization": "Bearer " + KEY[:-1]},
                    {"Authorization": "Bearer "}):
        r = s.complete(body, headers=headers)
        assert_error(r, 401, etype="authentication_error")
        assert KEY not in r.body.decode(), "the error echoes the key"
        r = s.request("GET", "/v1/models", headers=headers)
        assert_error(r, 401, etype="authentication_error")
    ok = {"Authorization": "Bearer " + KEY}
    r = s.complete(body, headers=ok)
    assert r.status == 200, r
    assert s.request("GET", "/v1/models", headers=ok).status == 200
    assert s.request("POST", "/tokenize", body={"content": "hi"}, headers=ok).status == 200
    # The official client with the key, then with a wrong one.
    c = openai.OpenAI(base_url=s.url() + "/v1", api_key=KEY, max_retries=0, timeout=60)
    assert c.completions.create(model=s.name, prompt="Hello", max_tokens=2).choices[0].text is not None
    bad = openai.OpenAI(base_url=s.url() + "/v1", api_key="nope", max_retries=0, timeout=60)
    with pytest.raises(openai.AuthenticationError):
        bad.completions.create(model=s.name, prompt="Hello", max_tokens=2)
    # The server kept serving through the refusals.
    assert s.request("GET", "/health", headers=ok).status == 200
    assert s.alive()


def test_api_key_flag(model, start_server):
    check_auth(start_server(model, ["--api-key", KEY, "--batch-size", "2"]))


def test_api_key_env(model, start_server):
    check_auth(start_server(model, ["--batch-size", "2"], env={"GEN_API_KEY": KEY}))


def test_no_key_means_no_auth(server):
    r = server.complete({"prompt": "Hello", "max_tokens": 1}, headers={"Authorization": "Bearer anything"})
    assert r.status == 200, r
    assert server.complete({"prompt": "Hello", "max_tokens": 1}).status == 200


def test_queue_full_503_retry_after(slow_model, start_server):
    s = start_server(slow_model, ["--batch-size", "1", "--max-queue", "1"])
    n = 8
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait()
        try:
            results[i] = s.complete({"prompt": f"Request {i}", "max_tokens": 200, "ignore_eos": True,
                                     "temperature": 0}, timeout=120)
        except Exception as e:  # recorded, checked below
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert all(not t.is_alive() for t in threads), "a client hung"
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    full = [r for r in results if r.status == 503]
    ok = [r for r in results if r.status == 200]
    assert len(full) + len(ok) == n, [r.status for r in results]
    # One running and one waiting fit; 8 at once cannot all.
    assert 1 <= len(ok) <= n - 1 and len(full) >= 1, [r.status for r in results]
    for r in full:
        assert_error(r, 503)
        ra = r.headers.get("retry-after")
        assert ra is not None and ra.strip().isdigit() and int(ra) >= 1, r.headers
    for r in ok:
        assert r.json()["usage"]["completion_tokens"] == 200
    m = s.metrics()
    assert metric(m, "gen_requests_total", endpoint="/v1/completions", status="503") == len(full)
    # Once the queue drains, the server takes requests again.
    r = s.complete({"prompt": "after", "max_tokens": 2, "temperature": 0}, timeout=60)
    assert r.status == 200, r
    print(f"queue full: {len(ok)} answered, {len(full)} got 503 (Retry-After {full[0].headers.get('retry-after')})")
