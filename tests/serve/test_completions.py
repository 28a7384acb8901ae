# /v1/completions through the official openai client and raw HTTP: the server's text equals the CLI's for
# the same prompt, seed, temperature and max_tokens (greedy, seeded, n > 1, arrays of prompts, token-id
# prompts, stop strings), streaming concatenates to the non-streamed text, logprobs have OpenAI's shape and
# are the log-softmax of the raw logits.
import json
import math

import openai
import pytest

from conftest import FINISH, assert_error, cli_expected_text, sse_events

PROMPTS = ["Hello world", "The cat sat on the mat", "Once upon a time", "KV caching is",
           "日本語のテキスト 😀", "a"]


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url() + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_greedy_matches_cli(server, client, cli):
    lines = [{"prompt": p, "temperature": 0, "max_new_tokens": 12} for p in PROMPTS]
    want = cli(server.model, lines)
    for p, w in zip(PROMPTS, want):
        r = client.completions.create(model=server.name, prompt=p, max_tokens=12, temperature=0)
        assert r.object == "text_completion"
        assert r.id.startswith("cmpl-")
        assert r.model == server.name
        assert isinstance(r.created, int) and r.created > 1_600_000_000
        assert len(r.choices) == 1
        c = r.choices[0]
        assert c.index == 0
        assert c.text == w["text"], f"prompt {p!r}: server {c.text!r} != CLI {w['text']!r}"
        assert c.finish_reason == FINISH[w["finish_reason"]]
        assert c.logprobs is None
        assert r.usage.prompt_tokens == len(w["prompt_tokens"])
        if w["finish_reason"] == "length":
            assert r.usage.completion_tokens == 12
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_model_field_absent_is_accepted(server, cli):
    want = cli(server.model, [{"prompt": "Hello world", "temperature": 0, "max_new_tokens": 6}])[0]
    r = server.complete({"prompt": "Hello world", "temperature": 0, "max_tokens": 6})
    assert r.status == 200, r
    assert r.json()["choices"][0]["text"] == want["text"]
    assert r.json()["model"] == server.name


def test_seeded_sampling_matches_cli(server, client, cli):
    cases = [
        {"prompt": "Hello world", "seed": 5, "temperature": 0.8, "max_new_tokens": 10},
        {"prompt": "Once upon a time", "seed": 123456789, "temperature": 1.0, "max_new_tokens": 10},
        {"prompt": "The cat", "seed": 7, "temperature": 1.3, "top_k": 40, "max_new_tokens": 10},
        {"prompt": "The dog", "seed": 18446744073709551615, "temperature": 0.9, "top_p": 0.9, "max_new_tokens": 10},
    ]
    want = cli(server.model, cases)
    texts = set()
    for c, w in zip(cases, want):
        extra = {"top_k": c["top_k"]} if "top_k" in c else {}
        r = client.completions.create(model=server.name, prompt=c["prompt"], seed=c["seed"],
                                      temperature=c["temperature"], top_p=c.get("top_p", 1.0),
                                      max_tokens=c["max_new_tokens"], extra_body=extra)
        assert r.choices[0].text == w["text"], f"{c}: server {r.choices[0].text!r} != CLI {w['text']!r}"
        assert r.choices[0].finish_reason == FINISH[w["finish_reason"]]
        texts.add(r.choices[0].text)
    # Same seed twice: the same text; another seed: (almost surely) another text.
    a = client.completions.create(model=server.name, prompt="Hello world", seed=5, temperature=0.8, max_tokens=10)
    b = client.completions.create(model=server.name, prompt="Hello world", seed=6, temperature=0.8, max_tokens=10)
    assert a.choices[0].text == want[0]["text"]
    assert b.choices[0].text != a.choices[0].text


def test_n3_with_seed_matches_cli_samples(server, client, cli):
    want = cli(server.model, [{"prompt": "Once upon a time", "seed": 42, "temperature": 0.9, "max_new_tokens": 10}],
               extra=["--samples", "3"])
    assert [w["sample"] for w in want] == [0, 1, 2] and [w["seed"] for w in want] == [42, 43, 44]
    r = client.completions.create(model=server.name, prompt="Once upon a time", n=3, seed=42, temperature=0.9,
                                  max_tokens=10)
    assert [c.index for c in r.choices] == [0, 1, 2]
    for c, w in zip(r.choices, want):
        assert c.text == w["text"], f"choice {c.index}: {c.text!r} != CLI sample {w['sample']} {w['text']!r}"
    assert len({c.text for c in r.choices}) > 1, "n=3 with a seed gave three equal samples"
    # Choice k alone, with seed 42 + k: the same text.
    r1 = client.completions.create(model=server.name, prompt="Once upon a time", n=1, seed=43, temperature=0.9,
                                   max_tokens=10)
    assert r1.choices[0].text == want[1]["text"]
    assert r.usage.completion_tokens == sum(len(w["tokens"]) for w in want)
    assert r.usage.prompt_tokens == len(want[0]["prompt_tokens"])


