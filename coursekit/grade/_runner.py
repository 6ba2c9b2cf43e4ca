"""The child side of the autograder: runs INSIDE the sandbox, on the sandbox's Python.

Standalone on purpose: it imports only the standard library and NumPy (coursekit is neither bound
nor installed in the sandbox). The grader copies this file to ``/in/run.py`` of a fresh job folder
and starts ``python -I -B /in/run.py /in RESULT_FD``.

Inputs (read-only, written by the parent):
    /in/job.json    {"cells": [{"label": str, "source": str}],
                     "questions": [{"function": str, "budget_s": float,
                                    "cases": [{"args": {name: <encoded value>}}]}],
                     "cell_budget_s": float, "max_frame": int}
    /in/inputs.npz  the arrays that encoded values refer to (``{"npz": key}``)

Encoded values: JSON scalars as themselves, ``{"npz": key}`` an array, ``{"npz": key, "scalar": true}``
a NumPy scalar, ``{"tuple": [...]}``/``{"list": [...]}`` sequences.

Output: first the 4 bytes ``b"CKS1"`` (the start handshake, written before anything else: the
parent retries a job only when they never came), then frames on the file descriptor RESULT_FD (a
pipe; no file is written anywhere), each ``b"CKR1" + uint64-LE length + npz bytes``. A frame
holds ``meta`` (a 0-d unicode array with JSON) and, for an answer, ``r0 .. r{n-1}`` (the returned
arrays). At most one frame per exercise cell (its first error), one per case (written as soon as
the case finishes, so a later hang keeps earlier results), and a final ``{"done": true}``. Nothing here decides a score: the parent validates every frame and
compares it with the reference it computed itself. stdout/stderr are the student's prints.
"""
import ast
import io
import json
import os
import signal
import struct
import sys
import time
import traceback

MAGIC = b"CKR1"
START = b"CKS1"
_MAX_MESSAGE = 2000


class _Budget(BaseException):
    """Raised by SIGALRM when a call exceeds its time budget (BaseException: ``except Exception`` in
    the student's code does not swallow it)."""


def _on_alarm(signum, frame):
    raise _Budget()


def _set_alarm(seconds):
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 0.001))


def _clear_alarm():
    signal.setitimer(signal.ITIMER_REAL, 0)


def _short(text, limit=_MAX_MESSAGE):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 15] + " ... (truncated)"


def _describe(exc):
    """(error type, one-line message, the student's traceback lines) of an exception."""
    try:
        msg = str(exc)
    except BaseException:  # noqa: BLE001 - a student's __str__ may raise
        msg = "<unprintable exception>"
    try:
        tb = traceback.extract_tb(exc.__traceback__)
        lines = [f'  cell "{f.filename}", line {f.lineno}, in {f.name}' for f in tb
                 if f.filename.startswith("exercise")]
    except BaseException:  # noqa: BLE001
        lines = []
    return type(exc).__name__, _short(msg), _short("\n".join(lines[-8:]))


class Channel:
    def __init__(self, fd, max_frame, np):
        self.fd, self.max_frame, self.np = fd, max_frame, np
        self.pid = os.getpid()

    def send(self, meta, arrays=()):
        if os.getpid() != self.pid:  # a process the student forked came back into the runner: stop it
            os._exit(0)
        np = self.np
        payload = {"meta": np.array(json.dumps(meta))}
        for k, a in enumerate(arrays):
            payload[f"r{k}"] = a
        buf = io.BytesIO()
        np.savez(buf, **payload)
        data = buf.getvalue()
        if len(data) > self.max_frame:
            meta = {**meta, "status": "error", "error_type": "OutputTooLarge",
                    "message": f"the returned arrays take {len(data)} bytes, more than the limit of "
                               f"{self.max_frame} bytes", "trace": ""}
            meta.pop("kind", None)
            meta.pop("n", None)
            return self.send(meta)
        frame = MAGIC + struct.pack("<Q", len(data)) + data
        view = memoryview(frame)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]


def _decode(value, arrays):
    if isinstance(value, dict):
        if "npz" in value:
            a = arrays[value["npz"]].copy()
            return a[()] if value.get("scalar") else a
        if "tuple" in value:
            return tuple(_decode(v, arrays) for v in value["tuple"])
        if "list" in value:
            return [_decode(v, arrays) for v in value["list"]]
        raise ValueError(f"run.py: cannot decode {value!r}")
    return value


