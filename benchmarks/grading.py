"""Benchmark the autograder: generate N varied submissions of a lab, grade them, report the wall time.

    .venv/bin/python benchmarks/grading.py [--lab lab03] [--n 100] [--jobs 2] [--out DIR] [--keep]

The submissions are made from the lab's solution notebook, in a fixed rotation of kinds:
correct; untouched (released); one question wrong (output + 0.01); each misconception of each
question (a function that returns what the mistaken implementation returns on the graded
inputs: it looks them up in a table computed here with the same seed, since the misconceptions
are coursekit code and the sandbox has NumPy only); raising; returning the wrong shape / None;
renamed function; not a notebook; slow (sleeps 0.3 s per call); an infinite loop in one question.
The run uses a fixed seed (``--seed``) so that the table matches. Prints one line of JSON.
"""
from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import inspect
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from coursekit.grade.engine import Grader, PreparedLab
from coursekit.grade.notebook import cell_source, read_notebook
from coursekit.labs import spec
from coursekit.labs.release import strip_solutions

_KEY_FN = '''
import base64 as _b64, hashlib as _hl, io as _io
import numpy as _np

def _ck_key(kw):
    h = _hl.sha256()
    for k in sorted(kw):
        a = _np.ascontiguousarray(_np.asarray(kw[k]))
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()
'''


def _key(kw) -> str:
    h = hashlib.sha256()
    for k in sorted(kw):
        a = np.ascontiguousarray(np.asarray(kw[k]))
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _pack(out) -> str:
    items = list(out) if isinstance(out, tuple) else [out]
    buf = io.BytesIO()
    np.savez(buf, **{f"r{i}": np.asarray(a) for i, a in enumerate(items)})
    return base64.b64encode(buf.getvalue()).decode()


def _lookup_source(q, prep, qi, variant) -> str:
    """Source of ``q.function`` that returns ``variant``'s output on the graded inputs."""
    params = list(inspect.signature(q.reference).parameters)
    table, single = {}, True
    for kw in prep.inputs[qi]:
        try:
            out = variant(**copy.deepcopy(kw))
        except Exception:  # noqa: BLE001 - a variant that cannot run: the submission raises there
            continue
        single = not isinstance(out, tuple)
        table[_key(kw)] = _pack(out)
    args = ", ".join(params)
    kwd = ", ".join(f"{p!r}: {p}" for p in params)
    ret = "out[0]" if single else "out"
    return (_KEY_FN + f"\n_TABLE = {json.dumps(table)}\n\ndef {q.function}({args}):\n"
            f"    kw = {{{kwd}}}\n"
            f"    with _np.load(_io.BytesIO(_b64.b64decode(_TABLE[_ck_key(kw)])), allow_pickle=False) as z:\n"
            f"        out = tuple(z[f'r{{i}}'] for i in range(len(z.files)))\n"
            f"    return {ret}\n")


def _wrap(source: str, fn: str, body: str) -> str:
    """Keep the solution, then redefine ``fn`` around it with ``body`` (uses ``_orig``)."""
    return f"{source}\n\n_orig_{fn} = {fn}\n\ndef {fn}(*args, **kwargs):\n" + "".join(
        f"    {line}\n" for line in body.replace("_orig", f"_orig_{fn}").splitlines())


