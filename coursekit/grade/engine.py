"""Grade a cohort's notebooks: prepare each job, run it in the sandbox, score it in the parent.

The parent draws every case's inputs from a per-run secret seed (``os.urandom`` unless given),
computes the reference outputs itself, writes only the *inputs* and the student's exercise cells
into a fresh job folder, runs the child runner there (one sandboxed process per submission,
all questions), validates what comes back (:mod:`.protocol`) and calls
:func:`coursekit.labs.spec.compare` on it. Results are kept per student in ``OUT/.state`` (atomic
writes, keyed by the submission's hash, the lab's answers and the seed), so that a run killed
midway resumes without regrading unchanged submissions, and ``grades.csv`` is rebuilt from them.
"""
from __future__ import annotations

import copy
import fcntl
import hashlib
import io
import json
import math
import os
import queue
import shutil
import stat
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write, safe_name
from . import protocol
from .notebook import SubmissionError, extract_answers, read_notebook, read_submission, solution_cell_ids
from .protocol import untrusted_text
from .sandbox import (UNPROTECTED, Limits, RunResult, Sandbox, SandboxUnavailable, _share, release_mounts_under,
                      remove_stale_cgroups, sandbox_ready, sandbox_venv, setup_sandbox)

__all__ = ["GRADER_VERSION", "Grader", "PreparedLab", "discover_submissions", "student_id", "atomic_write",
           "safe_name", "load_lab_notebook", "load_lab_spec", "grade"]

GRADER_VERSION = "2"
_RUNNER = Path(__file__).with_name("_runner.py")
_STATUS_OK = "ok"
_BASE_PREFIX = "coursekit-grade-"
_LOCK_NAME = ".run.lock"
FAILED_STATUSES = frozenset({"crashed", "timeout", "output-limit", "result-limit"})
"""Statuses of a job that ran but did not finish: cached, regraded with ``regrade_failed=True``."""
_NEVER_CACHED = frozenset({"grader-error", "sandbox-error", "not-graded"})


# ----------------------------------------------------------------------------- small helpers

def student_id(path: str | os.PathLike) -> str:
    """The file stem; a stem that is not valid UTF-8 (a Latin-1 zip) gives its bytes with
    backslash escapes and a trailing ``"/"``, which no file name holds: ids never collide."""
    stem = Path(path).stem
    raw = os.fsencode(stem)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace") + "/"


def discover_submissions(paths, *, exclude=()) -> list[Path]:
    """Files given directly, plus every ``*.ipynb`` entry directly inside each folder given (a
    symlink, FIFO or folder among them included: it gets a row saying it is not graded), sorted;
    ``ValueError`` for a missing path or two submissions with the same student id."""
    excl = []
    for p in exclude:
        try:
            excl.append(os.stat(p))
        except OSError:
            pass
    found = []
    for p in paths:
        p = Path(p)
        if p.is_dir():   # a folder the instructor named (even through a symlink)
            with os.scandir(p) as it:
                found += sorted((p / e.name for e in it if e.name.endswith(".ipynb")),
                                key=lambda q: os.fsencode(q.name))
        elif os.path.lexists(p):
            found.append(p)
        else:
            raise ValueError(f"grade: submission {untrusted_text(p, 500)!r} does not exist")

    def ident(q):
        st = os.lstat(q)
        return st.st_dev, st.st_ino

    found = [q for q in found if not any(os.path.samestat(os.lstat(q), e) for e in excl)]
    seen: dict[str, Path] = {}
    for q in found:
        sid = student_id(q)
        if sid in seen and ident(seen[sid]) != ident(q):
            raise ValueError(f"grade: two submissions have the student id {untrusted_text(sid, 200)!r}: "
                             f"{untrusted_text(seen[sid], 500)} and {untrusted_text(q, 500)}")
        seen[sid] = q
    return list(seen.values())


def load_lab_notebook(path: str | os.PathLike):
    """(Lab, solution notebook dict) from a lab's solution notebook (``metadata.coursekit.lab``)."""
    from coursekit.labs import spec
    from .notebook import notebook_lab_id
    try:
        nb = read_notebook(path)
    except SubmissionError as e:
        raise ValueError(f"grade: lab notebook {str(path)!r}: {e.message}") from None
    lab_id = notebook_lab_id(nb)
    if lab_id is None:
        raise ValueError(f"grade: lab notebook {str(path)!r} has no metadata.coursekit.lab; "
                         f"expected one of {spec.LAB_MODULES}")
    return spec.get_lab(lab_id), nb


