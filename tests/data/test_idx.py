"""The IDX reader and writer on small files written here, raw and gzipped."""
from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from gpunet.data.idx import IDXError, encode_idx, read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def _sample(dtype, shape=(3, 4, 5)):
    rng = np.random.default_rng(7)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("compress", [False, True])
def test_roundtrip(tmp_path, dtype, compress):
    a = _sample(dtype)
    path = write_idx(tmp_path / "a.idx", a, compress=compress)
    assert path.read_bytes().startswith(b"\x1f\x8b") == compress
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable


def test_gzip_decided_by_magic_not_name(tmp_path):
    a = _sample(np.uint8, (2, 28, 28))
    raw_named_gz = tmp_path / "images.gz"
    raw_named_gz.write_bytes(encode_idx(a))           # raw bytes, .gz name
    gz_named_raw = tmp_path / "images-idx3-ubyte"
    gz_named_raw.write_bytes(gzip.compress(encode_idx(a)))  # gzip bytes, plain name
    np.testing.assert_array_equal(read_idx(raw_named_gz), a)
    np.testing.assert_array_equal(read_idx(gz_named_raw), a)


def test_write_idx_compress_default_follows_suffix(tmp_path):
    a = _sample(np.int16, (4,))
    assert write_idx(tmp_path / "x.gz", a).read_bytes()[:2] == b"\x1f\x8b"
    assert write_idx(tmp_path / "x", a).read_bytes()[:4] == bytes([0, 0, 0x0B, 1])


def test_header_is_big_endian_and_exact(tmp_path):
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    data = encode_idx(a)
    assert data[:4] == bytes([0, 0, 0x0C, 2])
    assert data[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert data[12:16] == (0).to_bytes(4, "big") and data[-4:] == (5).to_bytes(4, "big")
    assert len(data) == 12 + 6 * 4


def test_unsupported_dtype_is_refused(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_at_many_positions(tmp_path, compress):
    a = _sample(np.uint8, (3, 4, 5))
    full = encode_idx(a)  # 16-byte header + 60 data bytes
    for cut in [0, 1, 3, 4, 7, 15, 16, 17, 40, len(full) - 1]:
        p = tmp_path / f"cut{cut}"
        p.write_bytes(gzip.compress(full[:cut]) if compress else full[:cut])
        with pytest.raises(IDXError) as info:
            read_idx(p)
        msg = str(info.value)
        assert str(p) in msg
        if cut >= 16:  # full header: the message gives both byte counts
            assert "truncated" in msg and "60" in msg and str(cut - 16) in msg


def test_truncated_gzip_stream(tmp_path):
    a = _sample(np.uint8, (50, 28, 28))
    gz = gzip.compress(encode_idx(a))
    for cut in [2, 10, len(gz) // 2, len(gz) - 5, len(gz) - 1]:
        p = tmp_path / f"gz{cut}"
        p.write_bytes(gz[:cut])
        with pytest.raises(IDXError, match="gzip") as info:
            read_idx(p)
        assert str(p) in str(info.value)


def test_corrupt_gzip_crc(tmp_path):
    gz = bytearray(gzip.compress(encode_idx(_sample(np.uint8, (5, 5)))))
    gz[-6] ^= 0xFF  # inside the CRC32 trailer
    p = tmp_path / "crc.gz"
    p.write_bytes(bytes(gz))
    with pytest.raises(IDXError, match="gzip"):
        read_idx(p)


def test_trailing_bytes(tmp_path):
    a = _sample(np.float32, (2, 3))
    p = tmp_path / "trail"
    p.write_bytes(encode_idx(a) + b"\x00\x01\x02")
    with pytest.raises(IDXError, match="trailing") as info:
        read_idx(p)
    msg = str(info.value)
    assert str(p) in msg and "24" in msg and "27" in msg  # expected 24 data bytes, found 27


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04",
                                   b"\x00\x01\x08\x01"])
def test_bad_magic(tmp_path, magic):
    p = tmp_path / "bad"
    p.write_bytes(magic + (4).to_bytes(4, "big") + bytes(4))
    with pytest.raises(IDXError, match="magic") as info:
        read_idx(p)
    msg = str(info.value)
    assert magic.hex() in msg and "expected" in msg and str(p) in msg


def test_checksum(tmp_path):
    a = _sample(np.uint8, (4, 28, 28))
    p = write_idx(tmp_path / "a.gz", a)
    good = hashlib.sha256(encode_idx(a)).hexdigest()  # digest of the decompressed payload
    np.testing.assert_array_equal(read_idx(p, expected_sha256=good), a)
    np.testing.assert_array_equal(read_idx(p, expected_sha256=good.upper()), a)
    wrong = "0" * 64
    with pytest.raises(IDXError, match="sha256") as info:
        read_idx(p, expected_sha256=wrong)
    msg = str(info.value)
    assert str(p) in msg and good in msg and wrong in msg


def test_idx_error_is_value_error():
    assert issubclass(IDXError, ValueError)


def test_empty_dimension(tmp_path):
    a = np.zeros((0, 28, 28), dtype=np.uint8)
    b = read_idx(write_idx(tmp_path / "e", a))
    assert b.shape == (0, 28, 28)