def test_array_of_prompts_index_order(server, cli):
    prompts = ["Hello world", "The cat sat", "Once"]
    lines = [{"prompt": p, "seed": 11, "temperature": 0.7, "max_new_tokens": 8} for p in prompts]
    want = cli(server.model, lines, extra=["--samples", "2"])
    r = server.complete({"model": server.name, "prompt": prompts, "n": 2, "seed": 11, "temperature": 0.7,
                         "max_tokens": 8})
    assert r.status == 200, r
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == list(range(6))
    for c in choices:
        w = want[c["index"]]  # want is sorted by (prompt index, sample): prompt_index * n + k
        assert c["text"] == w["text"], f"choice {c['index']}: {c['text']!r} != {w['text']!r}"
    # As OpenAI and vLLM count: each prompt's tokens once, whatever n.
    assert r.json()["usage"]["prompt_tokens"] == sum(len(w["prompt_tokens"]) for w in want[::2])
    assert r.json()["usage"]["completion_tokens"] == sum(len(w["tokens"]) for w in want)


def test_token_id_prompts(server, cli):
    prompts = ["Hello world", "The cat sat on the mat"]
    want = cli(server.model, [{"prompt": p, "temperature": 0, "max_new_tokens": 8} for p in prompts])
    ids = [w["prompt_tokens"] for w in want]
    r = server.complete({"prompt": ids[0], "temperature": 0, "max_tokens": 8})
    assert r.status == 200, r
    assert r.json()["choices"][0]["text"] == want[0]["text"]
    assert r.json()["usage"]["prompt_tokens"] == len(ids[0])
    r = server.complete({"prompt": ids, "temperature": 0, "max_tokens": 8})
    assert r.status == 200, r
    assert [c["text"] for c in r.json()["choices"]] == [w["text"] for w in want]


def test_default_max_tokens_is_16(server):
    r = server.complete({"prompt": "Hello", "temperature": 0, "ignore_eos": True})
    assert r.status == 200, r
    assert r.json()["usage"]["completion_tokens"] == 16
    assert r.json()["choices"][0]["finish_reason"] == "length"


def test_echo(server):
    plain = server.complete({"prompt": "Hello world", "temperature": 0, "max_tokens": 6}).json()
    echoed = server.complete({"prompt": "Hello world", "temperature": 0, "max_tokens": 6, "echo": True}).json()
    assert echoed["choices"][0]["text"] == "Hello world" + plain["choices"][0]["text"]
    assert echoed["usage"] == plain["usage"]


