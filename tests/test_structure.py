"""The structure the code relies on: one op registry resolving every op to its tier, kernel
specifications that depend on nothing, shared CUDA C helpers, no import cycles among the
callbacks."""
import ast
import re
from pathlib import Path

import numpy as np
import pytest

from gpunet import backend
from gpunet.ops import registry

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"
OP_NAMES = sorted(p.name for p in KERNELS.iterdir() if (p / "reference.py").is_file())


def test_every_kernel_folder_is_a_registered_op():
    assert OP_NAMES == sorted(registry.OPS)
    for name in OP_NAMES:
        for tier in registry.TIERS:
            file = {"cupy": "cupy_tier"}.get(tier, tier)
            assert (KERNELS / name / f"{file}.py").is_file(), f"kernels/{name} lacks its {tier} tier"


EXPECTED_CPU = {"auto": "numba_cpu", "reference": "reference", "numba": "numba_cpu", "cupy": None}


@pytest.mark.parametrize("mode", registry.MODES)
@pytest.mark.parametrize("op", OP_NAMES)
def test_dispatch_table_on_numpy_arrays(op, mode, monkeypatch):
    x = np.zeros(4, np.float32)
    monkeypatch.setenv("GPUNET_KERNELS", mode)
    registry.reset()
    try:
        want = EXPECTED_CPU[mode]
        if want is None:
            with pytest.raises(RuntimeError, match="GPUNET_KERNELS=cupy forces the CUDA C tier, which needs GPU arrays"):
                registry.OPS[op].select(x)
        else:
            module = registry.OPS[op].select(x)
            assert module.__name__ == f"gpunet.kernels.{op}.{want}"
            assert registry.OPS[op].select(x) is module  # resolved once, then cached
            assert registry.select_tier(x) == want
    finally:
        monkeypatch.delenv("GPUNET_KERNELS")
        registry.reset()


@pytest.mark.parametrize("op", OP_NAMES)
def test_a_forced_tier_that_cannot_run_says_why(op, monkeypatch):
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    x = np.zeros(4, np.float32)
    for tier in ("numba_cuda", "cupy"):
        with pytest.raises(RuntimeError, match=f"kernel tier '{tier}' needs GPU \\(CuPy\\) arrays"):
            registry.OPS[op].select(x, tier=tier)
    with pytest.raises(ValueError, match="tier must be one of"):
        registry.OPS[op].select(x, tier="fast")
    for tier in ("reference", "numba_cpu"):
        assert registry.OPS[op].select(x, tier=tier).__name__ == f"gpunet.kernels.{op}.{tier}"


def test_the_mode_is_read_at_use_and_reset_not_per_call(monkeypatch):
    x = np.zeros(4, np.float32)
    op = registry.OPS["dropout"]
    before = op.select(x)
    monkeypatch.setenv("GPUNET_KERNELS", "reference")
    try:
        assert op.select(x) is before  # not read per call
        backend.use(backend.active())  # choosing a backend reads it again
        assert op.select(x).__name__.endswith(".reference") and registry.mode() == "reference"
        monkeypatch.setenv("GPUNET_KERNELS", "fastest")
        with pytest.raises(ValueError, match=r"GPUNET_KERNELS: expected one of .* got 'fastest'"):
            registry.reset()
    finally:
        monkeypatch.delenv("GPUNET_KERNELS")
        registry.reset()
    assert op.select(x) is before


@pytest.mark.gpu
def test_mixed_devices_are_refused():
    import cupy

    with pytest.raises(ValueError, match="arrays on different devices"):
        registry.OPS["ema"].select(np.zeros(2), cupy.zeros(2))


def _absolute_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


@pytest.mark.parametrize("path", sorted(KERNELS.glob("*/reference.py")) + sorted((KERNELS / "common").glob("*.py")),
                         ids=lambda p: p.relative_to(KERNELS).as_posix())
def test_the_specification_depends_on_nothing_of_gpunet(path):
    used = [m for m in _absolute_imports(path) if m.split(".")[0] == "gpunet"]
    assert not used, f"{path.relative_to(ROOT)} imports {used}"


