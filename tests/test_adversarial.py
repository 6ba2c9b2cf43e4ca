"""Attack submissions against the sandboxed grader, all graded in ONE run of the fixture lab.

Each attack (tests/grade_fixtures/attacks.py) replaces the ``relu`` answer; it must score 0 on
``relu`` while the grader survives, the control rows (the solution: full marks; the untouched
student notebook: 0, "not implemented") stay intact, and nothing leaks out of the sandbox.
Runs in CI (which installs bubblewrap and runs as root); skips only where bwrap is missing and
CI is not set.
"""
import csv
import json
import os
import shutil
import socket
import stat
import subprocess
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


# ============================================================================= round two (issue 10)
# One run of the fixture lab with the round-two attacks on the grader *parent*; each test below
# names the item of the issue it reproduces and asserts what must hold instead.

R2_RELU = {
    # item 1: an exception message with a lone surrogate, HTML and newlines
    "surrogate": "import numpy as np\ndef relu(x):\n    raise ValueError('\\ud800 <img src=x onerror=alert(1)>\\n# 20 / 20')\n",
    # item 4: flood the result channel with well-formed cell-error frames, then answer correctly
    "frame-flood": """import numpy as np, io, json, os, struct, sys
buf = io.BytesIO()
np.savez(buf, meta=np.array(json.dumps({"cell": 0, "label": "x" * 3000, "status": "error", "error_type": "E" * 500,
                                        "message": "m" * 3000, "trace": "t", "junk": "j" * 1000})))
frame = b"CKR1" + struct.pack("<Q", len(buf.getvalue())) + buf.getvalue()
for _ in range(5000):
    os.write(int(sys.argv[2]), frame)
def relu(x):
    return np.maximum(x, 0)
""",
    # item 7: print bwrap's start-failure message, ignore SIGALRM, sleep past the limit, exit 1
    "fake-start-failure": """import numpy as np, os, signal, sys, time
print("bwrap: Creating new namespace failed: Resource temporarily unavailable", flush=True)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
time.sleep(60)
os._exit(1)
def relu(x):
    return np.maximum(x, 0)
""",
}


@pytest.fixture(scope="module")
def round2(tmp_path_factory):
    root = tmp_path_factory.mktemp("round2")
    out, subs = root / "out", root / "subs"
    subs.mkdir()
    lab_nb = root / "labfx.ipynb"
    FX.write_notebook(lab_nb, FX.notebook())
    for name, src in R2_RELU.items():
        FX.write_notebook(subs / f"{name}.ipynb", FX.notebook({"relu": src}))
    # item 1: a file name that is not UTF-8 (what a Latin-1 zip gives), a full-marks submission
    FX.write_notebook(os.fsdecode(bytes(subs) + b"/caf\xe9.ipynb"), FX.notebook())
    # item 6: a victim with a non-ASCII name, an attacker named what safe_name makes of it, and "run"
    from coursekit._io import safe_name
    FX.write_notebook(subs / "X Ÿ.ipynb", FX.notebook())
    FX.write_notebook(subs / f"{safe_name('X Ÿ')}.ipynb", FX.notebook(FX.STUDENT))
    FX.write_notebook(subs / "X_Y-1a2b3c4d.ipynb", FX.notebook(FX.STUDENT))
    FX.write_notebook(subs / "run.ipynb", FX.notebook(FX.STUDENT))
    # item 9: a symlink to the solution, one to /etc/shadow, a FIFO
    os.symlink(lab_nb, subs / "link-solution.ipynb")
    os.symlink("/etc/shadow", subs / "link-shadow.ipynb")
    os.mkfifo(subs / "fifo.ipynb")
    runs = []
    real_once = sandbox.Sandbox._run_once

    def counting(self, job, **kw):
        res = real_once(self, job, **kw)
        if kw.get("script", "run.py") == "run.py":
            runs.append(res)
        return res
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sandbox.Sandbox, "_run_once", counting)
        t0 = time.perf_counter()
        grader = Grader(lab_nb, out, lab=FX.LAB, solution_nb=FX.notebook(), jobs=2, timeout=4.0, progress=False,
                        log=lambda m: None)
        records = grader.grade([subs])
        elapsed = time.perf_counter() - t0
        seed = grader.seed
    return {"records": {r["student"]: r for r in records}, "out": out, "subs": subs, "lab_nb": lab_nb,
            "elapsed": elapsed, "runs": runs, "seed": seed, "grader": grader}


