# /health, /v1/models, /metrics, /tokenize and /detokenize.
import time

from conftest import VOCAB, Server, http, metric, needs_real_tokenizer, parse_metrics


def test_health_and_models(server):
    r = server.request("GET", "/health")
    assert r.status == 200 and r.json() == {"status": "ok"}, r
    r = server.request("GET", "/v1/models")
    assert r.status == 200, r
    j = r.json()
    assert j["object"] == "list" and len(j["data"]) == 1, j
    m = j["data"][0]
    assert m["id"] == server.name == "tiny"
    assert m["object"] == "model" and m["owned_by"] == "gen"
    assert isinstance(m["created"], int)


def test_listening_line_comes_before_ready(model, start_server):
    s = start_server(model, ["--batch-size", "2"], wait=False)
    s.wait_listening()
    # Right after the listening line: /health is 503 while loading, or 200 when the load already ended.
    r = http(s.port, "GET", "/health", timeout=10)
    if r.status == 503:
        assert r.json().get("status") == "loading" or "error" in r.json(), r
    else:
        assert r.status == 200, r
    s.wait_healthy()
    assert any("gen serve: ready (model tiny" in l for l in s.log), s.log_tail()
    listen_i = next(i for i, l in enumerate(s.log) if "listening on" in l)
    ready_i = next(i for i, l in enumerate(s.log) if "gen serve: ready" in l)
    assert listen_i < ready_i


def test_metrics(server):
    before = server.metrics()
    r = server.complete({"prompt": "Hello", "max_tokens": 5, "temperature": 0, "ignore_eos": True})
    assert r.status == 200, r
    prompt_tokens = r.json()["usage"]["prompt_tokens"]
    bad = server.complete({"prompt": "x", "temperature": 9})
    assert bad.status == 400
    text = server.request("GET", "/metrics")
    assert text.status == 200
    assert text.headers.get("content-type", "").startswith("text/plain"), text.headers
    after = parse_metrics(text.body.decode())
    names = {n for n, _ in after}
    for n in ("gen_requests_total", "gen_completions_total", "gen_prompt_tokens_total", "gen_completion_tokens_total",
              "gen_queue_depth", "gen_batch_live", "gen_batch_capacity", "gen_kv_cache_bytes_used",
              "gen_kv_cache_bytes_total", "gen_prefix_cache_bytes_used",
              "gen_time_to_first_token_seconds_bucket", "gen_time_to_first_token_seconds_sum",
              "gen_time_to_first_token_seconds_count", "gen_time_per_output_token_seconds_bucket",
              "gen_time_per_output_token_seconds_count"):
        assert n in names, f"/metrics lacks {n}"

    def delta(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("gen_requests_total", endpoint="/v1/completions", status="200") == 1
    assert delta("gen_requests_total", endpoint="/v1/completions", status="400") == 1
    assert delta("gen_completions_total", finish_reason="length") == 1
    assert delta("gen_completion_tokens_total") == 5
    assert delta("gen_prompt_tokens_total") == prompt_tokens
    assert delta("gen_time_to_first_token_seconds_count") == 1
    assert delta("gen_time_per_output_token_seconds_count") >= 1
    assert metric(after, "gen_batch_capacity") == 8
    assert metric(after, "gen_batch_live") == 0 and metric(after, "gen_queue_depth") == 0
    assert metric(after, "gen_kv_cache_bytes_total") > 0
    assert 0 <= metric(after, "gen_kv_cache_bytes_used") <= metric(after, "gen_kv_cache_bytes_total")
    inf = metric(after, "gen_time_to_first_token_seconds_bucket", le="+Inf")
    assert inf == metric(after, "gen_time_to_first_token_seconds_count")


def test_tokenize_detokenize_roundtrip(server, cli):
    texts = ["Hello world", "  spaces\tand\nnewlines ", "日本語 😀 émoji", "<|endoftext|> and more", ""]
    want = cli(server.model, [{"prompt": t, "max_new_tokens": 1, "temperature": 0} for t in texts[:4]])
    for i, t in enumerate(texts):
        r = server.request("POST", "/tokenize", body={"content": t})
        assert r.status == 200, r
        ids = r.json()["tokens"]
        assert all(isinstance(x, int) for x in ids)
        if i < 4:
            assert ids == want[i]["prompt_tokens"], (t, ids, want[i]["prompt_tokens"])
        else:
            assert ids == []
        d = server.request("POST", "/detokenize", body={"tokens": ids})
        assert d.status == 200, d
        assert d.json() == {"content": t}
        p = server.request("POST", "/tokenize", body={"content": t, "with_pieces": True}).json()["tokens"]
        assert [x["id"] for x in p] == ids
        if all("\ufffd" not in x["piece"] for x in p):
            assert "".join(x["piece"] for x in p) == t


@needs_real_tokenizer
def test_tokenize_real_gpt2_ids(server):
    r = server.request("POST", "/tokenize", body={"content": "Hello world", "with_pieces": True})
    assert r.json() == {"tokens": [{"id": 15496, "piece": "Hello"}, {"id": 995, "piece": " world"}]}, r
    assert server.request("POST", "/tokenize", body={"content": "Hello world"}).json() == {"tokens": [15496, 995]}
    assert server.request("POST", "/detokenize", body={"tokens": [15496, 995]}).json() == {"content": "Hello world"}


def test_sigint_on_idle_server_exits_0(model, start_server):
    s = start_server(model, ["--batch-size", "1"])
    import signal
    rc, secs = s.stop(signal.SIGINT, timeout=10)
    assert rc == 0, (rc, s.log_tail())
    assert secs < 5, secs


def test_threads_flag_is_honored(slow_model, start_server):
    """--threads 1: the server's compute runs on one core (HTTP threads add a little), as the CLI's does."""
    import os
    import threading
    import pytest
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: nothing to tell apart")
    s = start_server(slow_model, ["--batch-size", "8", "--threads", "1"])

    def cpu_s():
        f = open(f"/proc/{s.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def work(i):
        s.complete({"prompt": f"Request {i}", "max_tokens": 300, "temperature": 0, "ignore_eos": True}, timeout=300)

    c0, t0 = cpu_s(), time.time()
    ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    cores = (cpu_s() - c0) / (time.time() - t0)
    print(f"--threads 1: {cores:.2f} cores busy under load")
    assert cores < 1.4, f"--threads 1 but the server kept {cores:.2f} cores busy"


def test_the_prefix_cache_is_shared_across_clients(model, start_server):
    """A second client whose prompt starts with the first one's reuses its K/V: 3 whole blocks of 16 of
    the first prompt's 60 tokens (gen_prompt_tokens_cached_total), and answers what a server without
    the prefix cache answers."""
    shared = [(7 * i) % (VOCAB - 1) for i in range(60)]
    second = shared + [11, 12, 13, 14, 15]
    body = {"max_tokens": 6, "temperature": 0.9, "seed": 5, "ignore_eos": True}
    s = start_server(model, ["--batch-size", "2"])
    assert s.complete({**body, "prompt": shared}).status == 200
    before = metric(s.metrics(), "gen_prompt_tokens_cached_total")
    with_cache = s.complete({**body, "prompt": second}).json()["choices"][0]["text"]
    assert metric(s.metrics(), "gen_prompt_tokens_cached_total") - before == 48
    plain = start_server(model, ["--batch-size", "2", "--no-prefix-cache"])
    assert plain.complete({**body, "prompt": shared}).status == 200
    assert plain.complete({**body, "prompt": second}).json()["choices"][0]["text"] == with_cache
    assert metric(plain.metrics(), "gen_prompt_tokens_cached_total") == 0
