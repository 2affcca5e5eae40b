"""Shared test helpers: the dtype tolerance table, random data, the torch switch, and the
GPU tests' launch sizes."""

import importlib.util
import tracemalloc

import numpy as np
import pytest

#: One tolerance table for every comparison (kornia style): absolute and relative.
#: float32 is computed in float32 (as PyTorch) and compared with float64 references;
#: gradients w.r.t. the grid are scaled by the image size, hence the looser "grad"
#: entries.
TOL = {
    np.float64: {"value": dict(rtol=1e-12, atol=1e-12), "grad": dict(rtol=1e-10, atol=1e-10)},
    np.float32: {"value": dict(rtol=1e-5, atol=1e-5), "grad": dict(rtol=1e-4, atol=2e-4)},
}

DTYPES = [np.float32, np.float64]
MODES_2D = ["bilinear", "nearest", "bicubic"]
MODES_3D = ["bilinear", "nearest"]
PADDINGS = ["zeros", "border", "reflection"]

HAS_TORCH = importlib.util.find_spec("torch") is not None


def covering_pairs(dims):
    """(mode, padding) pairs in which every mode and every padding appears once:
    (bilinear, zeros), (nearest, border), (bicubic or bilinear, reflection)."""
    modes = MODES_2D if dims == 2 else MODES_3D
    n = max(len(modes), len(PADDINGS))
    return [(modes[i % len(modes)], PADDINGS[i % len(PADDINGS)]) for i in range(n)]


def dtype_matrix(dims_list=(2, 3)):
    """The broad test matrix as pytest params (dtype, dims, mode, padding): every
    (mode, padding) in float32 and the covering pairs in float64; by default only the
    covering pairs in float32 and 2-D bilinear/zeros in float64 (the rest marked slow,
    run by ``--all``). Each (dtype, mode, padding, point source) is a driver of its
    own that a test run compiles (seconds each); the arithmetic does not depend on the
    dtype beyond its precision, so float64 needs each branch once, not every
    combination."""
    cases = []
    for dims in dims_list:
        modes = MODES_2D if dims == 2 else MODES_3D
        pairs = {np.float32: [(m, p) for m in modes for p in PADDINGS]}
        pairs[np.float64] = covering_pairs(dims)
        for dtype, dtype_pairs in pairs.items():
            for m, p in dtype_pairs:
                name = np.dtype(dtype).name
                # float64 beyond 2-D bilinear/zeros, and float32 beyond the covering
                # pairs: under --all (finite differences in float64 check every mode and
                # padding in tests/test_gradients.py; each pair is its own driver per
                # dtype, seconds of compilation each)
                slow = dtype == np.float64 and (dims, m, p) != (2, "bilinear", "zeros")
                slow |= (m, p) not in covering_pairs(dims)
                marks = [pytest.mark.slow] if slow else []
                cases.append(
                    pytest.param(dtype, dims, m, p, id=f"{dims}d-{m}-{p}-{name}", marks=marks)
                )
    return cases


#: The files that compile the most drivers, collected first: ``--dist loadfile`` hands
#: whole files to the workers in collection order, so a heavy file collected last would
#: run alone at the end while the other worker idles; and two files that need the same
#: drivers at once would both compile them (the second one here loads them instead).
HEAVY_FIRST = [
    "test_torch_parity.py",  # then what it compiles is cached for test_nonfinite.py
    "test_bspline_modes.py",
    "test_layout.py",
    "test_wrap.py",
    "test_ndimage_scipy.py",
    "test_gradients.py",
    "test_integer_fill.py",
    "test_validation.py",
    "test_nonfinite.py",
    "test_nonfinite_warps.py",
    "test_cuda_ptx.py",
]


def pytest_addoption(parser):
    parser.addoption(
        "--all",
        action="store_true",
        help="also run the tests marked slow (exhaustive matrices; deselected by default)",
    )


def pytest_configure(config):
    # pytest-xdist would hand out the files largest first (by number of tests, not of
    # drivers compiled); keep the order above instead.
    config.option.loadscopereorder = False


def pytest_report_header(config):
    if not config.getoption("--all"):
        return "tests marked slow are deselected (exhaustive matrices): add --all to run them"
    return None


def pytest_collection_modifyitems(session, config, items):
    if not config.getoption("--all"):
        # Each extra (dtype, mode, padding, source, layout) compiles a driver of its own
        # (3-4 CPU-s): the default run keeps a covering set, --all the full products.
        slow = [item for item in items if item.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("slow")]
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable


def tol(dtype, kind="value"):
    return TOL[np.dtype(dtype).type][kind]


@pytest.fixture(autouse=True)
def every_thread(monkeypatch):
    """Every call runs on every thread, however small: the tests' arrays are tiny, and
    with the library's grain size they would all run on one thread (and so never test
    the banded, multi-threaded paths). tests/test_threads.py tests the grain size."""
    from stn_numba import _cpu

    monkeypatch.setattr(_cpu, "GRAIN", 1)


@pytest.fixture
def small_launches(monkeypatch):
    """GPU launches shrunk to 4 threads × at most 3 blocks, so that the GPU tests' tiny
    arrays still run on several blocks, through the grid-stride loops and the edge
    guards (tests/test_cuda_*.py use it on every test). Returns ``stn_numba._cuda``, for
    a test that sets other launch sizes with ``monkeypatch``."""
    from stn_numba import _cuda

    monkeypatch.setattr(_cuda, "THREADS_PER_BLOCK", 4)
    monkeypatch.setattr(_cuda, "MAX_BLOCKS", 3)
    return _cuda


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_theta(rng, n, dims, dtype=np.float64, strength=0.3):
    """Random affine θ near the identity: (n, 2, 3) or (n, 3, 4)."""
    eye = np.eye(dims, dims + 1)
    return (eye[None] + strength * rng.standard_normal((n, dims, dims + 1))).astype(dtype)


def peak_extra(fn, tries=3):
    """(result, peak bytes allocated during ``fn()`` beyond its results), the least of
    ``tries`` measurements: tracemalloc sees every thread's allocations, and another
    thread of the process (pytest-xdist's messaging) may allocate during one of them,
    where the call's own allocations are the same each time."""
    fn()  # compile and warm outside the measurement
    best = None
    for _ in range(tries):
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            result = fn()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        arrays = result if isinstance(result, tuple) else (result,)
        extra = peak - sum(a.nbytes for a in arrays if a is not None)
        best = extra if best is None else min(best, extra)
    return result, best