def load_lab_spec(ref: str):
    """A :class:`~coursekit.labs.spec.Lab` defined outside coursekit: ``"path/to/file.py:NAME"``
    (NAME defaults to ``LAB``). For an instructor's own labs, and for the grader's tests."""
    import importlib.util
    from coursekit.labs import spec
    file, _, attr = str(ref).partition(":")
    if not file.endswith(".py") or not os.path.isfile(file):
        raise ValueError(f"grade: --lab-spec must be FILE.py[:NAME] naming an existing file, got {ref!r}")
    name = f"_coursekit_lab_spec_{hashlib.sha256(os.path.realpath(file).encode()).hexdigest()[:12]}"
    mod = sys.modules.get(name)
    if mod is None:
        mspec = importlib.util.spec_from_file_location(name, file)
        mod = importlib.util.module_from_spec(mspec)
        sys.modules[name] = mod
        mspec.loader.exec_module(mod)
    lab = getattr(mod, attr or "LAB", None)
    if not isinstance(lab, spec.Lab):
        raise ValueError(f"grade: --lab-spec {ref!r} does not name a coursekit.labs.spec.Lab")
    return lab


# ----------------------------------------------------------------------------- the lab, prepared once per run

@dataclass
class PreparedLab:
    """Everything about a lab that is the same for every submission of a run."""

    lab: object
    seed: int
    inputs: list          # [question][case] -> kwargs (parent's copy, never sent back)
    expected: list        # [question][case] -> reference output
    questions_json: list  # what job.json lists for the child (function, budget, encoded args)
    inputs_npz: bytes
    solution_ids: dict
    fingerprint: str      # hash of the lab, its inputs and reference outputs under this seed

    @classmethod
    def build(cls, lab, seed: int, solution_nb: dict | None = None, *, timeout_s: float | None = None):
        from coursekit.labs import spec
        timeout_s = float(timeout_s if timeout_s is not None else lab.timeout_s)
        arrays: dict[str, np.ndarray] = {}
        inputs, expected, qjson = [], [], []
        h = hashlib.sha256(f"{GRADER_VERSION}|{lab.id}|{seed}|{timeout_s}".encode())
        budget = max(1.0, timeout_s / max(1, len(lab.questions)))
        for qi, q in enumerate(lab.questions):
            q_in, q_exp, cases = [], [], []
            for ci, _case in enumerate(q.cases):
                kw = spec.case_inputs(q, ci, seed)
                exp = q.reference(**copy.deepcopy(kw))
                q_in.append(kw)
                q_exp.append(exp)
                cases.append({"args": protocol.encode_inputs(kw, arrays, prefix=f"q{qi}c{ci}_")})
                _hash_value(h, q.id, kw, exp)
            inputs.append(q_in)
            expected.append(q_exp)
            qjson.append({"function": q.function, "budget_s": budget, "cases": cases})
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        sol_ids = solution_cell_ids(solution_nb) if solution_nb else {}
        return cls(lab, seed, inputs, expected, qjson, buf.getvalue(), sol_ids, h.hexdigest())


def _hash_value(h, *items) -> None:
    for it in items:
        if isinstance(it, np.ndarray):
            h.update(f"{it.dtype.str}{it.shape}".encode())
            h.update(np.ascontiguousarray(it).tobytes())
        elif isinstance(it, dict):
            for k in sorted(it):
                h.update(k.encode())
                _hash_value(h, it[k])
        elif isinstance(it, (tuple, list)):
            h.update(f"seq{len(it)}".encode())
            for x in it:
                _hash_value(h, x)
        else:
            h.update(repr(it).encode())


# ----------------------------------------------------------------------------- scoring one submission

_HIDDEN_STATUS_TEXT = {
    "failed": "failed (hidden test: details are not shown)",
    "error": "raised {error_type} (hidden test: details are not shown)",
    "timeout": "timed out",
    "not-implemented": "not implemented",
    "not-defined": "{message}",
    "no-result": "{message}",
}


