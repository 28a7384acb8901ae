#!/usr/bin/env python3
"""The house's layout rules, checked (docs/decisions.md, "Layout"; ctest runs it as `layout`):

- src/ is grouped by role: no file loose in src/ but main.cpp;
- no source file over 450 lines;
- include/gen/ (the public API) includes only include/gen/ and system headers;
- no header includes one from a higher layer, no source either (one named exception, the backend
  factory); the layers, low to high: text, model, engine, cpu | cuda | kernels, cli | serve | tools;
- no include cycles among the project's headers;
- the engine (include/, src/ but src/cli/ and src/serve/, kernels/) never includes CLI11, nor httplib.

Prints one line per violation and exits 1 when there is any; prints a summary and exits 0 otherwise.
Usage: scripts/check_layout.py [ROOT]   (ROOT defaults to the repository holding this script)
"""
import os
import re
import sys

LAYERS = {"text": 1, "model": 2, "engine": 3, "cpu": 4, "cuda": 4, "kernels": 4, "cli": 5, "serve": 5, "tools": 5}
# Public headers by the layer of the code that implements them.
PUBLIC_LAYER = {"error.h": 0, "tokenizer.h": 1, "config.h": 2, "model.h": 2}  # the rest: engine (3)
# The one place the engine reaches up: the factory that makes a CPU or CUDA backend from its header.
ALLOWED_UP = {("src/engine/device.cpp", "src/cpu/cpu_backend.h"), ("src/engine/device.cpp", "src/cuda/cuda_backend.h")}
MAX_LINES = 450
SOURCE_EXT = (".h", ".cpp", ".cu")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def project_files(root):
    out = []
    for top in ("include", "src", "kernels", "tools", "tests"):
        for d, _, names in os.walk(os.path.join(root, top)):
            out += [os.path.relpath(os.path.join(d, n), root) for n in names if n.endswith(SOURCE_EXT)]
    return sorted(out)


def layer_of(path):
    parts = path.split("/")
    if parts[0] == "include":
        return PUBLIC_LAYER.get(parts[-1], 3)
    if parts[0] == "src":
        return LAYERS.get(parts[1]) if len(parts) > 2 else 6  # src/main.cpp: the top
    return LAYERS.get(parts[0], 6)  # tests: the top


def resolve(root, src, kind, name):
    """The project file an include names, or None for a system header."""
    cands = [os.path.join(os.path.dirname(src), name)] if kind == '"' else []
    cands += [os.path.join(d, name) for d in ("include", "src", "kernels")]
    for c in cands:
        if os.path.isfile(os.path.join(root, c)):
            return os.path.normpath(c)
    return None


def check(root):
    files = project_files(root)
    errors, graph = [], {}
    loose = [n for n in os.listdir(os.path.join(root, "src")) if os.path.isfile(os.path.join(root, "src", n))]
    errors += [f"src/{n}: loose in src/ (only main.cpp may be)" for n in loose if n != "main.cpp"]
    for f in files:
        text = open(os.path.join(root, f), encoding="utf-8").read()
        n_lines = text.count("\n")
        if n_lines > MAX_LINES:
            errors.append(f"{f}: {n_lines} lines, over {MAX_LINES}")
        graph[f] = []
        for kind, name in INCLUDE.findall(text):
            if name.startswith("CLI/") and f.split("/")[0] in ("include", "src", "kernels") and not f.startswith(("src/cli/", "src/serve/")):
                errors.append(f"{f}: includes CLI11 ({name}): the engine knows nothing of its front ends")
            if name == "httplib.h" and f.split("/")[0] in ("include", "src", "kernels") and not f.startswith("src/serve/"):
                errors.append(f"{f}: includes httplib.h: only the server (src/serve/) speaks HTTP")
            dep = resolve(root, f, kind, name)
            if dep is None:
                continue
            graph[f].append(dep)
            if f.startswith("include/") and not dep.startswith("include/"):
                errors.append(f"{f}: public header includes the private {dep}")
            lf, ld = layer_of(f), layer_of(dep)
            if lf is not None and ld is not None and ld > lf and (f, dep) not in ALLOWED_UP:
                errors.append(f"{f} (layer {lf}) includes {dep} from a higher layer ({ld})")
    errors += cycles(graph)
    return files, errors


def cycles(graph):
    found, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                found.append("include cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files, errors = check(root)
    for e in errors:
        print("layout: " + e)
    if errors:
        return 1
    print(f"layout: {len(files)} files: no file loose in src/, none over {MAX_LINES} lines, no include cycle, "
          "no include from a higher layer, no CLI11 in the engine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
