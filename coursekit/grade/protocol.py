"""Parent side of the data-only channel with the sandbox (the child side is ``_runner.py``).

* :func:`encode_inputs` turns a case's keyword arguments (NumPy arrays, NumPy/Python scalars,
  tuples/lists of them) into JSON plus arrays for ``inputs.npz``.
* :func:`decode_frames` splits the bytes read from the result pipe into frames
  (``b"CKR1" + uint64-LE length + npz``) and loads each with ``allow_pickle=False`` after checking,
  *before* NumPy allocates anything, that the zip has only stored (uncompressed) ``.npy`` members
  whose headers describe numeric (or, for ``meta``, unicode) arrays whose byte sizes add up. A
  frame that fails any check is dropped with a reason; nothing the job sends is ever unpickled,
  followed as a path, or trusted beyond "these are the arrays your function returned".

Bounded by meaning, not only by bytes: a job of a lab sends at most one frame per answer cell,
one per case and a final one (``max_frames``); decoding stops there. Before :mod:`zipfile` reads
a frame's directory, its end record must say at most 1 + 16 members in a directory of at most
4 KiB. Every text field of ``meta`` passes :func:`untrusted_text` (valid UTF-8 after any lone
surrogate is escaped, at most :data:`TEXT_LIMITS` characters: 2,000 for a message or traceback),
and unknown fields are dropped, so a record that reaches the writers holds at most
(cells + cases) × ~4.3 k characters of student text, whatever the job sent.
"""
from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MAGIC", "START", "TEXT_LIMITS", "untrusted_text", "encode_inputs", "Frame", "decode_frames"]

MAGIC = b"CKR1"
START = b"CKS1"      # the runner's first write, before any student code: the start handshake
_HEADER = struct.Struct("<Q")
_EOCD = struct.Struct("<4sHHHHIIH")
_MAX_ARRAYS = 16
_MAX_DIRECTORY = 4096
_MAX_META_CHARS = 32 << 10
_NUMERIC = "biufc"
TEXT_LIMITS = {"status": 32, "error_type": 100, "label": 200, "message": 2000, "trace": 2000}
"""Characters kept of each text field of a frame's ``meta`` (the rest is cut, marked)."""
_INT_FIELDS = ("q", "c", "cell", "n", "more")