def _empty_result(prep: PreparedLab, student: str, file: str, sha: str, key: str, status: str, message: str,
                  case_status: str = "no-result", case_message: str | None = None) -> dict:
    questions = []
    for q in prep.lab.questions:
        cases = [_case_record(ci, c, 0.0, case_status, case_message or message) for ci, c in enumerate(q.cases)]
        questions.append(_question_record(q, cases, None))
    return _submission_record(prep, student, file, sha, key, status, message, questions, [], "", 0.0)


def _case_record(ci, case, score, status, message, *, detail=None, misconception=None, seconds=None) -> dict:
    visible = case.visibility == "visible"
    if visible:
        shown = message
    else:
        tmpl = _HIDDEN_STATUS_TEXT.get(status, "failed")
        et = message.split(":", 1)[0] if status == "error" else ""
        shown = tmpl.format(error_type=et, message=message) if status != "passed" else "passed"
    if misconception is not None and not visible:
        shown += f". Likely misconception [{misconception.name}]: {misconception.message}"
    return {"index": ci, "name": case.name, "visibility": case.visibility, "max_score": float(case.points),
            "score": float(score), "status": status, "passed": status == "passed",
            "message": shown, "detail": detail if detail is not None else message,
            "misconception": misconception.name if misconception is not None else None,
            "misconception_message": misconception.message if misconception is not None else None,
            "seconds": seconds}


def _question_record(q, cases, found) -> dict:
    return {"id": q.id, "function": q.function, "title": q.title or q.function, "found": found,
            "score": float(sum(c["score"] for c in cases)), "max_score": float(q.points), "cases": cases}


def _safe_texts(value):
    """``value`` with every ``str`` inside made writable (:func:`protocol.untrusted_text`)."""
    if isinstance(value, str):
        return untrusted_text(value, 1 << 20)
    if isinstance(value, dict):
        return {_safe_texts(k): _safe_texts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe_texts(v) for v in value]
    return value


