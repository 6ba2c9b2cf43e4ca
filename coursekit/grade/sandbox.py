"""Run one submission's code in a bubblewrap sandbox, as a non-root uid, under rlimits.

The recipe (each point verified on this project's machines by an attack in ``tests/``):

* ``prlimit`` sets RLIMIT_AS (2 GiB), CPU, NPROC (64), FSIZE, NOFILE, CORE, then execs ``bwrap``,
  started as a *non-root* uid (one per parallel worker slot, ``60000 + slot``) because the kernel
  does not apply RLIMIT_NPROC to uid 0;
* ``bwrap`` unshares every namespace (network: loopback only), forbids nested user namespaces,
  clears the environment, binds ``/usr`` and the sandbox venv read-only, the job's input folder
  read-only at ``/in``, sized tmpfs at ``/tmp`` and ``/dev/shm``, and remounts ``/`` read-only.
  Nothing of the grader (coursekit, the solution notebook, the output folder) is bound;
* the result comes back over a pipe (``pass_fds``), never through a file the job could replace;
  stdout+stderr are read with a cap; a wall-clock timeout kills the whole sandbox (``--new-session``
  + ``killpg`` of bwrap, which tears down the pid namespace);
* memory is bounded per *job*, children included: when the grader runs as root and the machine
  has the memory and pids cgroup controllers (v2 with them enabled for our cgroup, or v1
  hierarchies), each job runs in its own cgroup (``memory`` = :attr:`Limits.job_memory`, swap
  off, ``pids`` = nproc + 8), entered by a root ``sh`` before it drops to the slot uid with
  ``setpriv``. Elsewhere (not root, no controllers, no ``setpriv``) the bound is only per
  process (RLIMIT_AS × at most ``nproc`` processes), and :attr:`Sandbox.cgroups` says so;
* ``/tmp`` and ``/dev/shm`` are tmpfs mounted by the grader per job with a size *and* an inode
  cap (``nr_inodes``: empty files cost kernel memory that no rlimit counts) when it may mount
  (root with CAP_SYS_ADMIN); elsewhere bwrap's own sized tmpfs (inodes then bounded only by the
  job's cgroup, if any);
* a job is retried only when its start handshake (:data:`protocol.START`, the runner's first
  write) never arrived: the sandbox failed before student code ran. What a job prints or how it
  exits never causes a retry.

The sandbox's Python is a venv built from ``/usr/bin/python3.11`` containing NumPy only
(:func:`setup_sandbox`), at ``/var/cache/coursekit/sandbox-venv`` unless ``COURSEKIT_SANDBOX_VENV``
says otherwise.
"""
from __future__ import annotations

import ctypes
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
    "sandbox_venv", "sandbox_python", "setup_sandbox", "sandbox_ready", "UNPROTECTED", "cgroup_support",
    "release_mounts_under", "remove_stale_cgroups", "install_bubblewrap",
]

DEFAULT_VENV = "/var/cache/coursekit/sandbox-venv"
NUMPY_PIN = "2.4.6"
_MARKER = ".coursekit-sandbox.json"
_BASE_UID = 60000
_UID_RANGE = 4096              # uids 60000..64095; each run locks the ones it uses
_LOCK_DIR = "/run/lock/coursekit-grade"
_START = b"CKS1"               # protocol.START (kept here too: the sandbox module stands alone)
_START_TRIES = 3
_CG_PREFIX = "coursekit-grade-"