def _as_arrays(np, value):
    """What the student returned as (kind, [ndarray, ...]); ValueError if it is not numeric."""
    if isinstance(value, tuple) or (isinstance(value, list) and value
                                    and all(isinstance(v, np.ndarray) for v in value)):
        kind, items = "tuple", list(value)
    else:
        kind, items = "array", [value]
    if len(items) > 16:
        raise ValueError(f"returned {len(items)} values; at most 16 are accepted")
    out = []
    for k, item in enumerate(items):
        if item is None:
            where = "" if kind == "array" else f" as value {k}"
            raise ValueError(f"returned None{where} (missing `return`?)")
        a = np.asarray(item)
        if a.dtype.hasobject or a.dtype.kind not in "biufc":
            raise ValueError(f"returned {type(item).__name__} with dtype {a.dtype}; expected a numeric array")
        out.append(np.ascontiguousarray(a))
    return kind, out


def _exec_cells(cells, namespace, budget, channel):
    """Execute the exercise cells statement by statement, so that one failing statement (say an
    ``import coursekit`` or a leftover test call) does not hide the functions defined after it."""
    for ci, cell in enumerate(cells):
        label = cell["label"]
        reported = False
        try:
            tree = compile(cell["source"], label, "exec", ast.PyCF_ONLY_AST)
        except SyntaxError as e:
            channel.send({"cell": ci, "label": label, "status": "error", "error_type": "SyntaxError",
                          "message": _short(f"line {e.lineno}: {e.msg}"), "trace": ""})
            continue
        for node in tree.body:
            code = compile(ast.Module(body=[node], type_ignores=[]), label, "exec")
            try:
                _set_alarm(budget)
                try:
                    exec(code, namespace)
                finally:
                    _clear_alarm()
            except _Budget:
                if not reported:   # one frame per cell: its first error (the parent accepts no more)
                    channel.send({"cell": ci, "label": label, "status": "timeout", "error_type": "Timeout",
                                  "message": f"line {node.lineno} ran longer than {budget:.1f} s", "trace": ""})
                reported = True
            except BaseException as e:  # noqa: BLE001 - SystemExit, KeyboardInterrupt ... are the student's
                if not reported:
                    et, msg, trace = _describe(e)
                    channel.send({"cell": ci, "label": label, "status": "error", "error_type": et,
                                  "message": _short(f"line {node.lineno}: {msg}"), "trace": trace})
                reported = True


def _run_case(np, namespace, qi, ci, fn_name, args, deadline, channel):
    meta = {"q": qi, "c": ci}
    fn = namespace.get(fn_name)
    if not callable(fn):
        channel.send({**meta, "status": "not-defined", "error_type": "NameError",
                      "message": f"no function named `{fn_name}` is defined", "trace": ""})
        return
    left = deadline - time.monotonic()
    if left <= 0:
        channel.send({**meta, "status": "timeout", "error_type": "Timeout",
                      "message": "the time budget of this question was used up by earlier cases", "trace": ""})
        return
    t0 = time.perf_counter()
    try:
        _set_alarm(left)
        try:
            value = fn(**args)
        finally:
            _clear_alarm()
        kind, arrays = _as_arrays(np, value)
    except _Budget:
        channel.send({**meta, "status": "timeout", "error_type": "Timeout",
                      "message": "the call did not return within this question's time budget", "trace": "",
                      "elapsed": time.perf_counter() - t0})
        return
    except NotImplementedError as e:
        channel.send({**meta, "status": "not-implemented", "error_type": "NotImplementedError",
                      "message": "not implemented", "trace": _describe(e)[2]})
        return
    except BaseException as e:  # noqa: BLE001
        et, msg, trace = _describe(e)
        channel.send({**meta, "status": "error", "error_type": et, "message": msg, "trace": trace,
                      "elapsed": time.perf_counter() - t0})
        return
    channel.send({**meta, "status": "ok", "kind": kind, "n": len(arrays),
                  "elapsed": time.perf_counter() - t0}, arrays)


def main(argv):
    in_dir, fd = argv[1], int(argv[2])
    os.write(fd, START)   # the handshake: the sandbox started; from here on nothing is retried
    import numpy as np

    with open(os.path.join(in_dir, "job.json"), encoding="utf-8") as f:
        job = json.load(f)
    with np.load(os.path.join(in_dir, "inputs.npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    channel = Channel(fd, int(job["max_frame"]), np)
    signal.signal(signal.SIGALRM, _on_alarm)

    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    _exec_cells(job["cells"], namespace, float(job["cell_budget_s"]), channel)
    for qi, q in enumerate(job["questions"]):
        deadline = time.monotonic() + float(q["budget_s"])
        for ci, case in enumerate(q["cases"]):
            args = {k: _decode(v, arrays) for k, v in case["args"].items()}
            _run_case(np, namespace, qi, ci, q["function"], args, deadline, channel)
    channel.send({"done": True})
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