def _submission_record(prep, student, file, sha, key, status, message, questions, cell_errors, stdout, wall) -> dict:
    return _safe_texts({"student": student, "file": file, "sha256": sha, "key": key, "lab": prep.lab.id,
            "status": status, "message": message,
            "score": float(sum(q["score"] for q in questions)), "max_score": float(prep.lab.points),
            "questions": questions, "cell_errors": cell_errors, "stdout_tail": stdout,
            "execution_time": round(float(wall), 3), "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def _got_from_frame(frame) -> tuple:
    kind, n = frame.meta.get("kind"), frame.meta.get("n")
    if kind not in ("array", "tuple") or n != len(frame.arrays) or (kind == "array" and n != 1):
        raise ValueError("inconsistent result frame")
    return frame.arrays[0] if kind == "array" else tuple(frame.arrays)


def score_run(prep: PreparedLab, student: str, file: str, sha: str, key: str, extraction, run: RunResult,
              max_frame: int) -> dict:
    """Turn the sandbox's frames into a scored record (every comparison happens here, in the parent)."""
    from coursekit.labs import spec
    n_cases = sum(len(q.cases) for q in prep.lab.questions)
    n_cells = len(extraction.cells)
    frames, problems = protocol.decode_frames(run.result, max_frame=max_frame, max_frames=n_cells + n_cases + 1)
    by_case, cell_errors, cells_seen, done = {}, [], set(), False
    nq = len(prep.lab.questions)
    for fr in frames:
        m = fr.meta
        if m.get("done") is True:
            done = True
        elif isinstance(m.get("cell"), int):
            if 0 <= m["cell"] < n_cells and m["cell"] not in cells_seen:   # one error per cell
                cells_seen.add(m["cell"])
                cell_errors.append({k: m.get(k, "") for k in ("label", "status", "error_type", "message", "trace")})
        elif isinstance(m.get("q"), int) and isinstance(m.get("c"), int) and 0 <= m["q"] < nq \
                and 0 <= m["c"] < len(prep.lab.questions[m["q"]].cases):
            by_case.setdefault((m["q"], m["c"]), fr)   # the first frame of a case wins
        else:
            problems.append("a result frame did not name a known case")
    exit_note = run.describe_exit()
    if not done and exit_note is None:
        exit_note = "the program ended before finishing (it exited early or closed its result channel)"
    questions = []
    for qi, q in enumerate(prep.lab.questions):
        cases = []
        for ci, case in enumerate(q.cases):
            fr = by_case.get((qi, ci))
            if fr is None:
                why = exit_note or "no result came back for this case"
                if q.id not in extraction.found:
                    why = f"no answer cell was found for `{q.function}` (tagged `q:{q.id}` or defining it)"
                cases.append(_case_record(ci, case, 0.0, "no-result", f"no result: {why}"))
                continue
            m = fr.meta
            status = m.get("status")
            secs = m.get("elapsed") if isinstance(m.get("elapsed"), (int, float)) else None
            if status == "ok":
                try:
                    got = _got_from_frame(fr)
                except ValueError as e:
                    cases.append(_case_record(ci, case, 0.0, "error", f"invalid result: {e}"))
                    continue
                v = spec.compare(q, prep.inputs[qi][ci], got, prep.expected[qi][ci], case=case)
                frac = float(v.fraction) if np.isfinite(v.fraction) else 0.0
                frac = min(max(frac, 0.0), 1.0)
                st = "passed" if v.passed else "failed"
                cases.append(_case_record(ci, case, frac * case.points, st, v.message, misconception=v.misconception,
                                          seconds=secs))
            elif status == "not-implemented":
                cases.append(_case_record(ci, case, 0.0, "not-implemented", "not implemented"))
            elif status == "not-defined":
                msg = str(m.get("message", ""))[:500]
                if q.id not in extraction.found:
                    msg += f" (no answer cell was found: tag the cell `q:{q.id}` or keep the function name)"
                cases.append(_case_record(ci, case, 0.0, "not-defined", msg))
            elif status == "timeout":
                cases.append(_case_record(ci, case, 0.0, "timeout", "timed out: " + str(m.get("message", ""))[:500]))
            else:
                et = str(m.get("error_type", "Error"))[:100]
                msg = f"{et}: {str(m.get('message', ''))[:1500]}"
                trace = str(m.get("trace", ""))[:2000]
                cases.append(_case_record(ci, case, 0.0, "error", msg, detail=msg + ("\n" + trace if trace else "")))
        questions.append(_question_record(q, cases, extraction.found.get(q.id)))
    if not run.started:
        status = "sandbox-error"
    elif run.reason == "wall-timeout":
        status = "timeout"
    elif run.reason == "output-cap":
        status = "output-limit"
    elif run.reason == "result-cap":
        status = "result-limit"
    elif not done:
        status = "crashed"
    else:
        status = _STATUS_OK
    message = exit_note or ""
    if problems:
        message = (message + "; " if message else "") + "rejected result data: " + "; ".join(problems[:3])
    stdout = run.stdout.decode("utf-8", "replace")[-4000:]
    return _submission_record(prep, student, file, sha, key, status, message, questions, cell_errors, stdout,
                              run.wall_s)


# ----------------------------------------------------------------------------- the grader

class Grader:
    """Grades submissions of one lab into ``out_dir``.

    lab_notebook: the solution notebook (its ``metadata.coursekit.lab`` names the lab); or pass
    ``lab=`` (a :class:`coursekit.labs.spec.Lab`) and optionally ``solution_nb`` (dict) directly.
    jobs: parallel sandboxes (default: all cores). seed: the input seed (default: reuse the one
    stored in ``out_dir/.state/run.json`` for this lab, else ``os.urandom``). sandbox=False is
    ``--no-sandbox`` (the output folder is then made 0700). timeout: overrides ``lab.timeout_s``
    (seconds per submission). regrade_failed: grade again the submissions whose cached record has
    a status in :data:`FAILED_STATUSES`.
    """

    def __init__(self, lab_notebook=None, out_dir=".", *, lab=None, solution_nb=None, jobs: int | None = None,
                 seed: int | None = None, sandbox: bool = True, timeout: float | None = None,
                 limits: Limits = Limits(), progress: bool = True, log=None, venv=None,
                 regrade_failed: bool = False):
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        if lab is None:
            if lab_notebook is None:
                raise ValueError("Grader: give lab_notebook or lab")
            lab, solution_nb = load_lab_notebook(lab_notebook)
        self.lab_notebook = Path(lab_notebook) if lab_notebook is not None else None
        if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
            raise ValueError(f"Grader: jobs must be an int >= 1, got {jobs!r}")
        if timeout is not None and not (0 < float(timeout) <= 3600):
            raise ValueError(f"Grader: timeout must be in (0, 3600] seconds, got {timeout!r}")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise ValueError(f"Grader: seed must be an int >= 0, got {seed!r}")
        self.lab, self.solution_nb = lab, solution_nb
        self.out = Path(out_dir)
        self.state_dir = self.out / ".state"
        self.students_dir = self.state_dir / "students"
        self.jobs = jobs or os.cpu_count() or 1
        self.timeout = float(timeout if timeout is not None else lab.timeout_s)
        self.limits, self.progress, self.isolate = limits, progress, sandbox
        self.regrade_failed = bool(regrade_failed)
        self.uids: list[int] = []
        self.unfinished: list[str] = []   # students not graded within the run's bound (a bug of ours)
        self.venv = Path(venv) if venv is not None else sandbox_venv()
        if not sandbox:   # other users' code (the sandbox uids among them) must not read the results
            self.out.mkdir(parents=True, exist_ok=True)
            os.chmod(self.out, 0o700)
        self.seed = self._resolve_seed(seed)
        self.prep = PreparedLab.build(lab, self.seed, solution_nb, timeout_s=self.timeout)

    # -- seed and state
    def _resolve_seed(self, seed):
        run_file = self.state_dir / "run.json"
        stored = None
        try:
            info = json.loads(run_file.read_text())
            if info.get("lab") == self.lab.id and isinstance(info.get("seed"), int):
                stored = info["seed"]
        except (OSError, ValueError):
            pass
        if seed is None:
            seed = stored if stored is not None else int.from_bytes(os.urandom(8), "little") >> 1
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        atomic_write(run_file, json.dumps({"lab": self.lab.id, "seed": seed}), mode=0o600, fsync=True)
        return seed

    def _state_path(self, student: str) -> Path:
        return self.students_dir / f"{safe_name(student)}.json"

    def _cached(self, student: str, key: str) -> dict | None:
        try:
            rec = json.loads(self._state_path(student).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(rec, dict) or rec.get("key") != key or rec.get("student") != student:
            return None
        if rec.get("status") in _NEVER_CACHED or (self.regrade_failed and rec.get("status") in FAILED_STATUSES):
            return None
        return rec

    def run_bound_s(self, n: int) -> float:
        """The wall-clock bound of grading ``n`` submissions: each job runs at most
        ``3 × (timeout + 17 s)`` (start retries, wall timeout, draining), the parent's parsing is
        bounded (:mod:`.notebook`), and the jobs run ``self.jobs`` at a time; plus a minute for the
        sandbox self-test. What is not graded by then gets a ``not-graded`` row."""
        per_job = 3 * (self.timeout + 2.0 + 15.0) + 10.0
        return math.ceil(n / self.jobs) * per_job + 60.0

    # -- sandbox
    def _make_sandbox(self) -> Sandbox:
        if not sandbox_ready(self.venv):
            if not self.isolate and not os.path.exists(os.path.realpath(
                    os.environ.get("COURSEKIT_SANDBOX_PYTHON") or "/usr/bin/python3.11")):
                raise SandboxUnavailable(f"no sandbox venv at {self.venv} and no /usr/bin/python3.11 to build one")
            self.log(f"coursekit: the sandbox venv {self.venv} is missing; building it now "
                     f"(once; `coursekit grade --setup-sandbox` does this ahead of time)")
            setup_sandbox(self.venv, log=self.log)
        sb = Sandbox(self.venv, limits=self.limits, isolate=self.isolate, slots=self.jobs, scratch_dir=self._base,
                     run_name=self._base.name[len(_BASE_PREFIX):])
        kind, detail = sb.cgroups
        if sb.is_root and kind is None:
            self.log(f"coursekit: no per-job cgroup ({detail}): a job's memory is bounded per process only "
                     f"(RLIMIT_AS {self.limits.address_space >> 20} MiB x up to {self.limits.nproc} processes)")
        if self.isolate:
            try:
                sb.self_test(self._base)
            except BaseException:
                sb.close()
                raise
        else:
            self.log(UNPROTECTED)
        return sb

    # -- one submission
    def _grade_one(self, sb: Sandbox, path: Path, slots: "queue.Queue[int]") -> dict:
        student = student_id(path)
        file = str(path)
        t0 = time.monotonic()
        try:
            data, read_error = read_submission(path), None
        except SubmissionError as e:
            data, read_error = None, e
        sha = hashlib.sha256(data if data is not None else b"").hexdigest()
        key = hashlib.sha256(f"{self.prep.fingerprint}|{sha}|{int(self.isolate)}".encode()).hexdigest()
        cached = self._cached(student, key) if data is not None else None
        if cached is not None:
            cached["_cached"] = True
            return cached
        if read_error is not None:
            return _empty_result(self.prep, student, file, sha, key, read_error.status, read_error.message,
                                 case_message="not run (see the message above)")
        try:
            nb = read_notebook(path, data=data)
        except SubmissionError as e:
            return _empty_result(self.prep, student, file, sha, key, e.status, e.message,
                                 case_message="not run (see the message above)")
        ex = extract_answers(nb, self.lab.questions, self.prep.solution_ids)
        del nb, data
        if not ex.cells:
            fns = ", ".join(f"`{q.function}`" for q in self.lab.questions)
            msg = (f"no answer cells found: no code cell is tagged `exercise`/`q:<question>` and none defines "
                   f"{fns}")
            return _empty_result(self.prep, student, file, sha, key, "no-answers", msg,
                                 case_message="not run: no answer cell defines this function")
        slot = slots.get()
        try:   # the slot goes back on every path, whatever fails below
            job = Path(tempfile.mkdtemp(prefix="job-", dir=self._base))
            try:
                (job / "run.py").write_bytes(self._runner_src)
                (job / "inputs.npz").write_bytes(self.prep.inputs_npz)
                (job / "job.json").write_text(json.dumps({
                    "cells": ex.cells, "questions": self.prep.questions_json,
                    "cell_budget_s": max(1.0, self.timeout / 2), "max_frame": self.limits.max_frame}))
                _share(job, sb.uid(slot))
                run = sb.run(job, timeout=self.timeout + 2.0, slot=slot)
            finally:
                shutil.rmtree(job, ignore_errors=True)
        finally:
            slots.put(slot)
        rec = score_run(self.prep, student, file, sha, key, ex, run, self.limits.max_frame)
        rec["execution_time"] = round(time.monotonic() - t0, 3)
        return rec

    # -- the run
    def grade(self, submissions) -> list[dict]:
        """Grade ``submissions`` (paths); write every output; return the records in input order.
        Returns within :meth:`run_bound_s` of the number of submissions (plus writing the reports);
        a submission not graded by then has a ``not-graded`` row and is listed in ``self.unfinished``
        (its worker thread may still be stuck: the CLI then ends the process)."""
        from . import feedback, report
        paths = discover_submissions(submissions, exclude=[self.lab_notebook] if self.lab_notebook else [])
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.isolate:
            os.chmod(self.out, 0o700)
        self.students_dir.mkdir(parents=True, exist_ok=True)
        base_parent = os.environ.get("COURSEKIT_GRADE_TMP") or tempfile.gettempdir()
        self._base, lock_fd = _new_base(base_parent)
        _remove_stale_bases(base_parent)
        self._runner_src = _RUNNER.read_bytes()
        records: dict[str, dict] = {}
        sb, pool = None, None
        bound = self.run_bound_s(len(paths))
        t_end = time.monotonic() + bound
        try:
            sb = self._make_sandbox()
            self.uids = list(sb.uids)   # the sandbox uids this run uses (empty when not root)
            slots: queue.Queue[int] = queue.Queue()
            for s in range(self.jobs):
                slots.put(s)
            bar = _progress(len(paths), self.progress, f"grading {self.lab.id}")
            pool = ThreadPoolExecutor(max_workers=self.jobs)
            futs = {pool.submit(self._grade_one_safe, sb, p, slots): p for p in paths}
            try:
                for fut in as_completed(futs, timeout=max(1.0, t_end - time.monotonic())):
                    rec = fut.result()
                    self._write_student(feedback, rec)
                    records[rec["student"]] = rec
                    if bar is not None:
                        bar.update(1)
            except FuturesTimeout:
                for fut, p in futs.items():
                    if student_id(p) in records:
                        continue
                    if fut.done() and not fut.cancelled():
                        rec = fut.result()
                        self._write_student(feedback, rec)
                        records[rec["student"]] = rec
                    else:
                        fut.cancel()
                        self.unfinished.append(student_id(p))
                        records[student_id(p)] = _empty_result(
                            self.prep, student_id(p), str(p), "", "", "not-graded",
                            f"not graded within the run's bound of {bound:.0f} s (a fault of the grader's, "
                            f"not of this submission); it will be graded on the next run")
                self.log(f"coursekit: {len(self.unfinished)} submissions were not graded within {bound:.0f} s")
            if bar is not None:
                bar.close()
        finally:
            if pool is not None:
                pool.shutdown(wait=not self.unfinished, cancel_futures=True)
            if sb is not None:
                sb.close()
            release_mounts_under(self._base)
            shutil.rmtree(self._base, ignore_errors=True)
            os.close(lock_fd)
        ordered = [records[student_id(p)] for p in paths]
        report.write_grades_csv(self.out / "grades.csv", self.lab, ordered)
        report.write_report(self.out / "report.html", self.lab, ordered)
        return ordered

    def _write_student(self, feedback, rec: dict) -> None:
        """Feedback first, then the cached state: a record whose outputs failed to write is never
        cached (it is regraded on the next run) and never stops the run."""
        cached = rec.pop("_cached", False)
        try:
            feedback.write_student(self.out, self.lab, rec)
            if not cached and rec.get("status") not in _NEVER_CACHED:
                atomic_write(self._state_path(rec["student"]), json.dumps(rec), mode=0o600, fsync=True)
        except Exception as e:  # noqa: BLE001 - one student's record never stops the run
            self._state_path(rec["student"]).unlink(missing_ok=True)
            rec["message"] = untrusted_text(f"{rec.get('message') or ''}; the grader could not write this "
                                            f"student's feedback ({type(e).__name__}: {e}); it will be "
                                            f"regraded on the next run", 4000)
            self.log(f"coursekit: could not write the outputs of {untrusted_text(rec['student'], 200)!r}: "
                     f"{untrusted_text(e, 500)}")

    def _grade_one_safe(self, sb, path, slots) -> dict:
        """:meth:`_grade_one`, but a bug of ours on one submission is recorded, never fatal to the run."""
        try:
            return self._grade_one(sb, path, slots)
        except Exception as e:  # noqa: BLE001 - every submission must get a row
            student = student_id(path)
            return _empty_result(self.prep, student, str(path), "", "", "grader-error",
                                 f"the grader failed on this submission ({type(e).__name__}: {e}); "
                                 f"it will be regraded on the next run")


def _new_base(parent) -> tuple[Path, int]:
    """A fresh job folder for this run, with its lock file held (``flock``) until the run ends."""
    base = Path(tempfile.mkdtemp(prefix=_BASE_PREFIX, dir=parent))
    fd = os.open(base / _LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.chmod(base, 0o711)
    return base, fd


def _is_live(base: Path) -> bool:
    """True unless ``base`` is a run folder whose lock is free (its run ended or was killed).
    A folder without a lock (a run between ``mkdtemp`` and ``flock``) counts as live for an hour."""
    try:
        fd = os.open(base / _LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        try:
            return time.time() - os.lstat(base).st_mtime < 3600
        except OSError:
            return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True   # held: a live run, in any pid namespace that shares this folder
    finally:
        os.close(fd)
    return False


def _remove_stale_bases(parent) -> None:
    """Delete the job folders (and cgroups) of grading runs that ended without cleaning up: decided
    by the run's lock, never by a pid (two runs may live in different pid namespaces)."""
    parent = Path(parent)
    for p in parent.glob(_BASE_PREFIX + "*"):
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or _is_live(p):
            continue
        release_mounts_under(p)
        shutil.rmtree(p, ignore_errors=True)
    remove_stale_cgroups(lambda name: (parent / (_BASE_PREFIX + name)).is_dir())


def _progress(total, enabled, desc):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="nb", file=sys.stderr, dynamic_ncols=True)


def grade(lab_notebook, submissions, out_dir, **kw) -> list[dict]:
    """Convenience: ``Grader(lab_notebook, out_dir, **kw).grade(submissions)``."""
    return Grader(lab_notebook, out_dir, **kw).grade(submissions)