UNPROTECTED = """\
!!! --no-sandbox: student code runs WITHOUT bubblewrap. Still enforced: rlimits (memory, CPU,
!!! processes, file size), the wall-clock timeout, the output cap, a data-only result channel, and
!!! (when the grader runs as root) a separate non-root uid. NOT protected: the code can READ every
!!! world-readable file (the solution notebook, coursekit's references, other submissions), read
!!! the grader's command line and environment through /proc (the solution's path, any seed given
!!! on the command line), reach the NETWORK, write to the host's /tmp and /dev/shm, start daemons
!!! that outlive the job, and kill other jobs of the same uid. The output folder is made 0700 so
!!! that other users' code cannot read the feedback. Use it only for code you trust."""


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
    # all processes of one job together (their RAM, tmpfs pages, kernel memory): the job's cgroup
    job_memory: int = (2 << 30) + (64 << 20) + (16 << 20) + (256 << 20)
    tmp_inodes: int = 4096           # files + folders in /tmp (grader-mounted tmpfs, nr_inodes)
    shm_inodes: int = 256            # in /dev/shm


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
    started: bool = True             # the start handshake arrived (student code may have run)
    memory_killed: bool = False      # the job's cgroup hit its memory limit and killed a process
    memory_limit: int = 0

    def describe_exit(self) -> str | None:
        """A plain-words explanation of an abnormal end, or None for a clean exit 0."""
        if not self.started:
            return "the sandbox failed to start (not the submission's fault; it will be regraded on the next run)"
        if self.memory_killed:
            return (f"stopped: its processes together used more than the job's memory limit "
                    f"({self.memory_limit >> 20} MiB)")
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
    see :data:`UNPROTECTED` for what it does not protect. ``scratch_dir``: a folder of the run's
    own where the per-job tmpfs mounts go (default: none, bwrap's tmpfs without an inode cap).
    """

    def __init__(self, venv: str | os.PathLike | None = None, *, limits: Limits = Limits(), isolate: bool = True,
                 slots: int = 1, scratch_dir: str | os.PathLike | None = None, run_name: str | None = None):
        self.venv = Path(venv) if venv is not None else sandbox_venv()
        self.limits = limits
        self.isolate = isolate
        self.is_root = os.geteuid() == 0
        self._uids: list[int] = []
        self._locks: list[int] = []
        self.bwrap = shutil.which("bwrap")
        self.prlimit = shutil.which("prlimit")
        self.setpriv = shutil.which("setpriv")
        if isolate and not self.bwrap:
            raise SandboxUnavailable("bubblewrap (`bwrap`) is not installed: run `coursekit grade --setup-sandbox` "
                                     "(as root it installs it), or `apt-get install bubblewrap`; or pass "
                                     "--no-sandbox for trusted code only")
        if not self.prlimit and isolate:
            raise SandboxUnavailable("`prlimit` (util-linux) is not installed")
        real = os.path.realpath(self.venv / "bin" / "python")
        self._hide_usr_local = not real.startswith("/usr/local/")
        if self.is_root:
            self._reserve(slots)
        if isolate:
            _become_subreaper()
        # per-job cgroups: only where a root shell can enter one and then drop to the slot uid
        self.cgroups = cgroup_support() if (self.is_root and self.setpriv) else \
            (None, "not root or no `setpriv`: memory is bounded per process only")
        self._cg_name = _CG_PREFIX + (run_name or f"{os.getpid()}-{os.urandom(4).hex()}")
        self._scratch = Path(scratch_dir) if scratch_dir is not None and isolate and self.is_root else None
        if self._scratch is not None and not _mount_works(self._scratch):
            self._scratch = None
        self.inode_cap = self._scratch is not None

    @property
    def uids(self) -> tuple[int, ...]:
        """The sandbox uids this sandbox reserved (one per worker slot; empty when not root)."""
        return tuple(self._uids)

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
        if len(self._uids) < n:
            raise SandboxUnavailable(f"Sandbox: could not reserve {n} free sandbox uids in "
                                     f"[{_BASE_UID}, {_BASE_UID + _UID_RANGE})")

    def close(self) -> None:
        """Release the reserved uids, the per-job mount points and this sandbox's cgroups."""
        if self._scratch is not None:
            for d in self._scratch.glob("scratch-*"):
                release_mounts_under(d)
                shutil.rmtree(d, ignore_errors=True)
        kind, roots = self.cgroups
        if kind is not None:
            for root in roots.values():
                _rmdir_tree(os.path.join(root, self._cg_name))
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

    def _drain(self, uid: int, cg: "_JobCgroup | None", timeout: float = 5.0) -> None:
        """Wait until no process of ``uid`` (and of the job's cgroup) is left (a killed sandbox's pid
        namespace is torn down asynchronously), SIGKILLing stragglers after ``timeout``; gives up
        after three rounds (a process stuck in the kernel) so that the run goes on."""
        for _round in range(3):
            t_end = time.monotonic() + timeout
            while _reap_and_count(uid) or (cg is not None and cg.pids()):
                if time.monotonic() > t_end:
                    break
                time.sleep(0.01)
            else:
                return
            for pid in _pids_of(uid) + (cg.pids() if cg is not None else []):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    # ------------------------------------------------------------------ command line

    def _limits_argv(self, cpu_s: int) -> list[str]:
        L = self.limits
        nproc = L.nproc
        if not self.is_root:  # our own uid: its existing processes count too
            nproc += _count_processes(os.getuid())
        return [f"--as={L.address_space}", f"--cpu={cpu_s}:{cpu_s + 1}", f"--nproc={nproc}",
                f"--fsize={L.fsize}", f"--nofile={L.nofile}", "--core=0"]

    def argv(self, job_dir: str | os.PathLike, fd: int, cpu_s: int, script: str = "run.py",
             extra: tuple[str, ...] = (), *, scratch: Path | None = None) -> list[str]:
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
               "--proc", "/proc", "--dev", "/dev"]
        if scratch is not None:   # tmpfs mounted by us, with nr_inodes
            bw += ["--bind", str(scratch / "shm"), "/dev/shm", "--bind", str(scratch / "tmp"), "/tmp"]
        else:
            bw += ["--size", str(L.shm_size), "--tmpfs", "/dev/shm", "--size", str(L.tmp_size), "--tmpfs", "/tmp"]
        bw += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp",
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
        result pipe, both capped; kill the sandbox at ``timeout`` seconds of wall clock. A start
        that never reached the handshake (bwrap could not create its namespaces, say) is retried
        up to :data:`_START_TRIES` times; a job that started is never retried, whatever it printed.
        Bound: ``_START_TRIES × (timeout + 15 s)`` of wall clock."""
        for attempt in range(_START_TRIES):
            res = self._run_once(job_dir, timeout=timeout, slot=slot, script=script, extra=extra)
            if res.started or res.reason is not None:
                break
            time.sleep(0.1 * (attempt + 1))
        return res

    def _job_cgroup(self, slot: int) -> "_JobCgroup | None":
        kind, roots = self.cgroups
        if kind is None:
            return None
        L = self.limits
        try:
            return _JobCgroup(kind, {c: os.path.join(r, self._cg_name, f"slot{slot}") for c, r in roots.items()},
                              memory=L.job_memory, pids=L.nproc + 8)
        except OSError:
            return None

    def _mount_scratch(self, slot: int, uid: int | None) -> Path | None:
        """Mount a fresh ``tmp`` and ``shm`` tmpfs (size and inode caps, owned by the slot uid) on the
        slot's mount points, made once per run; every job gets empty ones."""
        if self._scratch is None or uid is None:
            return None
        L = self.limits
        root = self._scratch / f"scratch-{slot}"
        mounted = []
        try:
            for name, size, inodes in (("tmp", L.tmp_size, L.tmp_inodes), ("shm", L.shm_size, L.shm_inodes)):
                d = root / name
                if not d.is_dir():
                    d.mkdir(parents=True, exist_ok=True)
                    os.chmod(root, 0o755)
                _mount_tmpfs(d, f"size={size},nr_inodes={inodes},mode=0700,uid={uid},gid={uid}")
                mounted.append(d)
            return root
        except OSError:
            for d in mounted:
                _umount(d)
            return None

    def _run_once(self, job_dir, *, timeout, slot, script, extra) -> RunResult:
        L = self.limits
        cpu_s = max(2, int(timeout) + 2)
        uid = self.uid(slot)
        cg = self._job_cgroup(slot)
        scratch = self._mount_scratch(slot, uid) if self.isolate else None
        r, w = os.pipe()
        t0 = time.monotonic()
        try:
            argv = self.argv(job_dir, w, cpu_s, script, extra, scratch=scratch)
            if cg is not None:   # a root shell enters the cgroup, then drops to the slot uid
                kw = {}
                wrap = ["/bin/sh", "-c", 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; '
                                         'shift; exec "$@"', "sh", *cg.procs_files(), "--"]
                if uid is not None:
                    wrap += [self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                             "--inh-caps=-all", "--"]
                argv = wrap + argv
            else:
                kw = dict(user=uid, group=uid, extra_groups=[]) if uid is not None else {}
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"} if self.isolate else _fallback_env(),
                                 cwd=str(job_dir), close_fds=True, pass_fds=(w,), start_new_session=True, **kw)
        except BaseException:
            os.close(r)
            os.close(w)
            _cleanup_job(cg, scratch)
            raise
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
            try:
                if uid is not None:
                    self._drain(uid, cg)
                elif cg is not None:
                    self._drain(-1, cg)
            finally:
                memory_killed = cg is not None and cg.oom_killed()
                _cleanup_job(cg, scratch)
        started = bytes(res[:len(_START)]) == _START
        result = bytes(res[len(_START):]) if started else bytes(res)
        return RunResult(rc, reason, bytes(out), result, time.monotonic() - t0, cpu_s, started=started,
                         memory_killed=memory_killed, memory_limit=L.job_memory if cg is not None else 0)

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
    os.write(int(sys.argv[2]), b"CKS1")
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