def test_item01_hostile_text_and_names_never_abort_the_run(round2):
    recs, out = round2["records"], round2["out"]
    assert (out / "grades.csv").exists() and (out / "report.html").exists()
    bad = recs["surrogate"]
    text = json.dumps(bad, ensure_ascii=False)
    text.encode("utf-8")                                   # strict: nothing unencodable reached the record
    assert "\\ud800" in text                               # escaped, not dropped
    latin = recs["caf\\xe9/"]                               # the bytes, escaped; "/" marks a non-UTF-8 name
    assert latin["score"] == FX.LAB.points and latin["status"] == "ok"
    from coursekit._io import safe_name
    for student in ("surrogate", "caf\\xe9/"):
        assert (out / ".state" / "students" / f"{safe_name(student)}.json").exists()   # written, then cached
    again = Grader(round2["lab_nb"], out, lab=FX.LAB, solution_nb=FX.notebook(), jobs=2, timeout=4.0,
                   progress=False, log=lambda m: None).grade([round2["subs"]])
    assert {r["student"]: r["score"] for r in again} == {s: r["score"] for s, r in recs.items()}


def test_item04_result_channel_is_bounded_by_meaning(round2):
    rec = round2["records"]["frame-flood"]
    assert len(rec["cell_errors"]) <= 3                    # at most one per answer cell of the lab
    assert all(len(e["message"]) <= 2000 and len(e["label"]) <= 200 and len(e["error_type"]) <= 100
               for e in rec["cell_errors"])
    assert "more result frames" in rec["message"]
    assert len(json.dumps(rec)) < 64 << 10                 # the student's whole record stays small
    fb = round2["out"] / "feedback" / "frame-flood.md"
    assert fb.stat().st_size < 64 << 10


def test_item06_output_names_cannot_collide(round2):
    from coursekit._io import safe_name
    recs, out = round2["records"], round2["out"]
    victim, attacker = "X Ÿ", safe_name("X Ÿ")
    assert safe_name(attacker) != safe_name(victim)
    assert recs[victim]["score"] == FX.LAB.points and recs[attacker]["score"] == 0
    state = json.loads((out / ".state" / "students" / f"{safe_name(victim)}.json").read_text())
    assert state["student"] == victim and state["score"] == FX.LAB.points
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}
    assert rows[victim]["total"] == "7" and rows[attacker]["total"] == "0"
    # a student called "run" does not touch the run's own state: the seed survives, nothing is regraded
    assert json.loads((out / ".state" / "run.json").read_text())["seed"] == round2["seed"]
    assert recs["run"]["score"] == 0
    g = Grader(round2["lab_nb"], out, lab=FX.LAB, solution_nb=FX.notebook(), progress=False, log=lambda m: None)
    assert g.seed == round2["seed"]


def test_item07_retry_only_on_a_failed_start(round2):
    rec = round2["records"]["fake-start-failure"]
    fake = [r for r in round2["runs"] if b"Creating new namespace failed" in r.stdout]
    assert len(fake) == 1, "a job that started was retried because of what it printed"
    assert fake[0].started and rec["status"] == "timeout"
    assert fake[0].wall_s < 4.0 + 2.0 + 3.0


def test_item09_only_regular_files_are_graded(round2):
    recs = round2["records"]
    for name in ("link-solution", "link-shadow", "fifo"):
        rec = recs[name]
        assert rec["status"] == "not-a-regular-file" and rec["score"] == 0, (name, rec["status"])
        assert "regular file" in rec["message"]
    assert round2["elapsed"] < 90                          # the FIFO did not block the run


def test_item12_failed_records_regraded_on_request(round2):
    out, lab_nb, subs = round2["out"], round2["lab_nb"], round2["subs"]
    assert round2["records"]["fake-start-failure"]["status"] == "timeout"
    with pytest.MonkeyPatch.context() as mp:
        runs = FX.count_jobs(mp, sandbox)
        sub = [subs / "fake-start-failure.ipynb", subs / "good-copy.ipynb"]
        FX.write_notebook(sub[1], FX.notebook())
        Grader(lab_nb, out, lab=FX.LAB, solution_nb=FX.notebook(), timeout=4.0, progress=False,
               log=lambda m: None).grade(sub)
        assert len(runs) == 1                              # the new file only: the timeout is cached
        runs.clear()
        recs = Grader(lab_nb, out, lab=FX.LAB, solution_nb=FX.notebook(), timeout=4.0, progress=False,
                      log=lambda m: None, regrade_failed=True).grade(sub)
        assert len(runs) == 1 and recs[0]["status"] == "timeout"   # the timeout only, graded again
        sub[1].unlink()


# ----------------------------------------------------------------------------- item 3: memory per job

