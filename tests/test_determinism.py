"""The CPU backward is bit-identical for any thread count and from run to run.

The input gradient is a scatter: many output pixels add into the same input pixel.
The CPU driver gives each parallel task its own band of input rows (depth slices in
3-D) and makes every task walk the output pixels of its sample in raster order, so
each input element receives its contributions in the same order whatever the
number of bands — and the number of bands follows ``numba.get_num_threads()``
(one band per thread when the batch is smaller than the thread count, i.e. the
work of a single image is split). θ's gradient is reduced from per-row float64
partial sums in a fixed order.

A batch at least as large as the thread count gets one band per sample (adding in the
single-thread order): the batch cases below therefore force several bands per sample
(in-process, where the machine may have as few threads as samples) or run in a fresh
process with more threads than samples.

The θ's below zoom in (scale ~0.3, output much denser than the input region it
reads), so dozens of output pixels scatter into each input pixel and the order of
the additions matters in the last bits; a zoom-out with rotation sends points
outside the input, where the padding (folds, clips) maps several output pixels onto
the same input pixels and the row spans used to skip bands are non-trivial.
"""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from conftest import PADDINGS

import stn_numba as stn
from stn_numba import _cpu

MAX_THREADS = numba.config.NUMBA_NUM_THREADS

needs_threads = pytest.mark.skipif(
    MAX_THREADS < 2,
    reason=f"NUMBA_NUM_THREADS={MAX_THREADS}: no second thread to compare against",
)

THETAS = {
    # zoom in: the whole output reads a small patch -> heavy scatter collisions
    "zoom_in": (np.array([[0.3, 0.05, 0.1], [-0.04, 0.28, -0.05]]), np.array([0.07, -0.03])),
    # zoom out and rotate: many points outside, padding folds and clips
    "zoom_out": (np.array([[1.3, -0.6, 0.2], [0.7, 1.2, -0.15]]), np.array([0.1, 0.2])),
}


def theta_2d(kind, n, dtype):
    t, _ = THETAS[kind]
    thetas = [t + 0.01 * k for k in range(n)]  # a different θ per sample
    return np.stack(thetas).astype(dtype)


def theta_3d(kind, n, dtype):
    t, extra = THETAS[kind]
    th = np.zeros((n, 3, 4))
    for k in range(n):
        th[k, :2, :2] = t[:, :2]
        th[k, :2, 3] = t[:, 2] + 0.01 * k
        th[k, 2, 2] = t[0, 0]
        th[k, :2, 2] = extra
        th[k, 2, :2] = 0.5 * extra
        th[k, 2, 3] = -0.02 * k
    return th.astype(dtype)


@pytest.fixture
def threads():
    """Restore the thread count whatever the test did."""
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


def run_at(nthreads, fn):
    numba.set_num_threads(nthreads)
    try:
        return fn()
    finally:
        numba.set_num_threads(MAX_THREADS)


#: Bands per sample, at least, of the multi-thread runs of a batch (N2 below). The
#: thread count alone does not split a batch's images where the batch has as many
#: samples as there are threads (2 on a 2-core machine: each task takes a whole sample
#: and adds in the single-thread order, one band compared with itself). 3: more tasks
#: than threads on 2 cores, and bands of unequal sizes.
BATCH_BANDS = 3


def assert_deterministic(fn, min_bands=1):
    """fn() -> tuple of arrays; equal bit for bit at 1 thread (one band), at all threads,
    and twice. ``min_bands``: the multi-thread runs split every sample into at least this
    many bands, whatever the thread count gives (:func:`stn_numba._cpu.bands`)."""
    ref = run_at(1, fn)
    real_bands = _cpu.bands
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_cpu, "bands", lambda n, rows: max(real_bands(n, rows), min(rows, min_bands)))
        first = run_at(MAX_THREADS, fn)
        second = run_at(MAX_THREADS, fn)
    for a, b, c in zip(ref, first, second):
        assert a is not None
        np.testing.assert_array_equal(b, a, err_msg="1 thread vs all threads")
        np.testing.assert_array_equal(c, b, err_msg="run to run")
    return ref