# ----------------------------------------------------------------------------- per-job cgroups

def _self_cgroups() -> dict[str, str]:
    """``{controller or "": path}`` from /proc/self/cgroup ("" is the v2 unified hierarchy)."""
    out = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _id, ctrls, path = line.rstrip("\n").split(":", 2)
                for c in ctrls.split(",") if ctrls else [""]:
                    out[c] = path
    except OSError:
        pass
    return out


def _cgroup_mounts() -> dict[str, str]:
    """``{controller: mount point}`` of v1 hierarchies, and ``"": mount point`` of cgroup2."""
    out = {}
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fstype, _src, opts = (right.split() + ["", "", ""])[:3]
                mnt = left.split()[4]
                if fstype == "cgroup2":
                    out.setdefault("", mnt)
                elif fstype == "cgroup":
                    for o in opts.split(","):
                        if o in ("memory", "pids"):
                            out[o] = mnt
    except OSError:
        pass
    return out


def cgroup_support() -> tuple[str | None, dict | str]:
    """Whether this process can give each job a memory + pids cgroup.

    Returns ``("v2", {"": dir})`` when the cgroup2 hierarchy has both controllers enabled (or
    enableable) below our own cgroup, ``("v1", {"memory": dir, "pids": dir})`` for v1 hierarchies
    whose cgroup of ours is writable, else ``(None, why)``. ``dir`` is where job cgroups are made."""
    mounts, mine = _cgroup_mounts(), _self_cgroups()
    if "memory" in mounts and "pids" in mounts and "memory" in mine and "pids" in mine:
        roots = {c: os.path.normpath(mounts[c] + "/" + mine[c]) for c in ("memory", "pids")}
        if all(os.access(r, os.W_OK) for r in roots.values()):
            return "v1", roots
    if "" in mounts and "" in mine:
        root = os.path.normpath(mounts[""] + "/" + mine[""])
        try:
            with open(os.path.join(root, "cgroup.controllers")) as f:
                available = f.read().split()
            if {"memory", "pids"} <= set(available) and os.access(root, os.W_OK):
                with open(os.path.join(root, "cgroup.subtree_control")) as f:
                    enabled = set(f.read().split())
                if not {"memory", "pids"} <= enabled:
                    with open(os.path.join(root, "cgroup.subtree_control"), "w") as f:
                        f.write("+memory +pids")
                return "v2", {"": root}
        except OSError as e:
            return None, f"cgroup v2 at {root}: memory and pids cannot be enabled for sub-cgroups ({e.strerror})"
        return None, f"cgroup v2 at {root}: the memory and pids controllers are not delegated to us"
    return None, "no writable memory and pids cgroup controllers"


