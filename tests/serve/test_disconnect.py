# A client that leaves in the middle of a stream: its sequence is cancelled at the next step
# (gen_completions_total{finish_reason="cancelled"} grows, the batch slot frees), and the server goes on.
import json
import socket
import struct
import time

import pytest

from conftest import metric


def open_stream(port, body):
    """Sends a streamed completion on a raw socket and returns (socket, first bytes read, holding >= 3 events)."""
    payload = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
    data = b""
    while data.count(b"data: ") < 3:
        chunk = s.recv(4096)
        assert chunk, f"the server closed the stream early: {data!r}"
        data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    return s, data


def wait_for(cond, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_cancelled(server, before):
    """Waits until one more completion has ended "cancelled" than in `before`; returns those metrics."""
    def cancelled():
        m = server.metrics()
        return metric(m, "gen_completions_total", finish_reason="cancelled") - \
            metric(before, "gen_completions_total", finish_reason="cancelled") == 1 and m
    return wait_for(cancelled, 10, "gen_completions_total{finish_reason=\"cancelled\"} to grow")


@pytest.mark.parametrize("how", ["close", "reset"])
def test_dropped_stream_is_cancelled(slow_model, start_server, how):
    s = start_server(slow_model, ["--batch-size", "1", "--max-queue", "4"])
    before = s.metrics()
    t0 = time.time()
    sock, data = open_stream(s.port, {"prompt": "Once upon a time", "max_tokens": 1000, "ignore_eos": True,
                                      "temperature": 0, "stream": True})
    assert metric(s.metrics(), "gen_batch_live") == 1
    if how == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()

    m = wait_cancelled(s, before)
    cancel_s = time.time() - t0
    # Cancelled long before 1000 tokens: far fewer completion tokens than asked.
    done = metric(m, "gen_completion_tokens_total") - metric(before, "gen_completion_tokens_total")
    assert done < 1000, done
    try:
        wait_for(lambda: metric(s.metrics(), "gen_batch_live") == 0, 5, "")
        live_after_cancel = 0
    except AssertionError:
        live_after_cancel = metric(s.metrics(), "gen_batch_live")
    # The single slot is free again: the next request is answered, and promptly.
    t1 = time.time()
    r = s.complete({"prompt": "Hello", "max_tokens": 4, "temperature": 0, "ignore_eos": True}, timeout=30)
    assert r.status == 200 and r.json()["usage"]["completion_tokens"] == 4, r
    assert time.time() - t1 < 5
    assert s.alive()
    assert live_after_cancel == 0, f"gen_batch_live still {live_after_cancel} 5 s after the cancellation (idle server)"
    assert metric(s.metrics(), "gen_batch_live") == 0
    print(f"cancelled after {cancel_s:.2f} s, {done:.0f} tokens generated")


def test_dropped_nonstream_request_is_cancelled(slow_model, start_server):
    """A non-streamed request writes nothing until its end; the server still notices the client leaving
    (it peeks the connection) and cancels the sequence."""
    s = start_server(slow_model, ["--batch-size", "1"])
    before = s.metrics()
    payload = json.dumps({"prompt": "Hi", "max_tokens": 1000, "ignore_eos": True}).encode()
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
    wait_for(lambda: metric(s.metrics(), "gen_batch_live") == 1, 10, "the request to start")
    sock.close()

    m = wait_cancelled(s, before)
    done = metric(m, "gen_completion_tokens_total") - metric(before, "gen_completion_tokens_total")
    assert done < 1000, done
    r = s.complete({"prompt": "Hello", "max_tokens": 2, "temperature": 0}, timeout=60)
    assert r.status == 200, r
    assert s.alive()