def make_submissions(lab, solution_nb: dict, prep: PreparedLab, n: int, out: Path) -> Counter:
    """Write ``n`` submissions into ``out``; return how many of each kind."""
    qcells = {}
    for k, cell in enumerate(solution_nb["cells"]):
        for t in cell.get("metadata", {}).get("tags", []):
            if t.startswith("q:"):
                qcells[t[2:]] = k

    def with_sources(changes: dict[str, str]) -> dict:
        nb = copy.deepcopy(solution_nb)
        for qid, src in changes.items():
            nb["cells"][qcells[qid]]["source"] = src
        return nb

    sol = {q.id: cell_source(solution_nb["cells"][qcells[q.id]]) for q in lab.questions}
    kinds = [("correct", lambda: with_sources({})),
             ("untouched", lambda: with_sources({q.id: strip_solutions(sol[q.id])[0] for q in lab.questions}))]
    for qi, q in enumerate(lab.questions):
        kinds.append((f"wrong:{q.function}", lambda q=q: with_sources({q.id: _wrap(
            sol[q.id], q.function, "out = _orig(*args, **kwargs)\n"
            "return tuple(o + 0.01 for o in out) if isinstance(out, tuple) else out + 0.01")})))
        for m in q.misconceptions:
            kinds.append((f"misconception:{m.name}", lambda q=q, qi=qi, m=m: with_sources(
                {q.id: _lookup_source(q, prep, qi, m.variant)})))
    q0 = lab.questions[0]
    qn = lab.questions[-1]
    kinds += [
        ("raises", lambda: with_sources({q0.id: _wrap(sol[q0.id], q0.function,
                                                      "raise ValueError('shapes do not align')")})),
        ("wrong-shape", lambda: with_sources({q0.id: _wrap(sol[q0.id], q0.function,
                                                           "out = _orig(*args, **kwargs)\n"
                                                           "return out[0].ravel() if isinstance(out, tuple) "
                                                           "else out.ravel()[:-1]")})),
        ("returns-none", lambda: with_sources({qn.id: _wrap(sol[qn.id], qn.function, "_orig(*args, **kwargs)")})),
        ("renamed", lambda: with_sources({q0.id: sol[q0.id].replace(f"def {q0.function}(",
                                                                    f"def my_{q0.function}(")})),
        ("slow", lambda: with_sources({q.id: _wrap(sol[q.id], q.function, "import time\ntime.sleep(0.3)\n"
                                                   "return _orig(*args, **kwargs)") for q in lab.questions[:1]})),
    ]
    counts: Counter = Counter()
    out.mkdir(parents=True, exist_ok=True)
    special = {n // 2: "not-a-notebook", n - 1: "infinite-loop"}
    for i in range(n):
        path = out / f"student{i:03d}.ipynb"
        kind = special.get(i)
        if kind == "not-a-notebook":
            path.write_text("this is not JSON")
        elif kind == "infinite-loop":
            nb = with_sources({qn.id: _wrap(sol[qn.id], qn.function, "while True:\n    pass")})
            path.write_text(json.dumps(nb))
        else:
            kind, make = kinds[i % len(kinds)]
            path.write_text(json.dumps(make()))
        counts[kind.split(":")[0]] += 1
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lab", default="lab03", choices=spec.LAB_MODULES)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args(argv)
    lab = spec.get_lab(args.lab)
    nb_path = spec.notebook_path(lab)
    solution = read_notebook(nb_path)
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ck-bench-"))
    subs, out = work / "submissions", work / "graded"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    prep = PreparedLab.build(lab, args.seed, solution)
    counts = make_submissions(lab, solution, prep, args.n, subs)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = Grader(nb_path, out, jobs=args.jobs, seed=args.seed, progress=False, log=lambda m: None).grade([subs])
    wall = time.perf_counter() - t0
    status = Counter(r["status"] for r in recs)
    full = sum(r["score"] == r["max_score"] for r in recs)
    detected = sum(1 for r in recs for q in r["questions"] for c in q["cases"] if c["misconception"])
    print(json.dumps({"lab": lab.id, "submissions": len(recs), "jobs": args.jobs, "cpus": os.cpu_count(),
                      "grade_wall_s": round(wall, 2), "per_submission_ms": round(1000 * wall / len(recs), 1),
                      "generate_s": round(t_gen, 2), "kinds": dict(counts), "status": dict(status),
                      "full_marks": full, "misconception_cases_detected": detected, "out": str(out)}))
    if not args.out and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