class _JobCgroup:
    """The memory + pids cgroup(s) of one job: made before it starts, removed after it is drained."""

    def __init__(self, kind: str, dirs: dict[str, str], *, memory: int, pids: int):
        self.kind, self.dirs = kind, dirs
        for d in dirs.values():
            os.makedirs(d, exist_ok=True)
        if kind == "v2":
            d = dirs[""]
            _write(d, "memory.max", memory)
            _write(d, "memory.swap.max", 0, optional=True)
            _write(d, "pids.max", pids)
            self._oom0 = self._oom_count()
        else:
            _write(dirs["memory"], "memory.limit_in_bytes", memory)
            _write(dirs["memory"], "memory.memsw.limit_in_bytes", memory, optional=True)
            _write(dirs["pids"], "pids.max", pids)
            self._oom0 = self._oom_count()

    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> list[int]:
        out = set()
        for f in self.procs_files():
            try:
                with open(f) as fh:
                    out.update(int(x) for x in fh.read().split())
            except (OSError, ValueError):
                pass
        return sorted(out)

    def _oom_count(self) -> int:
        name = "memory.events" if self.kind == "v2" else "memory.oom_control"
        try:
            with open(os.path.join(self.dirs["" if self.kind == "v2" else "memory"], name)) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "oom_kill":
                        return int(v)
        except (OSError, ValueError):
            pass
        return 0

    def oom_killed(self) -> bool:
        return self._oom_count() > self._oom0

    def remove(self) -> None:
        for d in self.dirs.values():
            try:
                os.rmdir(d)
            except OSError:
                pass


