"""File output shared by every writer in coursekit: atomic writes and file names that are safe.

One home for these helpers: the grader (:mod:`coursekit.grade`), :func:`coursekit.labs.release`
and the book tools all write through them, so a reader never sees a half-written file.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "safe_name"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int = 0o644):
    """Yield a temporary path beside ``path``; when the block ends without error, move it onto
    ``path`` with ``os.replace`` (readers see the old file or the new one, never a partial one).
    On error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:80]}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, *, mode: int = 0o644, fsync: bool = False) -> None:
    """Write ``data`` (``str`` is encoded as UTF-8) to ``path`` atomically (:func:`atomic_path`)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path, mode=mode) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())


_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,100}$")


def safe_name(student: str) -> str:
    """A file name for ``student`` (any ``str``, lone surrogates included), distinct for distinct ids.

    A harmless id (``[A-Za-z0-9][A-Za-z0-9._@+-]{0,100}``) is its own name; any other becomes a
    cleaned form, ``~`` and 16 hex digits of the SHA-256 of its exact code points. ``~`` never
    occurs in a harmless id, so no student can be named what another's id is turned into (say
    ``X_Y-1a2b3c4d`` beside ``X Ÿ``). Never raises for a ``str``.
    """
    if not isinstance(student, str):
        raise TypeError(f"safe_name: student must be a str, got {type(student).__name__}")
    if _SAFE.match(student):
        return student
    clean = re.sub(r"[^A-Za-z0-9._@+-]+", "_", student).strip("._")[:60] or "student"
    digest = hashlib.sha256(student.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{clean}~{digest}"
