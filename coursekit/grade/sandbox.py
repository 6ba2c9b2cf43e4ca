"""Run one submission's code in a bubblewrap sandbox, as a non-root uid, under rlimits.

The recipe (verified on this project's machines, see ``shared/recipes/sandbox.md``):

* ``prlimit`` sets RLIMIT_AS (2 GiB), CPU, NPROC (64), FSIZE, NOFILE, CORE, then execs ``bwrap``,
  started as a *non-root* uid (one per parallel worker slot, ``60000 + slot``) because the kernel
  does not apply RLIMIT_NPROC to uid 0;
* ``bwrap`` unshares every namespace (network: loopback only), forbids nested user namespaces,
  clears the environment, binds ``/usr`` and the sandbox venv read-only, the job's input folder
  read-only at ``/in``, sized tmpfs at ``/tmp`` and ``/dev/shm``, and remounts ``/`` read-only.
  Nothing of the grader (coursekit, the solution notebook, the output folder) is bound;
* the result comes back over a pipe (``pass_fds``), never through a file the job could replace;
  stdout+stderr are read with a cap; a wall-clock timeout kills the whole sandbox (``--new-session``
  + ``killpg`` of bwrap, which tears down the pid namespace).

The sandbox's Python is a venv built from ``/usr/bin/python3.11`` containing NumPy only
(:func:`setup_sandbox`), at ``/var/cache/coursekit/sandbox-venv`` unless ``COURSEKIT_SANDBOX_VENV``
says otherwise.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_VENV", "NUMPY_PIN", "SandboxUnavailable", "Limits", "RunResult", "Sandbox",
    "sandbox_venv", "sandbox_python", "setup_sandbox", "sandbox_ready", "UNPROTECTED",
]

DEFAULT_VENV = "/var/cache/coursekit/sandbox-venv"
NUMPY_PIN = "2.4.6"
_MARKER = ".coursekit-sandbox.json"
_BASE_UID = 60000
_UID_RANGE = 4096              # uids 60000..64095; each run locks the ones it uses
_LOCK_DIR = "/run/lock/coursekit-grade"

UNPROTECTED = """\
!!! --no-sandbox: student code runs WITHOUT bubblewrap. Still enforced: rlimits (memory, CPU,
!!! processes, file size), the wall-clock timeout, the output cap, a data-only result channel, and
!!! (when the grader runs as root) a separate non-root uid. NOT protected: the code can READ every
!!! world-readable file (the solution notebook, coursekit's references, other submissions), reach
!!! the NETWORK, write to the host's /tmp and /dev/shm, start daemons that outlive the job, and
!!! kill other jobs of the same uid. Use it only for code you trust."""


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or the sandbox failed its self-test."""


def sandbox_venv() -> Path:
    """Where the sandbox venv lives: ``$COURSEKIT_SANDBOX_VENV`` or :data:`DEFAULT_VENV`."""
    return Path(os.environ.get("COURSEKIT_SANDBOX_VENV") or DEFAULT_VENV)


def sandbox_python() -> str:
    """The interpreter the sandbox venv is built from (``$COURSEKIT_SANDBOX_PYTHON`` or /usr/bin/python3.11)."""
    return os.environ.get("COURSEKIT_SANDBOX_PYTHON") or "/usr/bin/python3.11"


def sandbox_ready(venv: str | os.PathLike | None = None) -> bool:
    """True when ``venv`` was completed by :func:`setup_sandbox` with the pinned NumPy."""
    venv = Path(venv) if venv is not None else sandbox_venv()
    try:
        info = json.loads((venv / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return info.get("numpy") == NUMPY_PIN and (venv / "bin" / "python").exists()


def setup_sandbox(venv: str | os.PathLike | None = None, *, python: str | None = None, force: bool = False,
                  log=None) -> Path:
    """Build the sandbox venv: ``python -m venv``, ``pip install numpy==NUMPY_PIN``, then uninstall
    pip and setuptools so that NumPy is the only package. Built next to ``venv`` and renamed into
    place (atomic); world-readable so the sandbox uids can use it. Returns the venv path.

    ``ValueError`` if the interpreter is missing or lives somewhere the sandbox cannot bind
    (outside ``/usr``, e.g. a pyenv build under ``/root``).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    venv = Path(venv) if venv is not None else sandbox_venv()
    python = python or sandbox_python()
    if sandbox_ready(venv) and not force:
        return venv
    real = os.path.realpath(python)
    if not os.path.isfile(real):
        raise ValueError(f"setup_sandbox: python must be an existing interpreter, got {python!r}")
    if not real.startswith("/usr/"):
        raise ValueError(f"setup_sandbox: python must live under /usr (bound read-only into the sandbox), "
                         f"got {python!r} -> {real!r}; set COURSEKIT_SANDBOX_PYTHON")
    venv.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(venv.parent, os.stat(venv.parent).st_mode | 0o755)
    import fcntl
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:   # one builder at a time (pytest-xdist)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if sandbox_ready(venv) and not force:
            return venv
        return _build_venv(venv, python, log)


def _build_venv(venv: Path, python: str, log) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=f".{venv.name}.", dir=venv.parent))
    log(f"coursekit: building the sandbox venv at {venv} from {python} (numpy=={NUMPY_PIN}) ...")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_REQUIRE", "VIRTUAL_ENV"))}

        def sh(*argv):
            r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"setup_sandbox: {' '.join(map(str, argv))} failed:\n{r.stdout}{r.stderr}")
        sh(python, "-m", "venv", "--clear", str(tmp))
        py = str(tmp / "bin" / "python")
        sh(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
           f"numpy=={NUMPY_PIN}")
        sh(py, "-m", "pip", "uninstall", "--quiet", "--yes", "pip", "setuptools")
        sh(py, "-I", "-c", f"import numpy; assert numpy.__version__ == {NUMPY_PIN!r}, numpy.__version__")
        (tmp / _MARKER).write_text(json.dumps({"numpy": NUMPY_PIN, "python": python, "built": time.time()}))
        for root, dirs, files in os.walk(tmp):
            for name in dirs + files:
                p = os.path.join(root, name)
                if not os.path.islink(p):
                    os.chmod(p, os.stat(p).st_mode | (0o755 if os.path.isdir(p) or os.access(p, os.X_OK) else 0o644))
        os.chmod(tmp, 0o755)
        old = None
        if venv.exists():
            old = venv.with_name(f".{venv.name}.old.{os.getpid()}")
            os.replace(venv, old)
        os.replace(tmp, venv)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"coursekit: sandbox venv ready at {venv}")
    return venv


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed job (the sandbox inherits them from ``prlimit``)."""

    address_space: int = 2 << 30     # RLIMIT_AS; numpy needs ~140 MiB, a memory bomb gets MemoryError
    nproc: int = 64                  # RLIMIT_NPROC of the slot uid (processes + threads)
    fsize: int = 64 << 20            # RLIMIT_FSIZE, per file
    nofile: int = 256
    tmp_size: int = 64 << 20         # the sandbox's /tmp (tmpfs: RAM that RLIMIT_AS does not count)
    shm_size: int = 16 << 20         # its /dev/shm
    output_cap: int = 64 << 10       # bytes of stdout+stderr kept; more kills the job
    max_frame: int = 32 << 20        # one result frame
    max_result: int = 128 << 20      # all result frames of one job


@dataclass
class RunResult:
    """What came back from one job. ``reason``: None (exited by itself), ``"wall-timeout"``,
    ``"output-cap"`` or ``"result-cap"`` (the grader killed it)."""

    returncode: int
    reason: str | None
    stdout: bytes
    result: bytes
    wall_s: float
    cpu_limit_s: int = 0
    notes: list[str] = field(default_factory=list)

    def describe_exit(self) -> str | None:
        """A plain-words explanation of an abnormal end, or None for a clean exit 0."""
        if self.reason == "wall-timeout":
            return f"stopped: it ran past the wall-clock limit ({self.wall_s:.1f} s)"
        if self.reason == "output-cap":
            return "stopped: it printed more than the output limit"
        if self.reason == "result-cap":
            return "stopped: it sent back more data than the result limit"
        rc = self.returncode
        if rc == 0:
            return None
        if rc == 128 + signal.SIGXCPU or (rc == 128 + signal.SIGKILL and self.wall_s >= self.cpu_limit_s):
            return f"stopped: it used more than {self.cpu_limit_s} s of CPU time"
        if rc > 128:
            try:
                name = signal.Signals(rc - 128).name
            except ValueError:
                name = f"signal {rc - 128}"
            return f"the process was killed by {name}"
        return f"the process exited early with status {rc}"


class Sandbox:
    """Runs the child runner (``/in/run.py``) of a prepared job folder.

    isolate=True: bubblewrap (refuses to start if ``bwrap`` is missing: :class:`SandboxUnavailable`).
    isolate=False: the ``--no-sandbox`` fallback (rlimits, uid switch when root, timeout, caps);
    see :data:`UNPROTECTED` for what it does not protect.
    """

    def __init__(self, venv: str | os.PathLike | None = None, *, limits: Limits = Limits(), isolate: bool = True,
                 slots: int = 1):
        self.venv = Path(venv) if venv is not None else sandbox_venv()
        self.limits = limits
        self.isolate = isolate
        self.is_root = os.geteuid() == 0
        self._uids: list[int] = []
        self._locks: list[int] = []
        self.bwrap = shutil.which("bwrap")
        self.prlimit = shutil.which("prlimit")
        if isolate and not self.bwrap:
            raise SandboxUnavailable("bubblewrap (`bwrap`) is not installed: `apt-get install bubblewrap`, "
                                     "or pass --no-sandbox for trusted code only")
        if not self.prlimit and isolate:
            raise SandboxUnavailable("`prlimit` (util-linux) is not installed")
        real = os.path.realpath(self.venv / "bin" / "python")
        self._hide_usr_local = not real.startswith("/usr/local/")
        if self.is_root:
            self._reserve(slots)
        if isolate:
            _become_subreaper()

    # ------------------------------------------------------------------ uids
    def _reserve(self, n: int) -> None:
        """Lock ``n`` sandbox uids for this process (``flock`` on one file per uid, released when the
        process ends), so that concurrent grading runs never share a uid: RLIMIT_NPROC counts every
        process of a uid, and a killed job's processes take a moment to disappear."""
        import fcntl
        lock_dir = _LOCK_DIR
        try:
            os.makedirs(lock_dir, mode=0o700, exist_ok=True)
        except OSError:  # no /run/lock (a minimal container): fall back to the temp folder
            lock_dir = os.path.join(tempfile.gettempdir(), "coursekit-grade-uids")
            os.makedirs(lock_dir, mode=0o700, exist_ok=True)
        for uid in range(_BASE_UID, _BASE_UID + _UID_RANGE):
            if len(self._uids) == n:
                return
            fd = os.open(os.path.join(lock_dir, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            if _count_processes(uid):  # leftovers of a crashed run: not ours to kill, skip the uid
                os.close(fd)
                continue
            self._uids.append(uid)
            self._locks.append(fd)
        raise SandboxUnavailable(f"Sandbox: could not reserve {n} free sandbox uids in "
                                 f"[{_BASE_UID}, {_BASE_UID + _UID_RANGE})")

    def close(self) -> None:
        """Release the reserved uids."""
        for fd in self._locks:
            os.close(fd)
        self._locks, self._uids = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def uid(self, slot: int) -> int | None:
        """The uid of worker slot ``slot`` (None when not root: jobs run as our own uid)."""
        return self._uids[int(slot)] if self.is_root else None

    def _drain(self, uid: int, timeout: float = 5.0) -> None:
        """Wait until no process of ``uid`` is left (a killed sandbox's pid namespace is torn down
        asynchronously), then SIGKILL stragglers; the uid is ours alone (:meth:`_reserve`)."""
        t_end = time.monotonic() + timeout
        while _reap_and_count(uid):
            if time.monotonic() > t_end:
                for pid in _pids_of(uid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                t_end = time.monotonic() + timeout
            time.sleep(0.01)

    # ------------------------------------------------------------------ command line

    def _limits_argv(self, cpu_s: int) -> list[str]:
        L = self.limits
        nproc = L.nproc
        if not self.is_root:  # our own uid: its existing processes count too
            nproc += _count_processes(os.getuid())
        return [f"--as={L.address_space}", f"--cpu={cpu_s}:{cpu_s + 1}", f"--nproc={nproc}",
                f"--fsize={L.fsize}", f"--nofile={L.nofile}", "--core=0"]

    def argv(self, job_dir: str | os.PathLike, fd: int, cpu_s: int, script: str = "run.py",
             extra: tuple[str, ...] = ()) -> list[str]:
        L = self.limits
        limits = [self.prlimit, *self._limits_argv(cpu_s), "--"] if self.prlimit else \
            [sys.executable, "-I", "-c", _RLIMIT_TRAMPOLINE, json.dumps(self._rlimits_dict(cpu_s)), "--"]
        if not self.isolate:
            return [*limits, str(self.venv / "bin" / "python"), "-I", "-B", str(Path(job_dir) / script),
                    str(job_dir), str(fd), *extra]
        bw = [self.bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
              "--new-session", "--cap-drop", "ALL", "--clearenv",
              "--setenv", "PATH", "/venv/bin:/usr/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
              "--setenv", "USER", "student", "--setenv", "OMP_NUM_THREADS", "1",
              "--setenv", "OPENBLAS_NUM_THREADS", "1", "--setenv", "MKL_NUM_THREADS", "1",
              "--ro-bind", "/usr", "/usr"]
        if self._hide_usr_local:
            bw += ["--tmpfs", "/usr/local", "--remount-ro", "/usr/local"]
        bw += ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
               "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
               "--ro-bind", str(self.venv), "/venv", "--ro-bind", str(job_dir), "/in",
               "--proc", "/proc", "--dev", "/dev",
               "--size", str(L.shm_size), "--tmpfs", "/dev/shm", "--size", str(L.tmp_size), "--tmpfs", "/tmp",
               "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp",
               "/venv/bin/python", "-I", "-B", f"/in/{script}", "/in", str(fd), *extra]
        return [*limits, *bw]

    def _rlimits_dict(self, cpu_s):
        L = self.limits
        return {"AS": L.address_space, "CPU": [cpu_s, cpu_s + 1], "NPROC": L.nproc, "FSIZE": L.fsize,
                "NOFILE": L.nofile, "CORE": 0}

    # ------------------------------------------------------------------ one job
    def run(self, job_dir: str | os.PathLike, *, timeout: float, slot: int = 0, script: str = "run.py",
            extra: tuple[str, ...] = ()) -> RunResult:
        """Run ``job_dir/script`` (must be readable by the slot uid) and collect stdout and the
        result pipe, both capped; kill the sandbox at ``timeout`` seconds of wall clock. A start that
        fails for lack of resources (EAGAIN creating the namespaces) is retried a few times."""
        for attempt in range(5):
            res = self._run_once(job_dir, timeout=timeout, slot=slot, script=script, extra=extra)
            uid = self.uid(slot)
            if uid is not None:
                self._drain(uid)
            if not (res.returncode == 1 and b"bwrap: Creating new namespace failed" in res.stdout[:300]
                    and not res.result):
                break
            time.sleep(0.1 * (attempt + 1))
        return res

    def _run_once(self, job_dir, *, timeout, slot, script, extra) -> RunResult:
        L = self.limits
        cpu_s = max(2, int(timeout) + 2)
        r, w = os.pipe()
        uid = self.uid(slot)
        kw = dict(user=uid, group=uid, extra_groups=[]) if uid is not None else {}
        t0 = time.monotonic()
        try:
            p = subprocess.Popen(self.argv(job_dir, w, cpu_s, script, extra), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"} if self.isolate else _fallback_env(),
                                 cwd=str(job_dir), close_fds=True, pass_fds=(w,), start_new_session=True, **kw)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        out, res, reason = bytearray(), bytearray(), None
        fds = {p.stdout.fileno(): "out", r: "res"}
        try:
            while fds:
                left = t0 + timeout - time.monotonic()
                if left <= 0:
                    reason = "wall-timeout"
                    break
                ready = select.select(list(fds), [], [], left)[0]
                for fd in ready:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        del fds[fd]
                    elif fds[fd] == "out":
                        out += chunk
                        if len(out) > L.output_cap:
                            del out[L.output_cap:]
                            reason = "output-cap"
                    else:
                        res += chunk
                        if len(res) > L.max_result:
                            reason = "result-cap"
                if reason:
                    break
            if reason:
                _killpg(p.pid)
            try:
                rc = p.wait(timeout=max(0.5, t0 + timeout - time.monotonic()))
            except subprocess.TimeoutExpired:  # closed its pipes but is still running
                _killpg(p.pid)
                rc = p.wait()
                reason = reason or "wall-timeout"
            if not self.isolate:  # no pid namespace: take the job's process group down with it
                _killpg(p.pid)
        finally:
            os.close(r)
            p.stdout.close()
        return RunResult(rc, reason, bytes(out), bytes(res), time.monotonic() - t0, cpu_s)

    # ------------------------------------------------------------------ self-test
    def self_test(self, base_dir: str | os.PathLike, *, timeout: float = 20.0) -> dict:
        """Run a probe in the sandbox and check that it cannot reach a TCP listener of ours on
        127.0.0.1, cannot see coursekit or this grader's files, cannot write ``/``, is not root,
        and has the pinned NumPy. Raises :class:`SandboxUnavailable` naming what failed."""
        if not self.isolate:
            raise ValueError("Sandbox.self_test: only meaningful with isolate=True")
        job = Path(tempfile.mkdtemp(prefix="selftest-", dir=base_dir))
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            lst.bind(("127.0.0.1", 0))
            lst.listen(1)
            lst.settimeout(0.01)
            port = lst.getsockname()[1]
            secret_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the coursekit package
            (job / "probe.py").write_text(_PROBE)
            _share(job, self.uid(0))
            res = self.run(job, timeout=timeout, script="probe.py", extra=(str(port), secret_dir))
            accepted = False
            try:
                conn, _ = lst.accept()
                conn.close()
                accepted = True
            except OSError:
                pass
        finally:
            lst.close()
            shutil.rmtree(job, ignore_errors=True)
        text = res.stdout.decode("utf-8", "replace")
        try:
            probe = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise SandboxUnavailable(f"the sandbox self-test did not run (exit {res.returncode}, "
                                     f"{res.reason or 'no reason'}): {text[-2000:]}") from None
        problems = []
        if accepted or probe.get("net") != "blocked":
            problems.append(f"the network is reachable from the sandbox ({probe.get('net')})")
        if probe.get("coursekit") != "absent":
            problems.append(f"coursekit is visible in the sandbox ({probe.get('coursekit')})")
        if probe.get("write_root") != "denied":
            problems.append("the sandbox's / is writable")
        if self.is_root and probe.get("uid") == 0:
            problems.append("the job runs as uid 0")
        if probe.get("numpy") != NUMPY_PIN:
            problems.append(f"the sandbox has numpy {probe.get('numpy')}, expected {NUMPY_PIN}")
        if problems:
            raise SandboxUnavailable("the sandbox self-test failed: " + "; ".join(problems))
        return probe


_PROBE = textwrap.dedent("""\
    import json, os, socket, sys
    port, secret = int(sys.argv[3]), sys.argv[4]
    out = {"uid": os.getuid()}
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port)); out["net"] = "connected"
    except OSError as e:
        out["net"] = "blocked"
    finally:
        s.close()
    try:
        import coursekit; out["coursekit"] = "importable"
    except ImportError:
        out["coursekit"] = "visible on disk" if os.path.exists(secret) else "absent"
    try:
        open("/probe", "w").close(); out["write_root"] = "allowed"
    except OSError:
        out["write_root"] = "denied"
    try:
        import numpy; out["numpy"] = numpy.__version__
    except ImportError as e:
        out["numpy"] = repr(e)
    print(json.dumps(out))
""")

_RLIMIT_TRAMPOLINE = textwrap.dedent("""\
    import json, os, resource, sys
    for name, v in json.loads(sys.argv[1]).items():
        soft, hard = v if isinstance(v, list) else (v, v)
        try:
            resource.setrlimit(getattr(resource, "RLIMIT_" + name), (soft, hard))
        except (ValueError, OSError, AttributeError) as e:
            print(f"coursekit: could not set RLIMIT_{name}: {e}", file=sys.stderr)
    os.execv(sys.argv[3], sys.argv[3:])
""")


def _fallback_env() -> dict:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "USER": "student",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _pids_of(uid: int) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    pids.append(int(d))
            except OSError:
                pass
    return pids


def _become_subreaper() -> None:
    """Make this process the reaper of its orphaned descendants (``PR_SET_CHILD_SUBREAPER``).

    bwrap's in-sandbox init outlives the outer bwrap by a moment and is then reparented; under a
    PID 1 that reaps slowly or never (a container's CMD), its zombies pile up and count towards the
    slot uid's RLIMIT_NPROC until bwrap cannot start. As a subreaper the grader reaps them itself
    (:func:`_reap_and_count`, only zombies of sandbox uids, by pid, so ``subprocess`` is unaffected)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _reap_and_count(uid: int) -> int:
    """Reap this process's zombie children that run as ``uid``; return how many processes of
    ``uid`` are left."""
    me, left = os.getpid(), 0
    for pid in _pids_of(uid):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if fields[0] == b"Z" and int(fields[1]) == me:
            try:
                os.waitpid(pid, os.WNOHANG)
                continue
            except ChildProcessError:
                pass
        left += 1
    return left


def _count_processes(uid: int) -> int:
    try:
        return len(_pids_of(uid))
    except OSError:
        return 256


def _share(job_dir: Path, uid: int | None) -> None:
    """Make a job folder readable by the slot uid and by nobody else (when we are root)."""
    for root, dirs, files in os.walk(job_dir):
        for name in files:
            os.chmod(os.path.join(root, name), 0o640 if uid is not None else 0o600)
            if uid is not None:
                os.chown(os.path.join(root, name), 0, uid)
    os.chmod(job_dir, 0o750 if uid is not None else 0o700)
    if uid is not None:
        os.chown(job_dir, 0, uid)

