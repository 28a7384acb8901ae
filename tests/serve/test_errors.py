# Bad requests over raw HTTP: each gets its 4xx with an OpenAI error body {"error": {message, type, param,
# code}}, and the server goes on serving (/health, then a real completion, after each).
import json

import pytest

from conftest import assert_error, parse_raw_response, raw_exchange


def still_serving(server):
    assert server.alive(), server.log_tail()
    h = server.request("GET", "/health", timeout=10)
    assert h.status == 200 and h.json() == {"status": "ok"}, h


BAD_BODIES = [
    # (id, body bytes, status, code, param)
    ("truncated_json", b'{"prompt": "x",', 400, "invalid_json", None),
    ("not_json", b"hello", 400, "invalid_json", None),
    ("empty_body", b"", 400, None, None),
    ("json_array", b'[1, 2]', 400, None, None),
    ("nan_literal", b'{"prompt": "x", "temperature": NaN}', 400, "invalid_json", None),
    ("infinity_literal", b'{"prompt": "x", "temperature": Infinity}', 400, "invalid_json", None),
    ("huge_number", b'{"prompt": "x", "temperature": 1e400}', 400, "invalid_json", None),
    ("invalid_utf8", b'{"prompt": "bad \xff byte"}', 400, None, None),
    ("invalid_utf8_key", b'{"pro\xc3mpt": "x"}', 400, None, None),
    ("max_tokens_string", b'{"prompt": "x", "max_tokens": "16"}', 400, "invalid_type", "max_tokens"),
    ("max_tokens_fraction", b'{"prompt": "x", "max_tokens": 16.5}', 400, "invalid_type", "max_tokens"),
    ("temperature_string", b'{"prompt": "x", "temperature": "hot"}', 400, "invalid_type", "temperature"),
    ("prompt_number", b'{"prompt": 3.5}', 400, "invalid_type", "prompt"),
    ("prompt_object", b'{"prompt": {"a": 1}}', 400, "invalid_type", "prompt"),
    ("stream_string", b'{"prompt": "x", "stream": "yes"}', 400, "invalid_type", "stream"),
    ("stop_number", b'{"prompt": "x", "stop": 5}', 400, "invalid_type", "stop"),
    ("temperature_high", b'{"prompt": "x", "temperature": 2.5}', 400, None, "temperature"),
    ("temperature_negative", b'{"prompt": "x", "temperature": -0.1}', 400, None, "temperature"),
    ("top_p_zero", b'{"prompt": "x", "top_p": 0}', 400, None, "top_p"),
    ("top_p_high", b'{"prompt": "x", "top_p": 1.5}', 400, None, "top_p"),
    ("max_tokens_negative", b'{"prompt": "x", "max_tokens": -1}', 400, None, "max_tokens"),
    ("n_zero", b'{"prompt": "x", "n": 0}', 400, None, "n"),
    ("logprobs_21", b'{"prompt": "x", "logprobs": 21}', 400, None, "logprobs"),
    ("logprobs_negative", b'{"prompt": "x", "logprobs": -1}', 400, None, "logprobs"),
    ("seed_negative", b'{"prompt": "x", "seed": -1}', 400, None, "seed"),
    ("five_stops", b'{"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}', 400, None, "stop"),
    ("token_id_out_of_vocab", None, 400, None, None),  # filled in below with the vocabulary size
    ("token_id_negative", b'{"prompt": [15, -3]}', 400, None, None),
    ("best_of", b'{"prompt": "x", "best_of": 3}', 400, "unsupported_parameter", "best_of"),
    ("stream_options_without_stream", b'{"prompt": "x", "stream_options": {"include_usage": true}}', 400, None, None),
]