_FORK_JOB = """
import os, select, signal, sys, time
os.write(int(sys.argv[2]), b"CKS1")
import numpy as np
r, w = os.pipe()
kids = []
for k in range(4):
    pid = os.fork()
    if pid == 0:
        a = np.ones(1 << 25)          # 256 MiB, touched
        os.write(w, b"x")
        time.sleep(60)                # hold it while the others try
        os._exit(0)
    kids.append(pid)
os.close(w)
held, t_end = 0, time.monotonic() + 20
while held < 4 and time.monotonic() < t_end:
    if select.select([r], [], [], 0.5)[0]:
        chunk = os.read(r, 8)
        if not chunk:
            break
        held += len(chunk)
    alive = [k for k in kids if os.waitpid(k, os.WNOHANG) == (0, 0)]
    if len(alive) == held:            # every child still alive holds its memory: nothing more to come
        break
    kids = alive
print("held", held, flush=True)
for k in kids:
    try:
        os.kill(k, signal.SIGKILL)
    except OSError:
        pass
n = 0
try:
    while n < 100000:
        open(f"/tmp/f{n}", "w").close()
        n += 1
except OSError:
    pass
print("files", n, flush=True)
"""


@pytest.fixture
def base():
    """A job base folder the sandbox uids can traverse (pytest's tmp_path is under a 0700 folder)."""
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="ck-test-"))
    os.chmod(d, 0o711)
    yield d
    sandbox.release_mounts_under(d)
    shutil.rmtree(d, ignore_errors=True)


def _job(base, sb, src):
    job = base / "job"
    job.mkdir()
    (job / "run.py").write_text(src)
    sandbox._share(job, sb.uid(0))
    return job


def test_item03_memory_is_bounded_per_job_and_inodes_capped(base):
    """Four children touching 256 MiB each under a job memory of 640 MiB (the default is 2.3 GiB;
    smaller here because first-touching GiBs takes ~20 s on a loaded VM): the job's cgroup never
    lets them hold it together, where RLIMIT_AS (2 GiB per process) would; the job's /tmp takes
    no more files than Limits.tmp_inodes."""
    limits = sandbox.Limits(job_memory=640 << 20)
    sb = sandbox.Sandbox(slots=1, limits=limits, scratch_dir=base, run_name=f"t3-{os.getpid()}")
    try:
        kind, detail = sb.cgroups
        if kind is None:
            pytest.skip(f"no per-job cgroup on this machine: {detail}")
        res = sb.run(_job(base, sb, _FORK_JOB), timeout=60, slot=0)
    finally:
        sb.close()
    out = res.stdout.decode()
    assert "held" in out, (res.returncode, res.reason, res.started, res.memory_killed, out)
    held = int(out.split("held ")[1].split()[0])
    assert held <= 2, out                       # 4 × 256 MiB never coexisted
    assert res.memory_killed and "memory limit" in res.describe_exit()
    if sb.inode_cap:
        files = int(out.split("files ")[1].split()[0])
        assert files < sandbox.Limits().tmp_inodes, out
    assert not [ln for ln in open("/proc/self/mountinfo") if str(base) in ln]   # job tmpfs released


def test_item03_without_cgroups_the_grader_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "cgroup_support", lambda: (None, "no controllers here"))
    FX.write_notebook(tmp_path / "good.ipynb", FX.notebook())
    logs = []
    recs = Grader(None, tmp_path / "o", lab=FX.LAB, solution_nb=FX.notebook(), jobs=1, progress=False,
                  log=logs.append).grade([tmp_path / "good.ipynb"])
    assert recs[0]["score"] == FX.LAB.points
    if os.geteuid() == 0:
        assert any("no per-job cgroup" in m and "per process only" in m for m in logs), logs


def test_item07_a_start_that_failed_is_retried(base):
    """No handshake (the sandbox failed before the runner started): retried, a bounded number of times."""
    sb = sandbox.Sandbox(slots=1, scratch_dir=base)
    calls = []
    real = sb._run_once

    def counting(job, **kw):
        calls.append(job)
        return real(job, **kw)
    sb._run_once = counting
    try:
        res = sb.run(_job(base, sb, "import sys\nsys.exit(1)\n"), timeout=10, slot=0)
    finally:
        sb.close()
    assert res.returncode == 1 and not res.stdout   # the script ran, in the sandbox, but sent no handshake
    assert not res.started and len(calls) == sandbox._START_TRIES
    assert "failed to start" in res.describe_exit()


# ----------------------------------------------------------------------------- item 2: no hang, no lost folder

def test_item02_a_live_runs_folder_is_never_removed(tmp_path):
    """Liveness is the run's lock, not a pid: a folder named after a dead pid whose lock is held
    by a live process (another pid namespace, say) stays; released, it goes."""
    from coursekit.grade import engine
    live = tmp_path / "coursekit-grade-999999999-abc"      # no such pid here
    live.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               f"fd = os.open({str(live / '.run.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        engine._remove_stale_bases(tmp_path)
        assert live.is_dir()
    finally:
        holder.kill()
        holder.wait()
    engine._remove_stale_bases(tmp_path)
    assert not live.exists()


