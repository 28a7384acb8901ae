#!/usr/bin/env python3
"""Plot gen's per-step latency against context length, with and without the KV cache.

    scripts/plot_latency.py steps.csv [more.csv ...] -o latency.png [--log] [--title T]

Input: the CSV that `gen ... --trace FILE` writes, header `mode,step,context,batch,step_ms`, where
mode is `cache` or `no-cache`, step 0 is the prefill, context is the number of tokens in the sequence
after the step, and step_ms the step's wall time. One file may hold both modes (`--compare`).

One line per mode (and per file and batch size when there are several) over the decode steps
(step >= 1): with the cache it stays flat, without it grows with the context. Prefills (step 0) cost
a different kind of work, so they are not part of the lines: they are drawn as separate markers.
Rows at the same context in one group (repeated runs) are drawn as their median.

Errors are one line `error: ...` on stderr: exit 2 for bad input (missing file, wrong header, a bad
row, no rows), 1 otherwise (matplotlib missing, the PNG cannot be written).
"""
import argparse
import csv
import math
import os
import statistics
import sys

HEADER = ["mode", "step", "context", "batch", "step_ms"]
MODES = ("cache", "no-cache")
COLORS = {"cache": "tab:blue", "no-cache": "tab:orange"}
STYLES = {"cache": "-", "no-cache": "--"}  # the mode stays readable when colors name files or batches


class InputError(Exception):
    pass


def parse_row(row, where):
    if len(row) != len(HEADER):
        raise InputError(f"expected {len(HEADER)} fields, got {len(row)} ({where})")
    mode, step, context, batch, ms = (f.strip() for f in row)
    if mode not in MODES:
        raise InputError(f"mode must be cache or no-cache, got '{mode}' ({where})")
    try:
        step, context, batch, ms = int(step), int(context), int(batch), float(ms)
    except ValueError:
        raise InputError(f"step, context and batch must be integers and step_ms a number ({where})")
    if step < 0 or context < 1 or batch < 1 or not (math.isfinite(ms) and ms >= 0):
        raise InputError(f"out of range: step >= 0, context >= 1, batch >= 1, step_ms >= 0 ({where})")
    return mode, step, context, batch, ms


def read_trace(path):
    """Rows of one trace file as (mode, step, context, batch, step_ms) tuples."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header] != HEADER:
                got = ",".join(header) if header else "an empty file"
                raise InputError(f"header must be '{','.join(HEADER)}', got '{got}' ({path})")
            rows = [parse_row(r, f"{path}:{reader.line_num}") for r in reader if any(c.strip() for c in r)]
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}")
    except UnicodeDecodeError:
        raise InputError(f"not a text file ({path})")
    if not rows:
        raise InputError(f"no rows after the header ({path})")
    return rows


def group(traces):
    """{(file, mode, batch): {"decode": [(context, median ms)], "prefill": [(context, ms)]}}."""
    groups = {}
    for path, rows in traces:
        for mode, step, context, batch, ms in rows:
            g = groups.setdefault((path, mode, batch), {"decode": {}, "prefill": []})
            if step == 0:
                g["prefill"].append((context, ms))
            else:
                g["decode"].setdefault(context, []).append(ms)
    for g in groups.values():
        g["decode"] = sorted((c, statistics.median(v)) for c, v in g["decode"].items())
    return groups


def label(path, mode, batch, show_file, show_batch):
    parts = [mode]
    if show_batch:
        parts.append(f"batch {batch}")
    if show_file:
        parts.append(os.path.basename(path))
    return ", ".join(parts)


def plot(groups, out, log, title):
    try:
        import matplotlib
    except ImportError:
        print("error: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        sys.exit(1)
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    show_file = len({k[0] for k in groups}) > 1
    show_batch = len({k[2] for k in groups}) > 1
    markers = ["o", "s", "^", "D", "v", "P"]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for i, ((path, mode, batch), g) in enumerate(sorted(groups.items())):
        name = label(path, mode, batch, show_file, show_batch)
        color = COLORS[mode] if not (show_file or show_batch) else None
        if g["decode"]:
            xs, ys = zip(*g["decode"])
            med = statistics.median(ys)
            line, = ax.plot(xs, ys, color=color, ls=STYLES[mode], lw=1.6, marker="." if len(xs) < 60 else None,
                            label=f"{name}: decode steps (median {med:.3g} ms)")
            color = line.get_color()
        if g["prefill"]:
            px, py = zip(*g["prefill"])
            # Hollow, so that prefills of both modes at the same prompt length stay visible.
            ax.scatter(px, py, facecolors="none", edgecolors=color, marker=markers[i % len(markers)], s=70,
                       linewidths=1.8, zorder=3, label=f"{name}: prefill (step 0, not in the line)")
    ax.set_xlabel("context length (positions the step attended over)")
    ax.set_ylabel("step latency (ms)" + (", log scale" if log else ""))
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    n_entries = len(ax.get_legend_handles_labels()[1])
    if n_entries <= 4:
        ax.legend(loc="best", fontsize=9)
    else:  # many files or batches: a legend inside would hide the lines
        fig.set_figheight(5.5 + 0.22 * ((n_entries + 1) // 2))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    try:
        fig.savefig(out, format="png")
    except OSError as e:
        print(f"error: cannot write {out}: {e.strerror}", file=sys.stderr)
        sys.exit(1)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other error of gen's tools
        print(f"error: {message} (usage: {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def main():
    ap = Parser(description="Plot gen's per-step latency (from --trace CSV) against context length.")
    ap.add_argument("csv", nargs="+", help="trace files: mode,step,context,batch,step_ms")
    ap.add_argument("-o", "--output", default="latency.png", help="PNG to write (default latency.png)")
    ap.add_argument("--log", action="store_true", help="logarithmic latency axis")
    ap.add_argument("--title", default="gen: per-step latency, KV cache vs no cache",
                    help="plot title, e.g. to name the machine")
    args = ap.parse_args()
    try:
        traces = [(p, read_trace(p)) for p in args.csv]
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    plot(group(traces), args.output, args.log, args.title)


if __name__ == "__main__":
    main()
