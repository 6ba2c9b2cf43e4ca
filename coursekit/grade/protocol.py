"""Parent side of the data-only channel with the sandbox (the child side is ``_runner.py``).

* :func:`encode_inputs` turns a case's keyword arguments (NumPy arrays, NumPy/Python scalars,
  tuples/lists of them) into JSON plus arrays for ``inputs.npz``.
* :func:`decode_frames` splits the bytes read from the result pipe into frames
  (``b"CKR1" + uint64-LE length + npz``) and loads each with ``allow_pickle=False`` after checking,
  *before* NumPy allocates anything, that the zip has only stored (uncompressed) ``.npy`` members
  whose headers describe numeric (or, for ``meta``, unicode) arrays whose byte sizes add up. A
  frame that fails any check is dropped with a reason; nothing the job sends is ever unpickled,
  followed as a path, or trusted beyond "these are the arrays your function returned".
"""
from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MAGIC", "encode_inputs", "Frame", "decode_frames"]

MAGIC = b"CKR1"
_HEADER = struct.Struct("<Q")
_MAX_ARRAYS = 16
_MAX_META_CHARS = 64 << 10
_NUMERIC = "biufc"


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
        n = sum(1 for nm in names if nm != "meta.npy")
        if sorted(names) != sorted(["meta.npy"] + [f"r{k}.npy" for k in range(n)]):
            raise ValueError("result arrays are not numbered r0..r{n-1}")
        arrays = [z[f"r{k}"] for k in range(n)]
    for a in arrays:
        if a.dtype.hasobject or a.dtype.kind not in _NUMERIC:
            raise ValueError(f"array with dtype {a.dtype}")
    return Frame(meta, arrays)


def decode_frames(buf: bytes, *, max_frame: int) -> tuple[list[Frame], list[str]]:
    """(frames, problems): every well-formed frame of ``buf`` in order, and why others were dropped.
    Decoding stops at the first framing error (what follows cannot be delimited)."""
    frames, problems, pos = [], [], 0
    while pos < len(buf):
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
        try:
            frames.append(_load_frame(data, max_frame))
        except Exception as e:  # noqa: BLE001 - anything malformed is rejected, never trusted
            problems.append(f"a result frame was rejected ({type(e).__name__}: {str(e)[:200]})")
    return frames, problems
