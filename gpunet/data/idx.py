"""Reading and writing IDX files (the format of MNIST), raw or gzip-compressed.

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the array's bytes in C order, big-endian. ``read_idx`` checks every part
of that, and optionally the SHA-256 of the (decompressed) file, and raises ``IDXError`` naming
the file and what was expected and found.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype code -> big-endian NumPy dtype
_CODES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {dt.newbyteorder("=").str[1:]: code for code, dt in _CODES.items()}  # "u1" -> 0x08


class IDXError(ValueError):
    """A file that is not a well-formed IDX file, or whose checksum is wrong."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_payload(path) -> bytes:
    """The IDX bytes of ``path``, decompressed when the file starts with the gzip magic."""
    path = Path(path)
    raw = path.read_bytes()
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, zlib.error, OSError) as exc:  # truncated stream, bad CRC, bad header
        raise IDXError(f"{path}: corrupt or truncated gzip stream "
                       f"({len(raw)} compressed bytes): {type(exc).__name__}: {exc}") from exc


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into a native-byte-order array."""
    if len(data) < 4:
        raise IDXError(f"{name}: expected at least a 4-byte IDX magic number, "
                       f"found {len(data)} bytes")
    zero0, zero1, code, ndim = data[:4]
    if zero0 != 0 or zero1 != 0 or code not in _CODES:
        raise IDXError(f"{name}: bad IDX magic number 0x{data[:4].hex()}: expected 0x0000 "
                       f"followed by a dtype code in {{{', '.join(hex(c) for c in _CODES)}}} "
                       "and the number of dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{name}: truncated header: expected {header} bytes for {ndim} "
                       f"dimensions, found {len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _CODES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes"
        raise IDXError(f"{name}: {what}: shape {dims} of {dtype.newbyteorder('=').name} needs "
                       f"{expected} data bytes after the {header}-byte header, found {actual}")
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def read_idx(path, expected_sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip, told apart by the magic bytes) into a NumPy array.

    ``expected_sha256``: hex digest of the decompressed file; a mismatch raises ``IDXError``.
    """
    data = read_payload(path)
    arr = parse_idx(data, str(path))
    if expected_sha256 is not None:
        got = sha256_hex(data)
        if got != expected_sha256.lower():
            raise IDXError(f"{path}: sha256 mismatch of the decompressed payload: expected "
                           f"{expected_sha256.lower()}, got {got}")
    return arr


def encode_idx(array) -> bytes:
    """The IDX bytes (uncompressed) of a NumPy array."""
    arr = np.asarray(array)
    code = _CODE_OF.get(arr.dtype.str[1:])
    if code is None:
        raise TypeError(f"encode_idx(array): dtype {arr.dtype} has no IDX code; use one of "
                        "uint8, int8, int16, int32, float32, float64")
    if arr.ndim > 255:
        raise ValueError(f"encode_idx(array): at most 255 dimensions, got {arr.ndim}")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(arr, dtype=_CODES[code]).tobytes()


def write_idx(path, array, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (atomically); gzip it when ``compress`` is True, or
    when ``compress`` is None and the name ends in ".gz". Returns the path."""
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    data = encode_idx(array)
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