def untrusted_text(value, limit: int) -> str:
    """``str(value)`` made safe to write in any encoding step: lone surrogates (``"\\ud800"``, or a
    file name that is not UTF-8) become backslash escapes, and at most ``limit`` characters are
    kept (a cut text ends with ``" ... (truncated)"``). Never raises."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - a hostile __str__
        text = "<unprintable>"
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        text = text[:max(0, limit - 16)] + " ... (truncated)"
    return text


def _bounded_meta(meta: dict) -> dict:
    """The fields of ``meta`` the grader reads, each of its type and bound; the rest dropped."""
    out = {}
    for k in _INT_FIELDS:
        if type(meta.get(k)) is int:
            out[k] = meta[k]
    if meta.get("done") is True:
        out["done"] = True
    if meta.get("kind") in ("array", "tuple"):
        out["kind"] = meta["kind"]
    if type(meta.get("elapsed")) in (int, float) and math.isfinite(meta["elapsed"]):
        out["elapsed"] = float(meta["elapsed"])
    for k, limit in TEXT_LIMITS.items():
        if k in meta:
            out[k] = untrusted_text(meta[k], limit)
    return out


def _check_directory(data: bytes) -> None:
    """Refuse a zip whose end record (no comment allowed) announces more members than a frame
    has, or a central directory larger than theirs, before :mod:`zipfile` reads it."""
    if len(data) < _EOCD.size:
        raise ValueError("not a zip")
    sig, disk, cd_disk, n_disk, n_total, cd_size, cd_off, comment = _EOCD.unpack_from(data, len(data) - _EOCD.size)
    if sig != b"PK\x05\x06" or comment or disk or cd_disk or n_disk != n_total:
        raise ValueError("the zip's end record is missing or unusual")
    if not 1 <= n_total <= 1 + _MAX_ARRAYS or cd_size > _MAX_DIRECTORY or cd_off + cd_size > len(data):
        raise ValueError(f"the zip directory announces {n_total} members in {cd_size} bytes")


def encode_inputs(args: dict, arrays: dict, prefix: str) -> dict:
    """JSON-able encoding of ``args``; arrays are added to ``arrays`` under keys ``prefix + n``."""

    def enc(v):
        if isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                raise TypeError("encode_inputs: object arrays cannot be sent to the sandbox")
            key = f"{prefix}{len(arrays)}"
            arrays[key] = v
            return {"npz": key}
        if isinstance(v, np.generic):
            key = f"{prefix}{len(arrays)}"
            arrays[key] = np.asarray(v)
            return {"npz": key, "scalar": True}
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            if isinstance(v, float) and not math.isfinite(v):
                key = f"{prefix}{len(arrays)}"
                arrays[key] = np.asarray(v)
                return {"npz": key, "scalar": True}
            return v
        if isinstance(v, tuple):
            return {"tuple": [enc(x) for x in v]}
        if isinstance(v, list):
            return {"list": [enc(x) for x in v]}
        raise TypeError(f"encode_inputs: inputs must be NumPy arrays, scalars or tuples/lists of them, "
                        f"got {type(v).__name__}")

    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        raise TypeError(f"encode_inputs: args must be a dict with str keys, got {type(args).__name__}")
    return {k: enc(v) for k, v in args.items()}


@dataclass
class Frame:
    meta: dict
    arrays: list = field(default_factory=list)


def _check_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> int:
    """Validate one ``.npy`` member from its header alone; return its data size."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"member {info.filename!r} is compressed")
    if info.file_size > budget:
        raise ValueError(f"member {info.filename!r} is larger than the frame")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"member {info.filename!r} has .npy version {version}")
        header_len = f.tell()
    name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
    if dtype.hasobject:
        raise ValueError(f"member {name!r} is an object array")
    kinds = "U" if name == "meta" else _NUMERIC
    if dtype.kind not in kinds:
        raise ValueError(f"member {name!r} has dtype {dtype}")
    if any((not isinstance(s, int)) or s < 0 for s in shape):
        raise ValueError(f"member {name!r} has shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != info.file_size - header_len:
        raise ValueError(f"member {name!r}: header says {nbytes} bytes, member holds {info.file_size - header_len}")
    return nbytes


def _load_frame(data: bytes, max_frame: int) -> Frame:
    _check_directory(data)
    zf = zipfile.ZipFile(io.BytesIO(data))
    infos = zf.infolist()
    allowed = {"meta.npy"} | {f"r{k}.npy" for k in range(_MAX_ARRAYS)}
    names = [i.filename for i in infos]
    if len(set(names)) != len(names) or not set(names) <= allowed or "meta.npy" not in names:
        raise ValueError(f"unexpected members {sorted(names)[:20]}")
    total = 0
    for info in infos:
        total += _check_member(zf, info, max_frame)
    if total > max_frame:
        raise ValueError("arrays larger than the frame")
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        meta_arr = z["meta"]
        if meta_arr.shape != () or meta_arr.dtype.itemsize > 4 * _MAX_META_CHARS:
            raise ValueError("bad meta")
        meta = json.loads(str(meta_arr[()]))
        if not isinstance(meta, dict):
            raise ValueError("meta is not an object")
        meta = _bounded_meta(meta)
        n = sum(1 for nm in names if nm != "meta.npy")
        if sorted(names) != sorted(["meta.npy"] + [f"r{k}.npy" for k in range(n)]):
            raise ValueError("result arrays are not numbered r0..r{n-1}")
        arrays = [z[f"r{k}"] for k in range(n)]
    for a in arrays:
        if a.dtype.hasobject or a.dtype.kind not in _NUMERIC:
            raise ValueError(f"array with dtype {a.dtype}")
    return Frame(meta, arrays)


def decode_frames(buf: bytes, *, max_frame: int, max_frames: int | None = None) -> tuple[list[Frame], list[str]]:
    """(frames, problems): the well-formed frames of ``buf`` in order, and why others were dropped.
    Decoding stops at the first framing error (what follows cannot be delimited) and after
    ``max_frames`` frames (what a lab can legitimately send: its answer cells + cases + 1)."""
    frames, problems, pos, seen = [], [], 0, 0
    while pos < len(buf):
        if max_frames is not None and seen >= max_frames:
            problems.append(f"more result frames than this lab's cells and cases ({max_frames}); the rest "
                            f"were ignored")
            break
        if buf[pos:pos + 4] != MAGIC or len(buf) - pos < 12:
            problems.append(f"garbage in the result channel at byte {pos}")
            break
        (n,) = _HEADER.unpack_from(buf, pos + 4)
        if n > max_frame:
            problems.append(f"a result frame of {n} bytes exceeds the limit of {max_frame}")
            break
        if pos + 12 + n > len(buf):
            problems.append("the last result frame is incomplete (the job ended while sending it)")
            break
        data = bytes(buf[pos + 12: pos + 12 + n])
        pos += 12 + n
        seen += 1
        try:
            frames.append(_load_frame(data, max_frame))
        except Exception as e:  # noqa: BLE001 - anything malformed is rejected, never trusted
            if len(problems) < 20:
                problems.append(f"a result frame was rejected ({type(e).__name__}: {untrusted_text(e, 200)})")
    return frames, problems
