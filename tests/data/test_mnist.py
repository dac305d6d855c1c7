"""The MNIST loader on small fake IDX files: lookup rules, errors, caching, download."""
from __future__ import annotations

import hashlib
import importlib
import urllib.error

import numpy as np
import pytest

from gpunet.data import Dataset, IDXError, mnist
from gpunet.data.idx import encode_idx, write_idx

# the submodule; the name gpunet.data.mnist is the function
mnist_mod = importlib.import_module("gpunet.data.mnist")
N = {"train": 40, "test": 15}


def _fake_arrays(split):
    rng = np.random.default_rng(1 if split == "train" else 2)
    images = rng.integers(0, 256, size=(N[split], 28, 28), dtype=np.uint8)
    labels = (np.arange(N[split]) * 7 % 10).astype(np.uint8)
    return images, labels


def _write_fake(folder, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for split, (img_name, lbl_name, _) in mnist_mod.SPLITS.items():
        images, labels = _fake_arrays(split)
        write_idx(folder / (img_name + suffix), images, compress=compress)
        write_idx(folder / (lbl_name + suffix), labels, compress=compress)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated GPUNET_DATA and GPUNET_CACHE, both empty folders."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    cache.mkdir()
    monkeypatch.setenv("GPUNET_DATA", str(data))
    monkeypatch.setenv("GPUNET_CACHE", str(cache))
    return data, cache


@pytest.mark.parametrize("split", ["train", "test"])
def test_loads_fake_files_from_gpunet_data(env, split):
    data, _ = env
    _write_fake(data / "mnist")
    images, labels = _fake_arrays(split)
    ds = mnist(split, verify=False)
    assert isinstance(ds, Dataset) and len(ds) == N[split]
    assert ds.x.dtype == np.float32 and ds.x.shape == (N[split], 784)
    assert ds.y.dtype == np.int64 and ds.y.shape == (N[split],)
    np.testing.assert_array_equal(ds.y, labels)
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_allclose(ds.x, images.reshape(-1, 784) / 255.0, rtol=1e-6)
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    assert ds.source == str((data / "mnist").resolve())
    x, y = ds
    assert x is ds.x and y is ds.y


def test_checksums_are_verified_by_default(env):
    _write_fake(env[0] / "mnist")
    with pytest.raises(IDXError, match="sha256") as info:
        mnist("test")
    assert mnist_mod.SHA256["t10k-images-idx3-ubyte"] in str(info.value)


def test_raw_files_and_root_argument(tmp_path, env):
    _write_fake(env[0] / "mnist")  # GPUNET_DATA holds one copy ...
    other = tmp_path / "other"
    _write_fake(other / "mnist", compress=False)  # ... root= points at another, uncompressed
    (other / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(np.full(15, 3, np.uint8)))
    ds = mnist("test", root=other, verify=False)
    assert ds.source == str((other / "mnist").resolve())
    assert (ds.y == 3).all()


def test_root_may_hold_the_files_directly(tmp_path, env):
    _write_fake(tmp_path / "flat")
    ds = mnist("train", root=tmp_path / "flat", verify=False)
    assert len(ds) == N["train"] and ds.source == str((tmp_path / "flat").resolve())


def test_cache_folder_when_no_root(env, tmp_path, monkeypatch):
    monkeypatch.delenv("GPUNET_DATA")
    _write_fake(env[1] / "mnist")
    assert len(mnist("test", verify=False)) == N["test"]
    mine = tmp_path / "mycache"
    with pytest.raises(FileNotFoundError, match="mycache"):
        mnist("test", cache_dir=mine, verify=False)
    _write_fake(mine / "mnist")
    assert mnist("test", cache_dir=mine, verify=False).source == str((mine / "mnist").resolve())


def test_normalize_and_flatten(env):
    _write_fake(env[0] / "mnist")
    images, _ = _fake_arrays("test")
    sym = mnist("test", normalize="symmetric", verify=False)
    np.testing.assert_allclose(sym.x, images.reshape(-1, 784) / 127.5 - 1, rtol=1e-6, atol=1e-6)
    raw = mnist("test", normalize=None, flatten=False, verify=False)
    assert raw.x.shape == (N["test"], 1, 28, 28) and raw.x.dtype == np.float32
    np.testing.assert_array_equal(raw.x[:, 0], images.astype(np.float32))
    with pytest.raises(ValueError, match="normalize"):
        mnist("test", normalize="zscore", verify=False)
    with pytest.raises(ValueError, match="split"):
        mnist("validation")


def test_decoded_arrays_are_cached(env, monkeypatch):
    _write_fake(env[0] / "mnist")
    calls = []
    real = mnist_mod.read_idx
    monkeypatch.setattr(mnist_mod, "read_idx", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    mnist_mod._load_arrays.cache_clear()
    a = mnist("test", verify=False)
    b = mnist("test", verify=False)
    assert len(calls) == 2  # images + labels, read once
    a.x[0, 0] = 123.0  # each Dataset owns its x; the cached uint8 arrays are read-only
    assert b.x[0, 0] != 123.0
    with pytest.raises(ValueError):
        a.images[0, 0, 0] = 1
    # a rewritten file is read again
    write_idx(env[0] / "mnist" / "t10k-labels-idx1-ubyte.gz", np.full(N["test"], 9, np.uint8))
    assert (mnist("test", verify=False).y == 9).all() and len(calls) == 4


def test_missing_data_message(env):
    data, _ = env
    with pytest.raises(FileNotFoundError) as info:
        mnist("train")
    msg = str(info.value)
    for needle in ["GPUNET_DATA", "root=", "download=True", "mnist_sample",
                   str((data / "mnist").resolve() / "train-images-idx3-ubyte"),
                   str((data / "mnist").resolve() / "train-labels-idx1-ubyte")]:
        assert needle in msg, needle


def test_fallback_to_sample(env, capsys):
    ds = mnist("test", fallback_to_sample=True)
    assert ds.source == "bundled sample" and len(ds) == 1000
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("gpunet: full MNIST not found (searched ")
    assert str((env[0] / "mnist").resolve()) in err
    assert err.endswith("using the bundled sample (5000 training and 1000 test images)")
    mnist("train", fallback_to_sample=True)  # the note is printed once, not once per split
    assert capsys.readouterr().err == ""


# --- download, with the network replaced by local bytes -------------------------------------

def _serve(monkeypatch, payloads, failing_mirrors=()):
    """Replace the fetcher: serve ``payloads[name]`` (bytes) for any mirror not failing."""
    fetched = []

    def fetch(url, timeout=60.0):
        fetched.append(url)
        if any(url.startswith(m) for m in failing_mirrors):
            raise urllib.error.URLError("unreachable (test)")
        return payloads[url.rsplit("/", 1)[1].removesuffix(".gz")]

    monkeypatch.setattr(mnist_mod, "_fetch", fetch)
    return fetched


def _fake_payloads(monkeypatch):
    """gzip payloads of the fake files, and SHA256 constants that match them."""
    import gzip

    payloads, digests = {}, {}
    for split, (img_name, lbl_name, _) in mnist_mod.SPLITS.items():
        for name, arr in zip((img_name, lbl_name), _fake_arrays(split)):
            raw = encode_idx(arr)
            payloads[name] = gzip.compress(raw)
            digests[name] = hashlib.sha256(raw).hexdigest()
    monkeypatch.setattr(mnist_mod, "SHA256", digests)
    return payloads


def test_download_good(env, monkeypatch, capsys):
    _, cache = env
    monkeypatch.delenv("GPUNET_DATA")
    payloads = _fake_payloads(monkeypatch)
    fetched = _serve(monkeypatch, payloads, failing_mirrors=[mnist_mod.MIRRORS[0]])
    ds = mnist("test", download=True)
    images, labels = _fake_arrays("test")
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.y, labels)
    folder = cache / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert len(fetched) == 4 and fetched[1].startswith(mnist_mod.MIRRORS[1])
    assert "downloading" in capsys.readouterr().err
    # files present: a second call fetches nothing
    mnist("test", download=True)
    assert len(fetched) == 4


@pytest.mark.parametrize("corruption", ["wrong_content", "truncated_gzip", "html"])
def test_download_corrupt_is_rejected(env, monkeypatch, corruption):
    data, _ = env
    payloads = _fake_payloads(monkeypatch)
    name = "t10k-images-idx3-ubyte"
    if corruption == "wrong_content":
        payloads[name] = encode_idx(np.zeros((N["test"], 28, 28), np.uint8))
    elif corruption == "truncated_gzip":
        payloads[name] = payloads[name][: len(payloads[name]) // 2]
    else:
        payloads[name] = b"<html>Access denied</html>"
    fetched = _serve(monkeypatch, payloads)
    with pytest.raises(OSError, match=name) as info:
        mnist("test", download=True)
    assert all(m in str(info.value) for m in mnist_mod.MIRRORS)
    assert sum(name in u for u in fetched) == len(mnist_mod.MIRRORS)  # every mirror tried
    left = sorted(p.name for p in (data / "mnist").iterdir())
    assert not any(name in p for p in left), left  # no corrupt file, no .part left behind
    assert not any(p.endswith(".part") for p in left)


def test_download_real_checksums_reject_fake_data(env, monkeypatch):
    import gzip

    payloads = {n: gzip.compress(encode_idx(np.zeros((3, 28, 28) if "images" in n else 3,
                                                     np.uint8))) for n in mnist_mod.SHA256}
    _serve(monkeypatch, payloads)
    with pytest.raises(OSError, match="sha256"):
        mnist("train", download=True)
    assert list((env[0] / "mnist").iterdir()) == []
