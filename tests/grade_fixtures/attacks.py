"""Attack submissions for tests/test_adversarial.py: each replaces the ``relu`` answer cell of the
fixture lab (``softmax`` and ``affine_backward`` keep the solution).

Pattern: an attack that would *gain* something (reading the reference, patching comparisons,
reaching the network, writing outside its tmp) returns the correct answer only if the attack
worked and a wrong one otherwise, so a score of 0 on ``relu`` proves it failed; the rest try to
hurt the grader or other students. ``P`` (paths, port) is filled in by :func:`source`.
"""
from __future__ import annotations

PRELUDE = """\
import numpy as np, os, sys, json
P = json.loads({params!r})

def _correct(x):
    return np.maximum(x, 0.0)

def _wrong(x):
    return -np.abs(x) - 1.0
"""

ATTACKS: dict[str, tuple[str, str]] = {
    # name: (what it tries, the relu cell body after PRELUDE)
    "read-solution": ("read the solution notebook, coursekit's source, the run's seed; import coursekit", """
def relu(x):
    got = []
    for path in P["secrets"]:
        try:
            with open(path) as f:
                got.append(f.read(100))
        except OSError:
            pass
    try:
        sys.path.insert(0, P["repo"])
        import coursekit.labs.spec  # noqa
        got.append("import")
    except ImportError:
        pass
    return _correct(x) if got else _wrong(x)
"""),
    "patch-comparison": ("monkeypatch np.allclose / isclose / array_equal / testing in the sandbox", """
import numpy.testing
np.allclose = lambda *a, **k: True
np.isclose = lambda a, b, *r, **k: np.ones(np.broadcast(a, b).shape, bool)
np.array_equal = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
def relu(x):
    return _wrong(x)
"""),
    "overwrite-outputs": ("overwrite grades.csv, another student's feedback and state", """
def relu(x):
    done = 0
    for name in ("grades.csv", "feedback/good.md", "feedback/good.html", ".state/good.json",
                 "gradescope/good/results.json"):
        try:
            with open(os.path.join(P["out"], name), "w") as f:
                f.write("student,total\\ngood,0\\nattacker,100\\n")
            done += 1
        except OSError:
            pass
    return _correct(x) if done else _wrong(x)
"""),
    "fork-bomb": ("fork without end, ignoring errors", """
def relu(x):
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""),
    "memory-bomb": ("allocate memory until the machine runs out", """
def relu(x):
    hog = []
    while True:
        hog.append(np.empty(1 << 26))  # 512 MiB each (untouched: zeroing pages is slow on a busy host)
"""),
    "infinite-loop": ("spin forever, swallowing exceptions", """
def relu(x):
    while True:
        try:
            pass
        except Exception:
            pass
"""),
    "huge-output": ("print gigabytes to stdout", """
def relu(x):
    block = b"spam" * (1 << 18)
    for _ in range(4096):  # 4 GiB
        os.write(1, block)
    return _correct(x)
"""),
    "pickle-payload": ("send an object array with a __reduce__ payload over the result channel", """
import io, struct
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + P["pickle_marker"],))
def relu(x):
    buf = io.BytesIO()
    meta = json.dumps({"q": 0, "c": 0, "status": "ok", "kind": "array", "n": 1})
    np.savez(buf, meta=np.array(meta), r0=np.array([Evil()], dtype=object), allow_pickle=True)
    data = buf.getvalue()
    os.write(int(sys.argv[2]), b"CKR1" + struct.pack("<Q", len(data)) + data)
    return _wrong(x)
"""),
    "network": ("connect to a TCP listener of the test on 127.0.0.1", """
import socket
def relu(x):
    try:
        s = socket.create_connection(("127.0.0.1", P["port"]), timeout=1)
        s.sendall(b"stolen")
        s.close()
        return _correct(x)
    except OSError:
        return _wrong(x)
"""),
    "kill-parent": ("kill the parent, every process (kill -1) and pid 1", """
import signal
def relu(x):
    for pid in (os.getppid(), -1, 1, P["grader_pid"]):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return _wrong(x)
"""),
    "write-outside-tmp": ("write the host's tmp, /in, the venv's numpy, /usr", """
def relu(x):
    done = 0
    for path in (P["host_marker"], "/in/run.py", "/in/job.json", np.__file__, "/usr/bin/python3", "/etc/passwd",
                 "/marker"):
        try:
            with open(path, "a") as f:
                f.write("# owned\\n")
            done += 1
        except OSError:
            pass
    return _correct(x) if done else _wrong(x)
"""),
    "forged-exit": ("print a forged 'all passed', write a forged results.json, exit early", """
print("All tests passed! Score: 7/7")
print(json.dumps({"score": 7.0, "tests": []}))
for path in ("/autograder/results/results.json", "results.json", "/tmp/results.json",
             os.path.join(P["out"], "gradescope", "forged-exit", "results.json")):
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            json.dump({"score": 7.0, "tests": []}, f)
    except OSError:
        pass
sys.stdout.flush()
os._exit(0)
def relu(x):
    return _correct(x)
"""),
    "daemon": ("double-fork + setsid a daemon that writes to the host after the job ends", """
import time
def relu(x):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(1.5)
            try:
                with open(P["daemon_marker"], "w") as f:
                    f.write("alive")
            except OSError:
                pass
            os._exit(0)
        os._exit(0)
    return _wrong(x)
"""),
    "forge-frames": ("write a forged 'done' and a passing-looking frame for every case, then crash", """
import io, struct
def relu(x):
    fd = int(sys.argv[2])
    for q in range(3):
        for c in range(2):
            buf = io.BytesIO()
            np.savez(buf, meta=np.array(json.dumps({"q": q, "c": c, "status": "ok", "kind": "array", "n": 1})),
                     r0=np.zeros(3))
            data = buf.getvalue()
            os.write(fd, b"CKR1" + struct.pack("<Q", len(data)) + data)
    os.write(fd, b"CKR1" + struct.pack("<Q", 1 << 40))  # a lying length header
    return _correct(x)
"""),
}


def source(name: str, params: dict) -> str:
    import json
    return PRELUDE.format(params=json.dumps(params)) + ATTACKS[name][1]
