"""Attack submissions against the sandboxed grader, all graded in ONE run of the fixture lab.

Each attack (tests/grade_fixtures/attacks.py) replaces the ``relu`` answer; it must score 0 on
``relu`` while the grader survives, the control rows (the solution: full marks; the untouched
student notebook: 0, "not implemented") stay intact, and nothing leaks out of the sandbox.
Runs in CI (which installs bubblewrap and runs as root); skips only where bwrap is missing and
CI is not set.
"""
import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.sandbox

if shutil.which("bwrap") is None and not os.environ.get("CI"):
    pytest.skip("bubblewrap is not installed (CI installs it and runs these tests)", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent / "grade_fixtures"))
import attacks  # noqa: E402
import fixture_lab as FX  # noqa: E402

from coursekit.grade import sandbox  # noqa: E402
from coursekit.grade.engine import Grader  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONTROLS = ("good", "blank")


class _Listener:
    """A TCP listener on 127.0.0.1 that records every connection it accepts."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self._stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._stop:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(addr)
            conn.close()

    def close(self):
        self._stop = True
        self.thread.join()
        self.sock.close()


def _pids_of(uids):
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid in uids:
                    pids.append(int(d))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("adversarial")
    out, subs, markers = root / "out", root / "subs", root / "markers"
    subs.mkdir()
    markers.mkdir()
    os.chmod(markers, 0o777)   # so only the sandbox, not file permissions, stops the writes
    lab_nb = root / "labfx.ipynb"
    FX.write_notebook(lab_nb, FX.notebook())
    FX.write_notebook(subs / "good.ipynb", FX.notebook())
    FX.write_notebook(subs / "blank.ipynb", FX.notebook(FX.STUDENT))
    listener = _Listener()
    params = {"out": str(out), "repo": str(REPO), "port": listener.port, "grader_pid": os.getpid(),
              "secrets": [str(lab_nb), str(REPO / "coursekit" / "labs" / "spec.py"),
                          str(out / ".state" / "run.json"), str(Path(FX.__file__))],
              "pickle_marker": str(markers / "pickle"), "host_marker": str(markers / "host"),
              "daemon_marker": str(markers / "daemon")}
    for name in attacks.ATTACKS:
        FX.write_notebook(subs / f"{name}.ipynb", FX.notebook({"relu": attacks.source(name, params)}))
    leftovers = []
    real_close = sandbox.Sandbox.close

    def close_and_check(self):  # before the uids are released (a concurrent run may take them next)
        leftovers.extend(_pids_of(set(self.uids)))
        real_close(self)
    t0 = time.perf_counter()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sandbox.Sandbox, "close", close_and_check)
            grader = Grader(lab_nb, out, lab=FX.LAB, solution_nb=FX.notebook(), jobs=2, progress=False,
                            log=lambda m: None)
            records = grader.grade([subs])
        elapsed = time.perf_counter() - t0
        time.sleep(2.0)            # the daemon would have written its marker by now
    finally:
        listener.close()
    return {"records": {r["student"]: r for r in records}, "out": out, "markers": markers,
            "listener": listener, "elapsed": elapsed, "lab_nb": lab_nb,
            "uids": grader.uids, "leftovers": leftovers}


def _q(rec, fn):
    return next(q for q in rec["questions"] if q["function"] == fn)


def test_every_submission_has_one_row(run):
    lines = (run["out"] / "grades.csv").read_text().splitlines()
    assert lines[0] == "student,labfx.relu,labfx.softmax,labfx.affine_backward,total,max,status"
    students = [ln.split(",")[0] for ln in lines[1:]]
    assert sorted(students) == sorted([*CONTROLS, *attacks.ATTACKS])
    assert run["elapsed"] < 60, run["elapsed"]


def test_controls_intact(run):
    good, blank = run["records"]["good"], run["records"]["blank"]
    assert (good["score"], good["status"]) == (FX.LAB.points, "ok")
    assert blank["score"] == 0 and blank["status"] == "ok"
    assert all(c["status"] == "not-implemented" for q in blank["questions"] for c in q["cases"])
    rows = {ln.split(",")[0]: ln for ln in (run["out"] / "grades.csv").read_text().splitlines()[1:]}
    assert rows["good"] == "good,3,2,2,7,7,ok"
    assert rows["blank"] == "blank,0,0,0,0,7,ok"
    assert "**7 / 7** points" in (run["out"] / "feedback" / "good.md").read_text()
    assert "not implemented" in (run["out"] / "feedback" / "blank.md").read_text()
    gs = json.loads((run["out"] / "gradescope" / "good" / "results.json").read_text())
    assert gs["score"] == 7.0 and all(t["status"] == "passed" for t in gs["tests"])
    state = json.loads((run["out"] / ".state" / "students" / "good.json").read_text())
    assert state["score"] == 7.0


@pytest.mark.parametrize("name", sorted(attacks.ATTACKS))
def test_attack_scores_zero_on_relu(run, name):
    rec = run["records"][name]
    relu = _q(rec, "relu")
    assert relu["score"] == 0.0, (name, relu)
    assert not any(c["passed"] for c in relu["cases"])


def test_leaks_and_side_effects_blocked(run):
    m = run["markers"]
    assert not (m / "pickle").exists(), "the pickle payload ran in the grader"
    assert not (m / "host").exists(), "the job wrote the host's filesystem"
    assert not (m / "daemon").exists(), "a daemon outlived its sandbox"
    assert run["listener"].accepted == [], "the sandbox reached a host TCP listener"
    assert run["leftovers"] == [], "sandbox processes were still running after the run"
    if os.geteuid() == 0:
        assert len(set(run["uids"])) == 2 and min(run["uids"]) >= 60000   # one non-root uid per worker
    assert not (run["out"] / "gradescope" / "forged-exit" / "results.json").read_text().count('"score": 7.0')


@pytest.mark.parametrize("name, status, expect", [
    ("fork-bomb", {"timeout", "crashed", "ok"}, "relu"),
    ("memory-bomb", {"ok"}, "MemoryError"),
    ("infinite-loop", {"ok"}, "timed out"),
    ("huge-output", {"output-limit"}, "printed"),
    ("forged-exit", {"crashed"}, "exited"),
    ("pickle-payload", {"ok"}, "rejected"),
    ("forge-frames", {"ok", "crashed"}, "rejected"),
])
def test_attack_outcomes_are_explained(run, name, status, expect):
    rec = run["records"][name]
    assert rec["status"] in status, rec["status"]
    text = json.dumps(rec)
    assert expect in text, (name, rec["message"])


def test_containable_attacks_keep_other_questions(run):
    """Attacks confined to relu's call leave softmax and affine_backward fully graded."""
    for name in ("read-solution", "patch-comparison", "overwrite-outputs", "infinite-loop", "network",
                 "kill-parent", "write-outside-tmp", "memory-bomb", "pickle-payload", "daemon"):
        rec = run["records"][name]
        assert rec["score"] == 4.0, (name, rec["status"], rec["message"])


def test_hidden_cases_do_not_leak_details(run):
    fb = (run["out"] / "feedback" / "patch-comparison.md").read_text()
    hidden = [ln for ln in fb.splitlines() if "hidden test" in ln and "relu" not in ln and "❌" in ln]
    assert hidden and all("details are not shown" in ln for ln in hidden)
    assert "max abs error" not in "\n".join(hidden)
