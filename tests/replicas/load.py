#!/usr/bin/env python3
"""The load and the checks of tests/replicas_test.sh: gen serve replicas behind nginx, one killed mid-run.

  load.py prompts                      the prompts (.jsonl, each with its max_new_tokens) for the CLI
  load.py wait URL SECONDS             until GET URL answers 200 (exit 1 past SECONDS)
  load.py run --nginx PORT --replicas P0,P1 --victim-pid PID --expected CLI.jsonl --access-log PATH

`run` sends REQUESTS greedy completions (half streamed) from CLIENTS threads through nginx, SIGKILLs
replica 0 (PID) once KILL_AFTER have finished and a stream is running on it, then checks that every
request but the streams that had started on it succeeded with the CLI's text, that those failed cleanly
(no hang), and that the counts of the clients, the survivor's /metrics and nginx's access log agree.
Python's standard library only; exit 0 when every check holds, 1 with the failed check otherwise.
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import statistics
import sys
import threading
import time

PROMPTS = ["The quick brown fox", "Once upon a time", "In 1905, Einstein", "The capital of France is",
           "def fibonacci(n):", "Breaking news:", "My favourite colour is", "Q: What is a KV cache?\nA:"]


def prompt_lines():
    return [{"prompt": p, "max_new_tokens": 48 + 2 * i} for i, p in enumerate(PROMPTS)]


class Check(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Check(what)


def get(port, path, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def wait(url, seconds):
    m = re.match(r"http://127\.0\.0\.1:(\d+)(/.*)", url)
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        try:
            if get(int(m.group(1)), m.group(2), timeout=2)[0] == 200:
                return 0
        except OSError:
            pass
        time.sleep(0.05)
    print(f"no 200 from {url} in {seconds} s", file=sys.stderr)
    return 1


class Result:
    def __init__(self, i, stream, prompt):
        self.i, self.stream, self.prompt = i, stream, prompt
        self.status = self.replica = self.error = None
        self.text, self.done = "", False
        self.t0 = time.monotonic()
        self.t_headers = self.t_first = self.t_end = None
        self.on_victim = False  # a stream whose headers came from the victim, still running

    def upstreams(self):
        return [a.strip() for a in (self.replica or "").split(",") if a.strip()]

    def ok(self, expected):
        return self.status == 200 and self.error is None and self.done and self.text == expected[self.prompt]


def sse_texts(body, res):
    """The texts of an SSE body's whole events (not a last one cut short); sets res.done at
    `data: [DONE]`, res.error at an error event."""
    texts = []
    for block in body.split("\n\n")[:-1]:
        data = "\n".join(l[5:].lstrip(" ") for l in block.split("\n") if l.startswith("data:"))
        if not data:
            continue
        if data == "[DONE]":
            res.done = True
            continue
        j = json.loads(data)
        if "error" in j:
            res.error = res.error or "error event: " + data[:200]
            continue
        texts += [c["text"] for c in j["choices"]]
    return texts


def read_stream(r, res):
    body = b""
    try:
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            if res.t_first is None and b"data:" in chunk:
                res.t_first = time.monotonic()
            body += chunk
    finally:
        # What came before a failure counts too: it must be the start of the expected text.
        res.text = "".join(sse_texts(body.decode("utf-8", "replace"), res))


def read_whole(r, res):
    body = r.read()
    if res.status == 200:
        j = json.loads(body)
        res.text, res.done = j["choices"][0]["text"], True
        if j["choices"][0]["finish_reason"] != "length":
            res.error = f"finish_reason {j['choices'][0]['finish_reason']}"
    else:
        res.error = f"HTTP {res.status}: {body[:200]!r}"


def send(port, res, line, timeout, on_headers):
    body = {"prompt": line["prompt"], "max_tokens": line["max_new_tokens"], "temperature": 0,
            "ignore_eos": True, "stream": res.stream}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        res.status, res.replica, res.t_headers = r.status, r.getheader("X-Gen-Replica"), time.monotonic()
        on_headers(res)
        if res.stream and res.status == 200:
            read_stream(r, res)
        else:
            read_whole(r, res)
    except socket.timeout:
        res.error = "timeout"  # a hang: never acceptable
    except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
        res.error = f"{type(e).__name__}: {e}"
    finally:
        res.t_end = time.monotonic()
        conn.close()


class Load:
    """CLIENTS threads take the next request number until REQUESTS are sent; SIGKILL once KILL_AFTER have
    finished and a stream is running on the victim (or, failing that, once KILL_AFTER + 40 have)."""

    def __init__(self, a, lines):
        self.a, self.lines = a, lines
        self.victim = f"127.0.0.1:{a.replicas[0]}"
        self.cv = threading.Condition()
        self.next = self.finished = self.victim_streams = 0
        self.results = []
        self.t_kill = None

    def on_headers(self, res):
        if res.stream and res.upstreams() == [self.victim]:
            with self.cv:
                res.on_victim = True
                self.victim_streams += 1
                self.cv.notify_all()

    def client(self):
        while True:
            with self.cv:
                i = self.next
                if i >= self.a.requests:
                    return
                self.next += 1
            res = Result(i, i % 2 == 0, (i * 5 + i // 8) % len(self.lines))
            send(self.a.nginx, res, self.lines[res.prompt], self.a.timeout, self.on_headers)
            with self.cv:
                self.results.append(res)
                self.finished += 1
                if res.on_victim:
                    self.victim_streams -= 1
                self.cv.notify_all()

    def killer(self):
        k, last = self.a.kill_after, min(self.a.kill_after + 40, self.a.requests)
        with self.cv:
            self.cv.wait_for(lambda: (self.finished >= k and self.victim_streams > 0) or self.finished >= last)
            self.t_kill = time.monotonic()  # before: a request sent after it cannot have reached the victim
            os.kill(self.a.victim_pid, signal.SIGKILL)
            self.killed_at = (self.finished, self.victim_streams)

    def run(self):
        threads = [threading.Thread(target=self.client, daemon=True) for _ in range(self.a.clients)]
        killer = threading.Thread(target=self.killer, daemon=True)
        t0 = time.monotonic()
        killer.start()
        for t in threads:
            t.start()
        deadline = t0 + self.a.deadline
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
            check(not t.is_alive(), f"the load did not finish in {self.a.deadline:.0f} s")
        killer.join(5)
        check(self.t_kill is not None, "the victim was never killed")
        self.seconds = time.monotonic() - t0
        return sorted(self.results, key=lambda r: r.i)


def access_lines(path, want, timeout=5):
    """nginx's access log lines of POST /v1/completions (it logs after the last byte: waits a moment)."""
    end = time.monotonic() + timeout
    while True:
        with open(path, encoding="utf-8") as f:
            lines = [l for l in f if '"POST /v1/completions ' in l]
        if len(lines) >= want or time.monotonic() > end:
            return lines
        time.sleep(0.05)