def test_item02_slot_returned_on_every_path_and_the_run_is_bounded(tmp_path, monkeypatch):
    """mkdtemp fails for two jobs (a removed folder): with ONE worker the rest still run; a job that
    never returns gets a 'not-graded' row within the run's stated bound."""
    from coursekit.grade import engine
    for k in range(4):
        FX.write_notebook(tmp_path / f"s{k}.ipynb", FX.notebook())
    real = engine.tempfile.mkdtemp
    fails = []

    def flaky(*a, **kw):
        if kw.get("prefix") == "job-" and len(fails) < 2:
            fails.append(1)
            raise FileNotFoundError(2, "No such file or directory")
        return real(*a, **kw)
    monkeypatch.setattr(engine.tempfile, "mkdtemp", flaky)
    done = []
    t = threading.Thread(target=lambda: done.append(Grader(
        None, tmp_path / "o", lab=FX.LAB, solution_nb=FX.notebook(), jobs=1, progress=False,
        log=lambda m: None).grade(sorted(tmp_path.glob("s*.ipynb")))), daemon=True)
    t.start()
    t.join(120)
    assert done, "the run hung"
    statuses = sorted(r["status"] for r in done[0])
    assert statuses == ["grader-error", "grader-error", "ok", "ok"]
    assert len(list((tmp_path / "o" / ".state" / "students").glob("*.json"))) == 2   # errors are never cached

    monkeypatch.setattr(engine.tempfile, "mkdtemp", real)
    stuck = threading.Event()
    real_one = Grader._grade_one

    def hang_s0(self, sb, path, slots):
        if path.name == "s0.ipynb":
            stuck.wait(60)
        return real_one(self, sb, path, slots)
    monkeypatch.setattr(Grader, "_grade_one", hang_s0)
    monkeypatch.setattr(Grader, "run_bound_s", lambda self, n: 20.0)
    t0 = time.perf_counter()
    g = Grader(None, tmp_path / "o2", lab=FX.LAB, solution_nb=FX.notebook(), jobs=2, progress=False,
               log=lambda m: None)
    recs = {r["student"]: r for r in g.grade(sorted(tmp_path.glob("s*.ipynb")))}
    stuck.set()
    assert time.perf_counter() - t0 < 40
    assert recs["s0"]["status"] == "not-graded" and g.unfinished == ["s0"]
    assert all(recs[f"s{k}"]["status"] == "ok" for k in (1, 2, 3))
    assert not (tmp_path / "o2" / ".state" / "students" / "s0.json").exists()


def test_item01_a_failed_write_is_never_cached(tmp_path, monkeypatch):
    from coursekit.grade import feedback
    for k in range(2):
        FX.write_notebook(tmp_path / f"s{k}.ipynb", FX.notebook())
    real = feedback.write_student

    def failing(out, lab, rec):
        if rec["student"] == "s0":
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real(out, lab, rec)
    monkeypatch.setattr(feedback, "write_student", failing)
    recs = Grader(None, tmp_path / "o", lab=FX.LAB, solution_nb=FX.notebook(), jobs=1, progress=False,
                  log=lambda m: None).grade(sorted(tmp_path.glob("s*.ipynb")))
    assert [r["score"] for r in recs] == [7.0, 7.0]
    assert "could not write" in recs[0]["message"]
    assert not (tmp_path / "o" / ".state" / "students" / "s0.json").exists()
    assert (tmp_path / "o" / ".state" / "students" / "s1.json").exists()
    assert (tmp_path / "o" / "grades.csv").read_text().count("\n") == 3


# ----------------------------------------------------------------------------- item 13: --no-sandbox

def test_item13_no_sandbox_output_is_private_and_the_warning_says_what_is_exposed(tmp_path):
    if not sandbox.sandbox_ready():
        pytest.skip("the sandbox venv is not built")
    FX.write_notebook(tmp_path / "good.ipynb", FX.notebook())
    logs = []
    Grader(None, tmp_path / "o", lab=FX.LAB, solution_nb=FX.notebook(), sandbox=False, jobs=1, progress=False,
           log=logs.append).grade([tmp_path / "good.ipynb"])
    assert stat.S_IMODE(os.stat(tmp_path / "o").st_mode) == 0o700
    warning = next(m for m in logs if "WITHOUT bubblewrap" in m)
    assert "/proc" in warning and "solution" in warning and "0700" in warning