def problem(kind, dims, n, channels, spatial, dtype, seed=7):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, channels, *spatial)).astype(dtype)
    gout = rng.standard_normal((n, channels, *spatial)).astype(dtype)
    theta = (theta_2d if dims == 2 else theta_3d)(kind, n, dtype)
    grid = stn.affine_grid(theta, x.shape, False)
    grid = (grid + 0.003 * rng.standard_normal(grid.shape)).astype(dtype)  # irregular points
    return x, gout, theta, grid


#: The banding, hence the determinism, does not depend on the dtype: every padding in
#: float32, float64 with zeros padding (one dtype for the broad matrix: each case
#: compiles its own drivers).
DTYPE_PADDINGS = [(np.float32, p) for p in PADDINGS] + [(np.float64, "zeros")]
#: 3-D: border under --all (its float32 trilinear backward is compiled for it alone)
DTYPE_PADDINGS_3D = [
    pytest.param(d, p, marks=[pytest.mark.slow] if p == "border" else []) for d, p in DTYPE_PADDINGS
]


def _ids(v):
    return np.dtype(v).name if isinstance(v, type) else str(v)


#: N1: the thread count's bands split the single image. N2: the bands of every sample
#: of a batch (which task takes which sample and band), at least BATCH_BANDS of them.
SHAPES_2D = {"N1": (1, 2, (64, 80)), "N2": (2, 1, (48, 40))}
SHAPES_3D = {"N1": (1, 2, (8, 12, 10)), "N2": (2, 1, (8, 12, 10))}
MIN_BANDS = {"N1": 1, "N2": BATCH_BANDS}


@needs_threads
@pytest.mark.usefixtures("threads")
class TestThreadCountInvariance:
    @pytest.mark.parametrize("dtype,padding", DTYPE_PADDINGS, ids=_ids)
    @pytest.mark.parametrize("kind", list(THETAS))
    @pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
    @pytest.mark.parametrize("batch", list(SHAPES_2D))
    def test_grid_sample_2d(self, batch, mode, padding, kind, dtype):
        n, c, spatial = SHAPES_2D[batch]
        x, gout, _, grid = problem(kind, 2, n, c, spatial, dtype)
        gi, gg = assert_deterministic(
            lambda: stn.grid_sample_backward(gout, x, grid, mode, padding, False),
            MIN_BANDS[batch],
        )
        assert np.abs(gi).max() > 0 and np.abs(gg).max() > 0

    @pytest.mark.parametrize("dtype,padding", DTYPE_PADDINGS, ids=_ids)
    @pytest.mark.parametrize("kind", list(THETAS))
    @pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
    @pytest.mark.parametrize("batch", list(SHAPES_2D))
    def test_warp_affine_2d(self, batch, mode, padding, kind, dtype):
        n, c, spatial = SHAPES_2D[batch]
        x, gout, theta, _ = problem(kind, 2, n, c, spatial, dtype)
        gi, gt = assert_deterministic(
            lambda: stn.warp_affine_backward(
                gout, x, theta, mode=mode, padding_mode=padding, align_corners=True
            ),
            MIN_BANDS[batch],
        )
        assert np.abs(gi).max() > 0 and np.abs(gt).max() > 0

    @pytest.mark.parametrize("dtype,padding", DTYPE_PADDINGS, ids=_ids)
    @pytest.mark.parametrize("kind", list(THETAS))
    @pytest.mark.parametrize("batch", list(SHAPES_3D))
    def test_grid_sample_3d(self, batch, padding, kind, dtype):
        n, c, spatial = SHAPES_3D[batch]
        x, gout, _, grid = problem(kind, 3, n, c, spatial, dtype)
        gi, gg = assert_deterministic(
            lambda: stn.grid_sample_backward(gout, x, grid, "bilinear", padding, True),
            MIN_BANDS[batch],
        )
        assert np.abs(gi).max() > 0 and np.abs(gg).max() > 0

    @pytest.mark.parametrize("dtype,padding", DTYPE_PADDINGS_3D, ids=_ids)
    @pytest.mark.parametrize("kind", list(THETAS))
    @pytest.mark.parametrize("batch", list(SHAPES_3D))
    def test_warp_affine_3d(self, batch, padding, kind, dtype):
        n, c, spatial = SHAPES_3D[batch]
        x, gout, theta, _ = problem(kind, 3, n, c, spatial, dtype)
        gi, gt = assert_deterministic(
            lambda: stn.warp_affine_backward(
                gout, x, theta, mode="bilinear", padding_mode=padding, align_corners=False
            ),
            MIN_BANDS[batch],
        )
        assert np.abs(gi).max() > 0 and np.abs(gt).max() > 0