def metric(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
    return total


def check_requests(load, results, expected):
    victim, t_kill = load.victim, load.t_kill
    check(len(results) == load.a.requests, f"{len(results)} results for {load.a.requests} requests")
    hangs = [r.i for r in results if r.error == "timeout"]
    check(not hangs, f"requests {hangs} hung (no byte for {load.a.timeout} s)")
    failed = [r for r in results if not r.ok(expected)]
    for r in failed:
        why = f"request {r.i} ({'stream' if r.stream else 'whole'}, replica {r.replica}, {r.error}) failed"
        check(r.stream and r.status == 200 and r.upstreams() == [victim], why + ": not a stream started on the victim")
        check(r.t0 < t_kill < r.t_end, why + ": it was not running when the victim was killed")
        check(not r.done, why + " though it ended with [DONE]")
        check(expected[r.prompt].startswith(r.text), why + f": its partial text is not the expected one's start: {r.text!r}")
    started_on_victim = [r for r in results if r.stream and r.upstreams() == [victim] and r.t0 < t_kill]
    check(len(failed) <= len(started_on_victim), f"{len(failed)} failed, {len(started_on_victim)} streams on the victim")
    before = {r.upstreams()[-1] for r in results if r.t_end < t_kill and r.upstreams()}
    check(len(before) >= 2, f"before the kill every request went to {before}")
    return failed


def check_survivor(load, results, expected):
    survivor = f"127.0.0.1:{load.a.replicas[1]}"
    served = [r for r in results if r.upstreams() and r.upstreams()[-1] == survivor]
    check(all(r.ok(expected) for r in served), "a request the survivor answered failed")
    status, text = get(load.a.nginx, "/replica/1/metrics")
    check(status == 200, f"/replica/1/metrics: HTTP {status}")
    counted = metric(text, "gen_requests_total", endpoint="/v1/completions", status="200")
    check(counted == len(served), f"the survivor counts {counted:.0f} completions, the clients got {len(served)} from it")
    status, _ = get(load.a.nginx, "/replica/0/metrics")
    check(status == 502, f"/replica/0/metrics of the killed replica: HTTP {status}, not 502")
    for _ in range(4):
        status, body = get(load.a.nginx, "/health")
        check(status == 200, f"/health through nginx after the kill: HTTP {status} {body}")
    return served


def check_access_log(load, results, expected):
    lines = access_lines(load.a.access_log, len(results))
    check(len(lines) == len(results), f"nginx logged {len(lines)} completions for {len(results)} requests")
    statuses = [re.search(r'" (\d{3}) ', l).group(1) for l in lines]
    check(all(s == "200" for s in statuses), f"nginx logged statuses {sorted(set(statuses))}")
    retried_log = sum(1 for l in lines if "," in re.search(r"upstream=\[([^\]]*)\]", l).group(1))
    retried = sum(1 for r in results if len(r.upstreams()) > 1)
    check(retried_log == retried, f"nginx logged {retried_log} retried requests, the clients saw {retried}")
    check(retried + sum(not r.ok(expected) for r in results) > 0, "the kill hit no request: nothing was tested")
    return retried


def check_streaming(results, expected):
    """SSE passes through event by event (proxy_buffering off): a stream's first event comes long before
    its end. Over the streams that succeeded, the median of first-event / whole time stays under a half."""
    fracs = [(r.t_first - r.t0) / (r.t_end - r.t0) for r in results if r.stream and r.ok(expected)]
    check(fracs, "no stream succeeded")
    med = statistics.median(fracs)
    check(med < 0.5, f"streams arrive whole: first event at {med:.0%} of the request's time (median)")
    return med


def summary(load, results, expected, failed, served, retried, med):
    victim = load.victim
    ok = [r for r in results if r.ok(expected)]
    last = [r.upstreams()[-1] if r.upstreams() else "-" for r in results if r.t_end < load.t_kill]
    per = {a: last.count(a) for a in sorted(set(last))}
    in_flight = [r for r in results if r.t0 < load.t_kill < r.t_end]
    print(f"replicas: {len(results)} requests ({sum(r.stream for r in results)} streamed) from {load.a.clients} "
          f"clients in {load.seconds:.1f} s: {len(ok)} succeeded, {len(failed)} failed (streams started on the "
          f"killed replica; {sum(not r.text for r in failed)} of them before their first token)")
    print(f"replicas: killed {victim} after {load.killed_at[0]} finished; before it, finished per replica {per}; "
          f"in flight at the kill: {len(in_flight)} ({sum(r.stream for r in in_flight)} streams); "
          f"retried by nginx: {retried}; answered by the survivor: {len(served)}; first event at {med:.0%} "
          f"of a stream's time (median)")


def run(a):
    expected = {}
    with open(a.expected, encoding="utf-8") as f:
        for l in f:
            j = json.loads(l)
            expected[j["index"]] = j["text"]
    lines = prompt_lines()
    check(len(expected) == len(lines) and len(set(expected.values())) == len(lines),
          "the CLI's texts are missing or not all different")
    load = Load(a, lines)
    results = load.run()
    failed = check_requests(load, results, expected)
    served = check_survivor(load, results, expected)
    retried = check_access_log(load, results, expected)
    med = check_streaming(results, expected)
    summary(load, results, expected, failed, served, retried, med)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prompts")
    w = sub.add_parser("wait")
    w.add_argument("url")
    w.add_argument("seconds")
    r = sub.add_parser("run")
    r.add_argument("--nginx", type=int, required=True)
    r.add_argument("--replicas", type=lambda s: [int(x) for x in s.split(",")], required=True)
    r.add_argument("--victim-pid", type=int, required=True)
    r.add_argument("--expected", required=True)
    r.add_argument("--access-log", required=True)
    r.add_argument("--requests", type=int, default=200)
    r.add_argument("--clients", type=int, default=16)
    r.add_argument("--kill-after", type=int, default=60)
    r.add_argument("--timeout", type=float, default=30, help="seconds a client waits for a byte")
    r.add_argument("--deadline", type=float, default=120, help="seconds the whole load may take")
    a = p.parse_args()
    if a.cmd == "prompts":
        for l in prompt_lines():
            print(json.dumps(l))
        return 0
    if a.cmd == "wait":
        return wait(a.url, a.seconds)
    try:
        return run(a)
    except Check as e:
        print(f"FAIL: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
