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
import hashlib
import io
import json
import os
import queue
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write, safe_name
from . import protocol
from .notebook import MAX_NOTEBOOK_BYTES, SubmissionError, extract_answers, read_notebook, solution_cell_ids
from .sandbox import (UNPROTECTED, Limits, RunResult, Sandbox, SandboxUnavailable, _share, sandbox_ready,
                      sandbox_venv, setup_sandbox)

__all__ = ["GRADER_VERSION", "Grader", "PreparedLab", "discover_submissions", "student_id", "atomic_write",
           "safe_name", "load_lab_notebook", "load_lab_spec", "grade"]

GRADER_VERSION = "1"
_RUNNER = Path(__file__).with_name("_runner.py")
_STATUS_OK = "ok"


# ----------------------------------------------------------------------------- small helpers

def student_id(path: str | os.PathLike) -> str:
    return Path(path).stem


def discover_submissions(paths, *, exclude=()) -> list[Path]:
    """Files given directly, plus the ``*.ipynb`` directly inside each folder given, sorted;
    ``ValueError`` for a missing path or two submissions with the same student id (file stem)."""
    excl = {os.path.realpath(p) for p in exclude}
    found = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found += sorted(q for q in p.glob("*.ipynb") if q.is_file())
        elif p.is_file():
            found.append(p)
        else:
            raise ValueError(f"grade: submission {str(p)!r} does not exist")
    found = [p for p in found if os.path.realpath(p) not in excl]
    seen: dict[str, Path] = {}
    for p in found:
        sid = student_id(p)
        if sid in seen and os.path.realpath(seen[sid]) != os.path.realpath(p):
            raise ValueError(f"grade: two submissions have the student id {sid!r}: {seen[sid]} and {p}")
        seen[sid] = p
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