def test_stop_string(server, cli):
    base = cli(server.model, [{"prompt": "Once upon a time", "temperature": 0, "max_new_tokens": 24}])[0]
    text = base["text"]
    # A stop string from the middle of the greedy text (not at its start, so the cut is observable).
    k = len(text) // 2
    while k < len(text) - 2 and not text[k:k + 3].strip():
        k += 1
    stop = text[k:k + 3]
    assert len(stop) == 3 and stop.strip(), text
    want = cli(server.model, [{"prompt": "Once upon a time", "temperature": 0, "max_new_tokens": 24,
                               "stop": stop}])[0]
    assert want["finish_reason"] == "stop", want
    r = server.complete({"prompt": "Once upon a time", "temperature": 0, "max_tokens": 24, "stop": [stop, "\u0000zz"]})
    assert r.status == 200, r
    c = r.json()["choices"][0]
    assert c["finish_reason"] == "stop", c
    # OpenAI: the returned text does not contain the stop sequence.
    assert c["text"] == cli_expected_text(want, [stop]), (c["text"], want["text"], stop)
    assert stop not in c["text"]
    # The same with "stop" as a plain string, streamed.
    r = server.complete({"prompt": "Once upon a time", "temperature": 0, "max_tokens": 24, "stop": stop,
                         "stream": True})
    events = sse_events(r.body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(ch["choices"][0]["text"] for ch in chunks if ch["choices"]) == c["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_equals_nonstream_openai(server, client):
    for kw in ({"temperature": 0}, {"temperature": 0.9, "seed": 99}, {"temperature": 1.1, "seed": 3, "n": 2}):
        full = client.completions.create(model=server.name, prompt="Once upon a time", max_tokens=20, **kw)
        parts = {}
        finish = {}
        for chunk in client.completions.create(model=server.name, prompt="Once upon a time", max_tokens=20,
                                               stream=True, **kw):
            for c in chunk.choices:
                assert c.index not in finish, f"a chunk after choice {c.index}'s finish_reason"
                parts[c.index] = parts.get(c.index, "") + c.text
                if c.finish_reason is not None:
                    finish[c.index] = c.finish_reason
        assert sorted(parts) == [c.index for c in full.choices]
        for c in full.choices:
            assert parts[c.index] == c.text, f"{kw}: stream {parts[c.index]!r} != {c.text!r}"
            assert finish[c.index] == c.finish_reason


def test_stream_wire_format(server):
    body = {"prompt": ["日本語 😀", "Hello"], "n": 2, "temperature": 0.8, "seed": 1, "max_tokens": 16,
            "stream": True, "stream_options": {"include_usage": True}}
    r = server.complete(body)
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/event-stream"), r.headers
    raw = r.body.decode("utf-8")
    assert raw.endswith("data: [DONE]\n\n"), raw[-200:]
    events = sse_events(r.body)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    ids = {ch["id"] for ch in chunks}
    assert len(ids) == 1 and ids.pop().startswith("cmpl-")
    texts, finished = {}, {}
    for ch in chunks[:-1]:
        assert ch["object"] == "text_completion" and ch["model"] == server.name and isinstance(ch["created"], int)
        assert len(ch["choices"]) >= 1
        for c in ch["choices"]:
            assert set(c) >= {"text", "index", "finish_reason", "logprobs"}, c
            assert c["index"] not in finished, "a chunk after the choice finished"
            texts[c["index"]] = texts.get(c["index"], "") + c["text"]
            if c["finish_reason"] is not None:
                finished[c["index"]] = c["finish_reason"]
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [], usage_chunk
    assert sorted(finished) == [0, 1, 2, 3]
    body.pop("stream"), body.pop("stream_options")
    full = server.complete(body).json()
    for c in full["choices"]:
        assert texts[c["index"]] == c["text"]
        assert finished[c["index"]] == c["finish_reason"]
    assert usage_chunk["usage"] == full["usage"]
    # Without include_usage: no usage chunk.
    r = server.complete({"prompt": "Hello", "max_tokens": 4, "temperature": 0, "stream": True})
    chunks = [json.loads(e) for e in sse_events(r.body)[:-1]]
    assert all(ch["choices"] for ch in chunks), chunks[-1]


def _check_logprobs_shape(c, usage_tokens, k):
    lp = c.logprobs
    assert lp is not None
    n = len(lp.tokens)
    assert n == usage_tokens
    assert len(lp.token_logprobs) == n and len(lp.top_logprobs) == n and len(lp.text_offset) == n
    assert all(b >= a for a, b in zip(lp.text_offset, lp.text_offset[1:])), lp.text_offset
    for tok, chosen, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert isinstance(tok, str)
        assert chosen <= 1e-6
        # Two token strings can collide as dict keys (byte tokens that are not whole UTF-8); else k entries.
        assert 1 <= len(top) <= k
        if not any("\ufffd" in t or t.startswith("bytes:") for t in top):
            assert len(top) == k, top
        assert all(v <= 1e-6 for v in top.values())
        assert max(top.values()) >= chosen - 1e-5, (tok, chosen, top)
        assert sum(math.exp(v) for v in top.values()) <= 1 + 1e-4
    return lp


def test_logprobs_greedy(server, client):
    r = client.completions.create(model=server.name, prompt="Once upon a time", max_tokens=10, temperature=0,
                                  logprobs=5, extra_body={"ignore_eos": True})
    c = r.choices[0]
    lp = _check_logprobs_shape(c, r.usage.completion_tokens, 5)
    assert r.usage.completion_tokens == 10
    for tok, chosen, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        best = max(top, key=top.get)
        assert abs(top[best] - chosen) < 1e-4, (tok, chosen, top)
        if "\ufffd" not in tok:
            assert best == tok, (tok, top)
    if all("\ufffd" not in t for t in lp.tokens):
        assert "".join(lp.tokens) == c.text
    # logprobs does not change the text.
    plain = client.completions.create(model=server.name, prompt="Once upon a time", max_tokens=10, temperature=0,
                                      extra_body={"ignore_eos": True})
    assert plain.choices[0].text == c.text


def test_logprobs_sampled_and_zero(server, client):
    r = client.completions.create(model=server.name, prompt="Hello world", max_tokens=12, temperature=1.2, seed=8,
                                  logprobs=20, extra_body={"ignore_eos": True})
    _check_logprobs_shape(r.choices[0], 12, 20)
    # logprobs 0: the chosen tokens' logprobs, top_logprobs with at most... nothing but the token itself
    r0 = client.completions.create(model=server.name, prompt="Hello world", max_tokens=12, temperature=1.2, seed=8,
                                   logprobs=0, extra_body={"ignore_eos": True})
    assert r0.choices[0].text == r.choices[0].text
    lp0 = r0.choices[0].logprobs
    assert lp0 is not None and len(lp0.token_logprobs) == 12
    assert lp0.token_logprobs == pytest.approx(r.choices[0].logprobs.token_logprobs, abs=1e-5)


def test_logprobs_are_of_the_raw_logits(server):
    """The first token's distribution depends on the prompt only, not on temperature/top-k/top-p."""
    tops = []
    for kw in ({"temperature": 0}, {"temperature": 1.7, "seed": 1}, {"temperature": 0.3, "seed": 2, "top_k": 3,
                                                                      "top_p": 0.5}):
        r = server.complete({"prompt": "The cat sat", "max_tokens": 1, "logprobs": 5, **kw})
        assert r.status == 200, r
        tops.append(r.json()["choices"][0]["logprobs"]["top_logprobs"][0])
    for t in tops[1:]:
        assert t.keys() == tops[0].keys()
        for k in t:
            assert t[k] == pytest.approx(tops[0][k], abs=1e-4)


def test_logprobs_stream(server):
    body = {"prompt": "Hello", "max_tokens": 8, "temperature": 0, "logprobs": 3, "ignore_eos": True}
    full = server.complete(body).json()["choices"][0]["logprobs"]
    r = server.complete({**body, "stream": True})
    chunks = [json.loads(e) for e in sse_events(r.body)[:-1]]
    toks, lps = [], []
    for ch in chunks:
        for c in ch["choices"]:
            if c["logprobs"]:
                toks += c["logprobs"]["tokens"]
                lps += c["logprobs"]["token_logprobs"]
    assert toks == full["tokens"]
    assert lps == pytest.approx(full["token_logprobs"], abs=1e-5)


def test_echo_with_logprobs_scores_the_prompt(server):
    """echo + logprobs + max_tokens 0 (lm-eval-harness's scoring call): the prompt's tokens, null for the
    first, and at each later position the distribution that a generation from the tokens before it sees
    (a scoring pass against decode steps: two code paths)."""
    ids = server.request("POST", "/tokenize", {"content": "The cat sat on the mat, and"}).json()["tokens"]
    r = server.complete({"prompt": ids, "echo": True, "logprobs": 3, "max_tokens": 0})
    assert r.status == 200, r
    ch = r.json()["choices"][0]
    lp = ch["logprobs"]
    assert ch["finish_reason"] == "length" and r.json()["usage"]["completion_tokens"] == 0
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(ids)
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert "".join(lp["tokens"]) == ch["text"]
    for i in range(1, len(ids)):
        assert lp["token_logprobs"][i] <= max(lp["top_logprobs"][i].values()) + 1e-6
        g = server.complete({"prompt": ids[:i], "max_tokens": 1, "temperature": 0, "logprobs": 3,
                             "ignore_eos": True}).json()["choices"][0]["logprobs"]
        assert lp["top_logprobs"][i].keys() == g["top_logprobs"][0].keys()
        for k, v in g["top_logprobs"][0].items():
            assert lp["top_logprobs"][i][k] == pytest.approx(v, abs=1e-4)
    # Generated tokens follow the prompt's in one object, and a stream gives the same.
    body = {"prompt": ids, "echo": True, "logprobs": 2, "max_tokens": 4, "temperature": 0, "ignore_eos": True}
    whole = server.complete(body).json()["choices"][0]
    assert len(whole["logprobs"]["tokens"]) == len(ids) + 4
    assert whole["logprobs"]["token_logprobs"][1:len(ids)] == pytest.approx(lp["token_logprobs"][1:], abs=1e-6)
    chunks = [json.loads(e) for e in sse_events(server.complete({**body, "stream": True}).body)[:-1]]
    toks, vals, text = [], [], ""
    for c in chunks:
        for choice in c["choices"]:
            text += choice["text"]
            if choice["logprobs"]:
                toks += choice["logprobs"]["tokens"]
                vals += choice["logprobs"]["token_logprobs"]
    assert text == whole["text"]
    assert toks == whole["logprobs"]["tokens"]
    assert vals[0] is None and vals[1:] == pytest.approx(whole["logprobs"]["token_logprobs"][1:], abs=1e-5)