def test_the_cuda_sources_share_one_copy_of_the_vector_helpers():
    own = re.compile(r"void (load4|store4|load8|store8)\(|struct Vec\b")
    for cu in sorted(KERNELS.rglob("*.cu")):
        text = cu.read_text()
        assert not own.search(text), f"{cu.relative_to(ROOT)} defines its own 16-byte helpers; include vec.cuh"
    assert own.search((KERNELS / "common" / "vec.cuh").read_text())


def test_the_cuda_tiers_share_one_device_plumbing():
    for tier in sorted(KERNELS.glob("*/cupy_tier.py")):
        text = tier.read_text()
        assert "RawModule(" not in text and "class CupyDevice" not in text, tier
        assert "from ..common.cupy import" in text, tier


def test_no_op_imports_another_ops_helpers():
    for path in sorted(KERNELS.glob("*/*.py")):
        text = path.read_text()
        assert not re.search(r"from \.\.(?!common\b)\w+\.", text), f"{path.relative_to(ROOT)} imports another op's module"
    for path in sorted((ROOT / "gpunet" / "ops").glob("*.py")):
        private = re.findall(r"from \.\w+ import [^\n]*\b_\w+", path.read_text())
        assert not private, f"{path.relative_to(ROOT)} imports private helpers: {private}"


def _module_imports(path: Path, package: str):
    """The gpunet modules ``path`` imports at its top level (relative imports resolved)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            if node.module:
                out.add(".".join(base + [node.module]))
            else:
                out.update(".".join(base + [a.name]) for a in node.names)
    return out


def test_every_cpu_kernel_compiles_with_the_shared_numba_options():
    """Numba CPU code goes through kernels/common/jit.py (IEEE division: loops that divide vectorize)."""
    offenders = []
    for path in sorted(KERNELS.rglob("*.py")):
        if "numba_cuda" in path.name or path.name == "jit.py":
            continue
        text = path.read_text()
        if re.search(r"^from numba import .*\bnjit\b|numba\.njit\(|@numba\.njit", text, re.M):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"compile with kernels/common/jit.njit instead of numba.njit: {offenders}"


def test_no_import_cycle_among_diagnostics_and_the_callbacks():
    names = ["gpunet.diagnostics", "gpunet.train.callback", "gpunet.train.callbacks", "gpunet.train.terminate",
             "gpunet.train.averaging", "gpunet.train.diagnostics", "gpunet.train.trainer"]
    graph = {}
    for name in names:
        path = ROOT.joinpath(*name.split(".")).with_suffix(".py")
        graph[name] = _module_imports(path, name.rsplit(".", 1)[0]) & set(names)

    def reach(start, node, seen):
        for nxt in graph[node]:
            if nxt == start:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reach(start, nxt, seen):
                    return True
        return False

    cyclic = [n for n in names if reach(n, n, set())]
    assert not cyclic, f"import cycle through {cyclic}: {graph}"


def test_gpunet_checks_debug_runs_the_checks_a_layer_already_made(monkeypatch):
    import gpunet as gn
    from gpunet.ops import batchnorm as bn_ops

    names = []
    real = bn_ops._check_channel
    monkeypatch.setattr(bn_ops, "_check_channel", lambda v, name, *a: names.append(name) or real(v, name, *a))
    layer = gn.BatchNorm1d(4)
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    layer(x)
    assert names == []  # the layer checked its input and owns the other arrays
    monkeypatch.setenv("GPUNET_CHECKS", "debug")
    registry.reset()
    try:
        assert registry.DEBUG
        layer(x)
        assert names == ["weight", "bias", "running_mean", "running_var"]
        monkeypatch.setenv("GPUNET_CHECKS", "all")
        with pytest.raises(ValueError, match="GPUNET_CHECKS: expected 'debug' or unset, got 'all'"):
            registry.reset()
    finally:
        monkeypatch.delenv("GPUNET_CHECKS")
        registry.reset()
    assert not registry.DEBUG
    with pytest.raises(ValueError, match=r"batch_norm_train: weight must be an array of shape \(4,\)"):
        bn_ops.batch_norm_train(x, np.ones(3, np.float32), np.zeros(4, np.float32))  # called directly: checked
