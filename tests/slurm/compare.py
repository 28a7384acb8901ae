#!/usr/bin/env python3
"""Checks a merged sharded run against one unsharded run of the same command (tests/slurm_test.sh).

  compare.py same REFERENCE MERGED   every line of REFERENCE is in MERGED, in the same order, each
                                     (index, sample) exactly once, equal on everything but the timing
  compare.py shard FILE K N MODE     FILE holds JSON lines of shard K/N only, no index twice; prints
                                     how many. MODE all:COUNT: every index of the shard of a run of
                                     COUNT, no cut last line; cut-ok: a last line cut by a kill is allowed
  compare.py missing STDERR N K M    STDERR (gen merge --expect N) lists exactly the indices i % M == K
Exit 0 when it holds, 1 (with the differences) when not.
"""
import json
import re
import sys

# Fields that measure the run (time, speed, the KV cache allocated for the batch) rather than its result.
TIMING = {"timing", "tokens_per_s", "kv_cache_bytes", "kv_cache_bytes_used"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def key(j):
    return (j["index"], j.get("sample", 0))


def same(ref_path, merged_path):
    ref, merged = load(ref_path), load(merged_path)
    problems = []
    keys = [key(j) for j in merged]
    if len(set(keys)) != len(keys):
        problems.append("duplicate (index, sample) in the merged file: %s" %
                        sorted(k for k in set(keys) if keys.count(k) > 1))
    if keys != sorted(keys):
        problems.append("the merged file is not in index order")
    if len(ref) != len(merged):
        problems.append("%d reference lines, %d merged" % (len(ref), len(merged)))
    by_key = {key(j): j for j in merged}
    for r in ref:
        m = by_key.get(key(r))
        if m is None:
            problems.append("index %s missing" % (key(r),))
            continue
        for field in sorted((set(r) | set(m)) - TIMING):
            if r.get(field) != m.get(field):
                problems.append("index %s: %s differs: %r != %r" %
                                (key(r), field, r.get(field), m.get(field)))
    for p in problems[:20]:
        print(p)
    if not problems:
        print("%d lines equal to the unsharded run" % len(merged))
    return not problems


def shard(path, k, n, mode):
    with open(path, "rb") as f:
        raw = f.read()
    lines = raw.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a line cut by the kill
    indices = []
    for line in lines:
        indices.append(json.loads(line)["index"])
    bad = [i for i in indices if i % n != k]
    twice = sorted({i for i in indices if indices.count(i) > 1})
    if mode == "cut-ok":
        tail = b""
    ok = not bad and not twice and not tail
    if not ok:
        print("%s: indices of other shards %s, twice %s, cut last line %r" % (path, bad, twice, tail[:40]))
    if mode.startswith("all:"):
        want = set(range(k, int(mode[4:]), n))
        if set(indices) != want:
            print("%s: indices %s, want %s" % (path, sorted(indices), sorted(want)))
            ok = False
    print(len(indices))
    return ok


def expand(text):
    out = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            out.extend(range(int(m.group(1)), int(m.group(2)) + 1))
        elif part.isdigit():
            out.append(int(part))
        else:
            raise ValueError("not an index list item: %r" % part)
    return out


def missing(stderr_path, n, k, m):
    with open(stderr_path, encoding="utf-8") as f:
        text = f.read()
    found = re.search(r"error: (\d+) of (\d+) indices missing: (.*)", text)
    if not found:
        print("no 'error: X of N indices missing: ...' line in: %r" % text)
        return False
    listed = expand(found.group(3).split(" (")[0])
    want = list(range(k, n, m))
    if listed != want or int(found.group(1)) != len(want) or int(found.group(2)) != n:
        print("listed %s (%s of %s), want %s" % (listed, found.group(1), found.group(2), want))
        return False
    return True


def main(argv):
    if len(argv) == 4 and argv[1] == "same":
        return same(argv[2], argv[3])
    if len(argv) == 6 and argv[1] == "shard":
        return shard(argv[2], int(argv[3]), int(argv[4]), argv[5])
    if len(argv) == 6 and argv[1] == "missing":
        return missing(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
    print(__doc__)
    return False


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv) else 1)
