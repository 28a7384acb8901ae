# End-to-end tests of `gen serve` (tests/serve_test.sh runs them; see README "gen serve").
# Env: GEN (the gen binary, default build/gen), MAKE_MODEL (gen-make-model, default build/gen-make-model),
# GEN_TOKENIZER_DIR (GPT-2's vocab.json + merges.txt; default ../shared/gpt2-tokenizer, then models/gpt2;
# without them the models use gen-make-model's byte-level stand-in, vocab 600, and the tests that need
# GPT-2's real ids are skipped).
#
# Fixtures: `model` (2 layers, 2 heads, 64 wide, 256 positions, made once per session), `slow_model`
# (4 layers, 256 wide, 1024 positions: long requests for cancellation, shutdown and queue tests),
# `server` (one shared `gen serve` on `model`, --batch-size 8), `start_server` (a factory for private
# instances; each is stopped at the end of its test, killed if SIGTERM does not end it), `cli` (the CLI's
# --prompts-file --json run over a list of .jsonl lines).
import http.client as httpclient
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GEN = os.environ.get("GEN") or str(ROOT / "build" / "gen")
MAKE_MODEL = os.environ.get("MAKE_MODEL") or str(ROOT / "build" / "gen-make-model")

LISTEN_RE = re.compile(r"gen serve: listening on http://([^:\s]+):(\d+)")
READY_RE = re.compile(r"gen serve: ready")


def _tokenizer_dir():
    # As tests/cli_lib.sh: GEN_TOKENIZER_DIR (default ../shared/gpt2-tokenizer), else models/gpt2.
    cands = [os.environ.get("GEN_TOKENIZER_DIR") or str(ROOT.parent / "shared" / "gpt2-tokenizer"),
             str(ROOT / "models" / "gpt2")]
    for c in cands:
        if c and (Path(c) / "vocab.json").is_file() and (Path(c) / "merges.txt").is_file():
            return c
    return None


TOKENIZER = _tokenizer_dir()
REAL_TOKENIZER = TOKENIZER is not None
VOCAB = 50257 if REAL_TOKENIZER else 600
needs_real_tokenizer = pytest.mark.skipif(not REAL_TOKENIZER,
                                          reason="no GPT-2 tokenizer files: the byte-level stand-in is in use")


def make_model(out, layers, heads, embd, positions, std=0.3):
    args = [MAKE_MODEL, "--out", str(out), "--layers", str(layers), "--heads", str(heads), "--embd", str(embd),
            "--positions", str(positions), "--vocab", str(VOCAB), "--std", str(std)]
    if REAL_TOKENIZER:
        args += ["--tokenizer", TOKENIZER]
    r = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    assert r.returncode == 0, f"gen-make-model failed: {r.stderr}"
    return Path(out)


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("m") / "tiny", 2, 2, 64, 256)


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("m") / "slow", 4, 4, 256, 1024, std=0.02)


# ---- HTTP helpers ----------------------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<HTTP {self.status} {self.body[:300]!r}>"


def http(port, method, path, body=None, headers=None, timeout=60, host="127.0.0.1"):
    """One request on a fresh connection. body: dict/list (sent as JSON), str or bytes."""
    conn = httpclient.HTTPConnection(host, port, timeout=timeout)
    try:
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def raw_exchange(port, data, timeout=30, read_limit=1 << 20):
    """Sends raw bytes (best effort: the server may close early) and reads until the server closes or
    one whole HTTP response (by Content-Length) has come. Returns the bytes read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        # In pieces, stopping when the server answers early (a 413 before the whole body, say): bytes
        # still unread when it closes would make its kernel reset the connection and lose the answer.
        try:
            for i in range(0, len(data), 65536):
                if select.select([s], [], [], 0)[0]:
                    break
                s.sendall(data[i:i + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        deadline = time.time() + timeout
        while time.time() < deadline and len(out) < read_limit:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
            head, sep, rest = out.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
        return out
    finally:
        s.close()


def parse_raw_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0]) if lines else None
    status = int(m.group(1)) if m else None
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return Response(status, headers, body)


def assert_error(resp, status, code=None, param=None, etype=None):
    """An OpenAI-style error: the status (an int or a tuple of allowed ones) and the JSON body's fields."""
    allowed = status if isinstance(status, tuple) else (status,)
    assert resp.status in allowed, f"expected {allowed}, got {resp}"
    assert "json" in resp.headers.get("content-type", ""), f"error not served as JSON: {resp.headers} {resp}"
    j = resp.json()
    assert set(j) == {"error"}, j
    e = j["error"]
    for k in ("message", "type", "param", "code"):
        assert k in e, f"error body lacks {k!r}: {j}"
    assert isinstance(e["message"], str) and e["message"], j
    assert isinstance(e["type"], str) and e["type"], j
    if etype is not None:
        assert e["type"] == etype, j
    if code is not None:
        assert e["code"] == code, j
    if param is not None:
        assert e["param"] == param, j
    return e


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels.items())): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$', line)
        assert m, f"bad metrics line: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metric(metrics, name, **labels):
    """The sum of the samples of NAME whose labels include LABELS (0 when none)."""
    total = 0.0
    for (n, ls), v in metrics.items():
        if n == name and all((k, v2) in ls for k, v2 in labels.items()):
            total += v
    return total