def _submission_record(prep, student, file, sha, key, status, message, questions, cell_errors, stdout, wall) -> dict:
    return {"student": student, "file": file, "sha256": sha, "key": key, "lab": prep.lab.id,
            "status": status, "message": message,
            "score": float(sum(q["score"] for q in questions)), "max_score": float(prep.lab.points),
            "questions": questions, "cell_errors": cell_errors, "stdout_tail": stdout,
            "execution_time": round(float(wall), 3), "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _got_from_frame(frame) -> tuple:
    kind, n = frame.meta.get("kind"), frame.meta.get("n")
    if kind not in ("array", "tuple") or n != len(frame.arrays) or (kind == "array" and n != 1):
        raise ValueError("inconsistent result frame")
    return frame.arrays[0] if kind == "array" else tuple(frame.arrays)


def score_run(prep: PreparedLab, student: str, file: str, sha: str, key: str, extraction, run: RunResult,
              max_frame: int) -> dict:
    """Turn the sandbox's frames into a scored record (every comparison happens here, in the parent)."""
    from coursekit.labs import spec
    frames, problems = protocol.decode_frames(run.result, max_frame=max_frame)
    by_case, cell_errors, done = {}, [], False
    nq = len(prep.lab.questions)
    for fr in frames:
        m = fr.meta
        if m.get("done") is True:
            done = True
        elif isinstance(m.get("cell"), int):
            cell_errors.append({k: str(m.get(k, ""))[:2000] for k in ("label", "status", "error_type", "message", "trace")})
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
    if run.reason == "wall-timeout":
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
    ``--no-sandbox``. timeout: overrides ``lab.timeout_s`` (seconds per submission).
    """

    def __init__(self, lab_notebook=None, out_dir=".", *, lab=None, solution_nb=None, jobs: int | None = None,
                 seed: int | None = None, sandbox: bool = True, timeout: float | None = None,
                 limits: Limits = Limits(), progress: bool = True, log=None, venv=None):
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
        self.jobs = jobs or os.cpu_count() or 1
        self.timeout = float(timeout if timeout is not None else lab.timeout_s)
        self.limits, self.progress, self.isolate = limits, progress, sandbox
        self.uids: list[int] = []
        self.venv = Path(venv) if venv is not None else sandbox_venv()
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
        return self.state_dir / f"{safe_name(student)}.json"

    def _cached(self, student: str, key: str) -> dict | None:
        try:
            rec = json.loads(self._state_path(student).read_text())
        except (OSError, ValueError):
            return None
        return rec if rec.get("key") == key and rec.get("student") == student else None

    # -- sandbox
    def _make_sandbox(self) -> Sandbox:
        if not sandbox_ready(self.venv):
            if not self.isolate and not os.path.exists(os.path.realpath(
                    os.environ.get("COURSEKIT_SANDBOX_PYTHON") or "/usr/bin/python3.11")):
                raise SandboxUnavailable(f"no sandbox venv at {self.venv} and no /usr/bin/python3.11 to build one")
            self.log(f"coursekit: the sandbox venv {self.venv} is missing; building it now "
                     f"(once; `coursekit grade --setup-sandbox` does this ahead of time)")
            setup_sandbox(self.venv, log=self.log)
        sb = Sandbox(self.venv, limits=self.limits, isolate=self.isolate, slots=self.jobs)
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
        t0 = time.monotonic()
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_NOTEBOOK_BYTES + 1)
        except OSError as e:
            data = None
            read_error = e.strerror
        sha = hashlib.sha256(data if data is not None else b"").hexdigest()
        key = hashlib.sha256(f"{self.prep.fingerprint}|{sha}|{int(self.isolate)}".encode()).hexdigest()
        cached = self._cached(student, key) if data is not None else None
        if cached is not None:
            cached["_cached"] = True
            return cached
        if data is None:
            return _empty_result(self.prep, student, str(path), sha, key, "unreadable",
                                 f"the file could not be read ({read_error})",
                                 case_message="not run (see the message above)")
        try:
            nb = read_notebook(path, data=data)
        except SubmissionError as e:
            return _empty_result(self.prep, student, str(path), sha, key, e.status, e.message,
                                 case_message="not run (see the message above)")
        ex = extract_answers(nb, self.lab.questions, self.prep.solution_ids)
        if not ex.cells:
            fns = ", ".join(f"`{q.function}`" for q in self.lab.questions)
            msg = (f"no answer cells found: no code cell is tagged `exercise`/`q:<question>` and none defines "
                   f"{fns}")
            return _empty_result(self.prep, student, str(path), sha, key, "no-answers", msg,
                                 case_message="not run: no answer cell defines this function")
        slot = slots.get()
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
            slots.put(slot)
            shutil.rmtree(job, ignore_errors=True)
        rec = score_run(self.prep, student, str(path), sha, key, ex, run, self.limits.max_frame)
        rec["execution_time"] = round(time.monotonic() - t0, 3)
        return rec

    # -- the run
    def grade(self, submissions) -> list[dict]:
        """Grade ``submissions`` (paths); write every output; return the records in input order."""
        from . import feedback, report
        paths = discover_submissions(submissions, exclude=[self.lab_notebook] if self.lab_notebook else [])
        self.out.mkdir(parents=True, exist_ok=True)
        base_parent = os.environ.get("COURSEKIT_GRADE_TMP") or tempfile.gettempdir()
        _remove_stale_bases(base_parent)
        self._base = Path(tempfile.mkdtemp(prefix=f"coursekit-grade-{os.getpid()}-", dir=base_parent))
        os.chmod(self._base, 0o711)
        self._runner_src = _RUNNER.read_bytes()
        records: dict[str, dict] = {}
        sb = None
        try:
            sb = self._make_sandbox()
            slots: queue.Queue[int] = queue.Queue()
            for s in range(self.jobs):
                slots.put(s)
            bar = _progress(len(paths), self.progress, f"grading {self.lab.id}")
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                futs = {pool.submit(self._grade_one_safe, sb, p, slots): p for p in paths}
                for fut in as_completed(futs):
                    rec = fut.result()
                    cached = rec.pop("_cached", False)
                    if not cached:
                        atomic_write(self._state_path(rec["student"]), json.dumps(rec), mode=0o600, fsync=True)
                    feedback.write_student(self.out, self.lab, rec)
                    records[rec["student"]] = rec
                    if bar is not None:
                        bar.update(1)
            if bar is not None:
                bar.close()
        finally:
            if sb is not None:
                self.uids = list(sb._uids)   # the sandbox uids this run used (empty when not root)
                sb.close()
            shutil.rmtree(self._base, ignore_errors=True)
        ordered = [records[student_id(p)] for p in paths]
        report.write_grades_csv(self.out / "grades.csv", self.lab, ordered)
        report.write_report(self.out / "report.html", self.lab, ordered)
        return ordered

    def _grade_one_safe(self, sb, path, slots) -> dict:
        """:meth:`_grade_one`, but a bug of ours on one submission is recorded, never fatal to the run."""
        try:
            return self._grade_one(sb, path, slots)
        except Exception as e:  # noqa: BLE001 - every submission must get a row
            student = student_id(path)
            return _empty_result(self.prep, student, str(path), "", "", "grader-error",
                                 f"the grader failed on this submission ({type(e).__name__}: {e}); "
                                 f"it will be regraded on the next run")


def _remove_stale_bases(parent) -> None:
    """Delete the job folders of grading runs that were killed (their pid, in the name, is gone)."""
    if not os.path.isdir("/proc/self"):
        return
    for p in Path(parent).glob("coursekit-grade-*-*"):
        pid = p.name.split("-")[2]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}") and p.is_dir() and p.owner() == _whoami():
            shutil.rmtree(p, ignore_errors=True)


def _whoami() -> str:
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


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