def _write(d: str, name: str, value, *, optional: bool = False) -> None:
    try:
        with open(os.path.join(d, name), "w") as f:
            f.write(str(value))
    except OSError:
        if not optional:
            raise


def _rmdir_tree(d: str) -> None:
    """rmdir a cgroup and its (empty) children; a cgroup that still has processes stays."""
    try:
        for child in os.listdir(d):
            if os.path.isdir(os.path.join(d, child)):
                try:
                    os.rmdir(os.path.join(d, child))
                except OSError:
                    pass
        os.rmdir(d)
    except OSError:
        pass


def remove_stale_cgroups(is_live) -> None:
    """Remove the (empty) cgroups of grading runs for which ``is_live(run_name)`` is False."""
    kind, roots = cgroup_support() if os.geteuid() == 0 else (None, None)
    if kind is None:
        return
    for root in roots.values():
        try:
            names = [n for n in os.listdir(root) if n.startswith(_CG_PREFIX)]
        except OSError:
            continue
        for n in names:
            if not is_live(n[len(_CG_PREFIX):]):
                _rmdir_tree(os.path.join(root, n))


# ----------------------------------------------------------------------------- per-job tmpfs with an inode cap

_MS_NOSUID, _MS_NODEV, _MNT_DETACH = 2, 4, 2


_LIBC = []


def _libc():
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def _umount(path) -> None:
    try:
        _libc().umount2(os.fsencode(str(path)), _MNT_DETACH)
    except (OSError, AttributeError):
        pass


def _mount_tmpfs(path: Path, options: str) -> None:
    if _libc().mount(b"tmpfs", os.fsencode(str(path)), b"tmpfs", _MS_NOSUID | _MS_NODEV, options.encode()) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount tmpfs on {path}: {os.strerror(e)}")


def _mount_works(scratch: Path) -> bool:
    """Whether we may mount a tmpfs (root with CAP_SYS_ADMIN in our mount namespace)."""
    probe = scratch / "mount-probe"
    try:
        probe.mkdir(parents=True, exist_ok=True)
        _mount_tmpfs(probe, "size=64k,nr_inodes=16,mode=0700")
    except (OSError, AttributeError):
        return False
    release_mounts_under(probe)
    shutil.rmtree(probe, ignore_errors=True)
    return True


def release_mounts_under(path: str | os.PathLike) -> None:
    """Detach every mount at or below ``path`` (deepest first): a job's tmpfs, or a killed run's."""
    prefix = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
    except OSError:
        return
    points = [p.encode().decode("unicode_escape") for p in points]
    for mnt in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True):
        _umount(mnt)


def _cleanup_job(cg: "_JobCgroup | None", scratch: Path | None) -> None:
    if scratch is not None:   # the job's two tmpfs (mounted by _mount_scratch): their files go with them
        for name in ("tmp", "shm"):
            _umount(scratch / name)
    if cg is not None:
        cg.remove()


# ----------------------------------------------------------------------------- bubblewrap itself

def install_bubblewrap(*, log=None) -> tuple[bool, str]:
    """Install bubblewrap where this process can: as root with ``apt-get`` (Debian/Ubuntu).
    Returns (installed or already present, what was done or the exact command to run)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if shutil.which("bwrap"):
        return True, f"bubblewrap is installed ({shutil.which('bwrap')})"
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        log("coursekit: installing bubblewrap with apt-get ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in ([apt, "update"], [apt, "install", "-y", "bubblewrap"]):
            r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if r.returncode:
                return False, (f"`{' '.join(argv)}` failed ({r.returncode}): {r.stderr[-500:]}; "
                               f"run `apt-get install -y bubblewrap` yourself")
        return shutil.which("bwrap") is not None, "installed bubblewrap with apt-get"
    if apt:
        return False, "bubblewrap is missing: run `sudo apt-get install -y bubblewrap`"
    for tool, cmd in (("dnf", "sudo dnf install -y bubblewrap"), ("yum", "sudo yum install -y bubblewrap"),
                      ("pacman", "sudo pacman -S bubblewrap"), ("zypper", "sudo zypper install bubblewrap"),
                      ("apk", "sudo apk add bubblewrap")):
        if shutil.which(tool):
            return False, f"bubblewrap is missing: run `{cmd}`"
    return False, ("bubblewrap is missing and this system has no package manager we know: install "
                   "bubblewrap (https://github.com/containers/bubblewrap), or grade on Linux with apt")