def sse_events(data):
    """The data: payloads of an SSE body (bytes), in order."""
    events = []
    for block in data.decode("utf-8").split("\n\n"):
        block = block.strip("\r\n")
        if not block:
            continue
        lines = [l for l in block.split("\n") if l.startswith("data:")]
        assert lines, f"SSE block without data: {block!r}"
        events.append("\n".join(l[5:].lstrip(" ") for l in lines))
    return events


# ---- the server ------------------------------------------------------------------------------------------

class Server:
    def __init__(self, model, args=(), env=None, log_path=None):
        self.model = Path(model)
        self.name = self.model.name
        self.log = []
        self.log_path = log_path
        self._listening = threading.Event()
        self._ready = threading.Event()
        self.host = self.port = None
        full_env = dict(os.environ)
        full_env.pop("GEN_API_KEY", None)
        full_env.update(env or {})
        cmd = [GEN, "serve", "--model", str(model), "--port", "0", "--device", "cpu"] + list(args)
        self.cmd = cmd
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=full_env)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self):
        f = open(self.log_path, "a") if self.log_path else None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log.append(line)
            if f:
                f.write(line + "\n")
                f.flush()
            m = LISTEN_RE.search(line)
            if m and not self._listening.is_set():
                self.host, self.port = m.group(1), int(m.group(2))
                self._listening.set()
            if READY_RE.search(line):
                self._ready.set()
        if f:
            f.close()

    def log_tail(self, n=30):
        return "\n".join(self.log[-n:])

    def wait_listening(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self._listening.wait(0.05):
                return
            if self.proc.poll() is not None:
                break
        raise AssertionError(f"gen serve did not print its listening line (exit {self.proc.poll()}): "
                             f"{' '.join(self.cmd)}\n{self.log_tail()}")

    def wait_healthy(self, timeout=60):
        self.wait_listening(timeout)
        end = time.time() + timeout
        last = None
        while time.time() < end:
            assert self.proc.poll() is None, f"gen serve exited {self.proc.returncode}:\n{self.log_tail()}"
            try:
                last = http(self.port, "GET", "/health", timeout=5)
                if last.status == 200:
                    return
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise AssertionError(f"/health never 200 (last {last!r}):\n{self.log_tail()}")

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, timeout=60):
        return http(self.port, method, path, body, headers, timeout)

    def complete(self, body, headers=None, timeout=120):
        return http(self.port, "POST", "/v1/completions", body, headers, timeout)

    def metrics(self):
        r = http(self.port, "GET", "/metrics", timeout=30)
        assert r.status == 200, r
        return parse_metrics(r.body.decode())

    def rss_kib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signals the server and waits; kills it past the timeout. Returns (exit code, seconds)."""
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0
        t0 = time.time()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._reader.join(5)
        return rc, time.time() - t0


@pytest.fixture(scope="session")
def _session_servers():
    servers = []
    yield servers
    for s in servers:
        s.stop()
        if s.proc.poll() is None:
            s.proc.kill()


@pytest.fixture(scope="session")
def server(model, _session_servers, tmp_path_factory):
    s = Server(model, ["--batch-size", "8"], log_path=tmp_path_factory.mktemp("log") / "server.log")
    _session_servers.append(s)
    s.wait_healthy()
    return s


@pytest.fixture
def start_server(tmp_path):
    started = []

    def start(model, args=(), env=None, wait=True):
        s = Server(model, args, env, log_path=tmp_path / f"server{len(started)}.log")
        started.append(s)
        if wait:
            s.wait_healthy()
        return s

    yield start
    for s in started:
        s.stop(timeout=10)


# ---- the CLI: what the server must match -----------------------------------------------------------------

def run_cli(model, lines, tmpdir, extra=(), timeout=600):
    """Runs gen --prompts-file over LINES (dicts for a .jsonl) with --json; returns the JSON lines by input
    order (with --samples K: K lines per prompt, sample 0..K-1)."""
    path = Path(tmpdir) / f"cli_{time.monotonic_ns()}.jsonl"
    path.write_text("".join(json.dumps(l) + "\n" for l in lines))
    cmd = [GEN, "--model", str(model), "--prompts-file", str(path), "--json", "--device", "cpu"] + list(extra)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} -> {r.returncode}: {r.stderr.decode()[-2000:]}"
    out = [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]
    out.sort(key=lambda x: (x["index"], x.get("sample", 0)))
    return out


@pytest.fixture
def cli(tmp_path):
    def run(model, lines, extra=()):
        return run_cli(model, lines, tmp_path, extra)
    return run


FINISH = {"length": "length", "eos": "stop", "stop": "stop"}  # the CLI's finish reasons -> OpenAI's


def cli_expected_text(cli_line, stop=()):
    """The text the server should return for a CLI line: OpenAI leaves a stop sequence (and what follows
    it) out of the text; the CLI keeps it."""
    text = cli_line["text"]
    if cli_line["finish_reason"] == "stop" and stop:
        cut = min((text.find(s) for s in stop if s in text), default=-1)
        if cut >= 0:
            text = text[:cut]
    return text