@pytest.mark.parametrize("name,body,status,code,param", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_body(server, name, body, status, code, param):
    if body is None:
        from conftest import VOCAB
        body = json.dumps({"prompt": [1, VOCAB]}).encode()
    r = server.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    assert_error(r, status, code=code, param=param, etype="invalid_request_error")
    still_serving(server)


def test_unknown_model(server):
    r = server.complete({"model": "gpt-4", "prompt": "x", "max_tokens": 1})
    assert_error(r, 404, code="model_not_found", param="model", etype="invalid_request_error")
    assert "gpt-4" in r.json()["error"]["message"]
    still_serving(server)


def test_prompt_longer_than_context(server):
    # 256 positions: a 300-token prompt cannot run; nor can 200 + 100 new tokens.
    r = server.complete({"prompt": [42] * 300, "max_tokens": 1})
    assert_error(r, 400, code="context_length_exceeded", etype="invalid_request_error")
    r = server.complete({"prompt": [42] * 200, "max_tokens": 100})
    assert_error(r, 400, code="context_length_exceeded")
    r = server.complete({"prompt": [42] * 200, "max_tokens": 56, "temperature": 0})  # exactly the context
    assert r.status == 200, r
    # A long text prompt (far more tokens than the context).
    r = server.complete({"prompt": "word " * 2000, "max_tokens": 1})
    assert_error(r, 400, code="context_length_exceeded")
    # One bad prompt of an array refuses the whole request.
    r = server.complete({"prompt": ["fine", "word " * 2000], "max_tokens": 1})
    assert_error(r, 400, code="context_length_exceeded")
    still_serving(server)


def test_unknown_route_and_wrong_method(server):
    r = server.request("GET", "/v1/nothing-here")
    assert_error(r, 404)
    r = server.request("POST", "/v2/completions", body={"prompt": "x"})
    assert_error(r, 404)
    r = server.request("GET", "/v1/completions")
    assert_error(r, (404, 405))
    r = server.request("DELETE", "/v1/models")
    assert_error(r, (404, 405))
    still_serving(server)


def test_body_over_the_limit(server):
    body = b'{"prompt": "' + b"a" * (10 << 20) + b'"}'
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    resp = parse_raw_response(raw_exchange(server.port, head + body, timeout=60))
    assert resp.status == 413, resp
    if resp.body:
        assert_error(resp, 413)
    still_serving(server)


def test_headers_over_8k(server):
    head = (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (16 << 10) + b"\r\n\r\n")
    data = raw_exchange(server.port, head, timeout=30)
    if data:  # cpp-httplib answers 400 or 431, or just closes
        resp = parse_raw_response(data)
        assert resp.status in (400, 413, 431), resp
    still_serving(server)
    # Many headers, each small.
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n"
    data = raw_exchange(server.port, head, timeout=30)
    if data:
        assert parse_raw_response(data).status in (200, 400, 413, 431)
    still_serving(server)


def test_garbage_and_half_requests(server):
    for junk in (b"\x00\x01\x02garbage\r\n\r\n", b"GET\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{",
                 b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"):
        raw_exchange(server.port, junk, timeout=3)
    still_serving(server)


def test_tokenize_detokenize_errors(server):
    for path, body in (("/tokenize", b'{"content": 5}'), ("/tokenize", b"{"), ("/detokenize", b'{"tokens": "x"}'),
                       ("/detokenize", b'{"tokens": [-1]}'), ("/detokenize", b'{"tokens": [100000000]}'),
                       ("/tokenize", b'{"content": "\xff"}')):
        r = server.request("POST", path, body=body)
        assert_error(r, 400), (path, body)
    still_serving(server)


def test_a_completion_still_works_after_the_errors(server):
    r = server.complete({"prompt": "Hello", "max_tokens": 3, "temperature": 0, "ignore_eos": True})
    assert r.status == 200 and r.json()["usage"]["completion_tokens"] == 3, r


def test_max_tokens_cap_and_ctx_flags(model, start_server):
    s = start_server(model, ["--batch-size", "2", "--max-tokens", "8", "--ctx", "64"])
    r = s.complete({"prompt": "Hello", "max_tokens": 9})
    assert_error(r, 400, param="max_tokens")
    r = s.complete({"prompt": "Hello", "max_tokens": 8, "temperature": 0, "ignore_eos": True})
    assert r.status == 200 and r.json()["usage"]["completion_tokens"] == 8, r
    # --ctx 64: 60 prompt tokens + 5 new ones do not fit, + 4 do.
    r = s.complete({"prompt": [42] * 60, "max_tokens": 5})
    assert_error(r, 400, code="context_length_exceeded")
    r = s.complete({"prompt": [42] * 60, "max_tokens": 4, "temperature": 0, "ignore_eos": True})
    assert r.status == 200 and r.json()["usage"]["completion_tokens"] == 4, r
    assert s.request("GET", "/health").status == 200