def test_collisions_are_real():
    """The zoom-in problem does make the scatter order matter: summing one input
    pixel's contributions in another order changes its last bits somewhere, so
    the bit-identity above is not trivially true."""
    x, gout, theta, _ = problem("zoom_in", 2, 1, 1, (64, 80), np.float32)
    grid = stn.affine_grid(theta, x.shape, False)
    gi_fwd, _ = stn.grid_sample_backward(gout, x, grid, grid_grad=False)
    # The same scatter with the output pixels visited in reverse raster order.
    gi_rev, _ = stn.grid_sample_backward(
        gout[..., ::-1, ::-1].copy(), x, grid[:, ::-1, ::-1].copy(), grid_grad=False
    )
    np.testing.assert_allclose(gi_rev, gi_fwd, rtol=1e-4, atol=1e-4)
    assert not np.array_equal(gi_rev, gi_fwd)


#: 2, 3 and the maximum, as far as NUMBA_NUM_THREADS allows.
BAND_THREADS = sorted({t for t in (2, 3, MAX_THREADS) if t <= MAX_THREADS}) or [2]


@needs_threads
@pytest.mark.usefixtures("threads")
@pytest.mark.parametrize("nthreads", BAND_THREADS)
def test_band_counts_agree_up_to_max(nthreads):
    """2, 3 and NUMBA_NUM_THREADS threads (as many as are allowed) give the bits of
    one thread on a single image (N=1: the bands split the image itself)."""
    x, gout, theta, grid = problem("zoom_out", 2, 1, 2, (64, 80), np.float64)
    ref = run_at(1, lambda: stn.grid_sample_backward(gout, x, grid, "bicubic", "reflection"))
    got = run_at(nthreads, lambda: stn.grid_sample_backward(gout, x, grid, "bicubic", "reflection"))
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(b, a)


def fresh_process_cases():
    """Backward results of a few problems, keyed by name: one image (N1; the bands split
    it) and a batch of two (N2; more threads than samples: several bands per sample)."""
    res = {}
    for dims, spatial in [(2, (64, 80)), (3, (8, 12, 10))]:
        for kind in THETAS:
            for n, c in ((1, 2), (2, 1)):
                x, gout, theta, grid = problem(kind, dims, n, c, spatial, np.float32)
                gi, gg = stn.grid_sample_backward(gout, x, grid, "bilinear", "reflection")
                # reflection: drivers the in-process tests compile too (3-D border's
                # float32 backward would be compiled for this test alone)
                wi, wt = stn.warp_affine_backward(gout, x, theta, padding_mode="reflection")
                for name, a in (("gi", gi), ("gg", gg), ("wi", wi), ("wt", wt)):
                    res[f"{dims}d-{kind}-N{n}-{name}"] = a
    return res


SUBPROCESS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import numba, numpy as np
    from stn_numba import _cpu
    from test_determinism import fresh_process_cases
    assert numba.get_num_threads() == {threads}, numba.get_num_threads()
    _cpu.GRAIN = 1  # every thread on these small problems, as conftest does in-process
    np.savez({out!r}, **fresh_process_cases())
    """
)


@pytest.mark.parametrize("env_threads", [5, 7])
def test_more_threads_than_cores(tmp_path, env_threads):
    """In a fresh process with more threads (and so more, odd-sized bands) than this
    machine may have cores, the results equal the single-thread ones bit for bit: one
    image in 5 or 7 bands, a batch of 2 in 3 or 4 bands per sample."""
    out = str(tmp_path / "res.npz")
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, NUMBA_NUM_THREADS=str(env_threads))
    code = SUBPROCESS.format(tests=tests, threads=env_threads, out=out)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    got = np.load(out)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        want = fresh_process_cases()
    finally:
        numba.set_num_threads(before)
    assert sorted(got.files) == sorted(want)
    for name, a in want.items():
        np.testing.assert_array_equal(got[name], a, err_msg=name)
