"""stn_numba.dask: lazy block-wise warps of dask stacks equal the eager in-memory calls.

The reference is the eager stn_numba function on the whole in-memory stack (itself tested
against independent references elsewhere); every operation is per sample, so the block
results must be bit-identical to it. Shapes are tiny and float64 bilinear only, so the
kernels compiled here are the ones the rest of the suite already uses.
"""

import doctest
import subprocess
import sys
import threading

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="stn_numba.dask needs the 'dask' extra")
dask = pytest.importorskip("dask", reason="stn_numba.dask needs the 'dask' extra")

import numba  # noqa: E402
from conftest import random_theta  # noqa: E402

import stn_numba as stn  # noqa: E402
import stn_numba.dask as stnd  # noqa: E402

N = 6
BATCH_CHUNKS = (2, 3, 1)


def _stack(rng, shape=(N, 2, 7, 9)):
    x = rng.standard_normal(shape)
    return x, da.from_array(x, chunks=(BATCH_CHUNKS, *((-1,) * (len(shape) - 1))))


def _thread_count_of_blocks(arr, **compute_kwargs):
    """default_numba_threads() as seen inside each task (-1 for None)."""

    def probe(block):
        n = stnd.default_numba_threads()
        return np.full((block.shape[0],), -1 if n is None else n)

    return arr.map_blocks(probe, drop_axis=[1, 2, 3], dtype=int).compute(**compute_kwargs)


# ----------------------------------------------------------------------------
# Packaging
# ----------------------------------------------------------------------------


def test_import_stn_numba_does_not_import_dask():
    # and without dask, stn_numba.dask says what to install
    code = (
        "import sys, stn_numba\n"
        "assert 'dask' not in sys.modules, 'import stn_numba imported dask'\n"
        "sys.modules['dask'] = None  # as if dask were not installed\n"
        "try:\n"
        "    import stn_numba.dask\n"
        "except ImportError as e:\n"
        "    assert \"pip install 'stn_numba[dask]'\" in str(e), str(e)\n"
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docstring_examples():
    result = doctest.testmod(stnd, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 4
    assert result.failed == 0


# ----------------------------------------------------------------------------
# Local (threaded) scheduler: equal to the eager call
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("theta_kind", ["numpy", "dask"])
def test_warp_affine_equals_eager(rng, theta_kind):
    x, dx = _stack(rng)
    theta = random_theta(rng, N, 2)
    # θ as dask with batch chunks unlike the input's (and split matrix axes): rechunked
    th = da.from_array(theta, chunks=(4, 1, 2)) if theta_kind == "dask" else theta
    y = stnd.warp_affine(dx, th, size=(5, 8), padding_mode="border")
    assert isinstance(y, da.Array)
    assert y.chunks == (BATCH_CHUNKS, (2,), (5,), (8,))
    assert y.dtype == np.float64 and y._meta.dtype == np.float64
    expected = stn.warp_affine(x, theta, size=(5, 8), padding_mode="border")
    got = y.compute()
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_warp_affine_3d_and_float32(rng):
    x = rng.standard_normal((3, 1, 4, 5, 6)).astype(np.float32)
    theta = random_theta(rng, 3, 3, np.float32)
    y = stnd.warp_affine(da.from_array(x, chunks=(2, 1, 4, 5, 6)), theta)
    assert y.dtype == np.float32 and y.chunks[0] == (2, 1)
    np.testing.assert_array_equal(y.compute(), stn.warp_affine(x, theta))


def test_grid_sample_equals_eager(rng):
    x, dx = _stack(rng)
    grid = rng.uniform(-1.2, 1.2, (N, 4, 5, 2))
    dgrid = da.from_array(grid, chunks=(3, -1, -1, -1))
    y = stnd.grid_sample(dx, dgrid, padding_mode="reflection", align_corners=True)
    assert y.chunks == (BATCH_CHUNKS, (2,), (4,), (5,))
    expected = stn.grid_sample(x, grid, padding_mode="reflection", align_corners=True)
    np.testing.assert_array_equal(y.compute(), expected)


def test_warp_flow_equals_eager(rng):
    x, dx = _stack(rng)
    flow = rng.uniform(-3, 3, (N, 7, 9, 2))
    for f in (flow, da.from_array(flow, chunks=(4, -1, -1, -1))):
        y = stnd.warp_flow(dx, f)
        np.testing.assert_array_equal(y.compute(), stn.warp_flow(x, flow))


def test_synchronous_scheduler_and_explicit_threads(rng):
    x, dx = _stack(rng)
    theta = random_theta(rng, N, 2)
    expected = stn.warp_affine(x, theta)
    got = stnd.warp_affine(dx, theta).compute(scheduler="sync")
    np.testing.assert_array_equal(got, expected)
    got = stnd.warp_affine(dx, theta, numba_threads=1).compute()
    np.testing.assert_array_equal(got, expected)


def test_warp_affine_backward_equals_eager(rng):
    x, dx = _stack(rng)
    theta = random_theta(rng, N, 2)
    g = rng.standard_normal((N, 2, 5, 6))
    dg = da.from_array(g, chunks=(4, -1, -1, -1))
    gi, gt = stnd.warp_affine_backward(dg, dx, theta, size=(5, 6))
    assert gi.chunks == dx.chunks and gt.chunks == (BATCH_CHUNKS, (2,), (3,))
    egi, egt = stn.warp_affine_backward(g, x, theta, size=(5, 6))
    got_i, got_t = dask.compute(gi, gt)
    np.testing.assert_array_equal(got_i, egi)
    np.testing.assert_array_equal(got_t, egt)
    gi, gt = stnd.warp_affine_backward(dg, dx, theta, size=(5, 6), input_grad=False)
    assert gi is None
    np.testing.assert_array_equal(gt.compute(), egt)


# ----------------------------------------------------------------------------
# Errors, raised when the graph is built
# ----------------------------------------------------------------------------


def test_errors(rng):
    x, dx = _stack(rng)
    theta = random_theta(rng, N, 2)
    with pytest.raises(TypeError, match=r"input must be a dask\.array"):
        stnd.warp_affine(x, theta)
    hint = r"axis 3 has 3 chunks.*input\.rechunk\(\{1: -1, 2: -1, 3: -1\}\)"
    with pytest.raises(ValueError, match=hint):
        stnd.warp_affine(dx.rechunk({3: 3}), theta)
    with pytest.raises(ValueError, match="axis 1 has 2 chunks"):
        stnd.warp_affine(dx.rechunk({1: 1}), theta)
    with pytest.raises(ValueError, match=r"theta\.shape\[0\] \(batch\) must equal input"):
        stnd.warp_affine(dx, theta[:4])
    with pytest.raises(ValueError, match=r"theta\.shape\[0\] \(batch\) must equal input"):
        stnd.warp_affine(dx, da.from_array(theta[:5]))
    grid = da.zeros((N, 4, 4, 2), chunks=(N, 2, 4, 2))
    with pytest.raises(ValueError, match=r"grid must be chunked along the batch axis \(0\) only"):
        stnd.grid_sample(dx, grid)
    with pytest.raises(TypeError, match="out="):
        stnd.warp_affine(dx, theta, out=np.empty(x.shape))
    with pytest.raises(ValueError, match="numba_threads"):
        stnd.warp_affine(dx, theta, numba_threads=0)
    with pytest.raises(TypeError, match="numba_threads"):
        stnd.warp_affine(dx, theta, numba_threads=1.5)
    # the eager function's own validation runs at once (on an empty batch)
    with pytest.raises(ValueError, match="mode"):
        stnd.warp_affine(dx, theta, mode="bogus")
    with pytest.raises(TypeError, match="input must have dtype float32, float64, uint8"):
        stnd.warp_affine(dx.astype(np.int32), theta)
    with pytest.raises(ValueError, match="flow"):
        stnd.warp_flow(dx, np.zeros((N, 7, 9, 3)))
    unknown = dx[dx[:, 0, 0, 0] > -100]  # a boolean mask gives unknown chunk sizes
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        stnd.warp_affine(unknown, theta)


# ----------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------


def test_default_threads_per_scheduler(rng):
    _, dx = _stack(rng)
    total = numba.config.NUMBA_NUM_THREADS
    # synchronous: the task runs on the main thread alone; Numba's setting is left alone
    assert set(_thread_count_of_blocks(dx, scheduler="sync")) == {-1}
    # threaded pool of 2: half of Numba's threads each (at least 1)
    with dask.config.set(num_workers=2):
        assert set(_thread_count_of_blocks(dx, scheduler="threads")) == {max(1, total // 2)}
    # a pool of 1 runs one task at a time: Numba keeps all its threads (the compute
    # keyword works too: the pool is recognised from the task's thread)
    with dask.config.set(num_workers=1):
        assert set(_thread_count_of_blocks(dx, scheduler="threads")) == {-1}
    assert set(_thread_count_of_blocks(dx, scheduler="threads", num_workers=1)) == {-1}


def test_pool_thread_recognised_before_registration():
    """A new pool thread runs its first task before ThreadPoolExecutor adds it to
    pool._threads; its name identifies the pool."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(3)
    seen = {}
    t = threading.Thread(
        target=lambda: seen.update(slots=stnd.task_slots()), name=pool._thread_name_prefix + "_0"
    )
    with dask.config.set(pool=pool):
        t.start()
        t.join()
    pool.shutdown()
    assert seen["slots"] == 3


def test_run_block_sets_and_restores_numba_threads():
    seen = {}

    def record(block):
        seen["threads"] = numba.get_num_threads()
        return block

    def task():
        seen["before"] = numba.get_num_threads()
        stnd._run_block(np.zeros(1), fn=record, kwargs={}, threads=1, pick=None)
        seen["after"] = numba.get_num_threads()

    t = threading.Thread(target=task)
    t.start()
    t.join()
    assert seen["threads"] == 1
    assert seen["after"] == seen["before"]


# ----------------------------------------------------------------------------
# dask.distributed: a local cluster of 2 worker processes
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed", reason="needs dask[distributed]")
    with (
        distributed.LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def test_distributed_equals_eager(client, rng):
    x, dx = _stack(rng)
    theta = random_theta(rng, N, 2)
    flow = rng.uniform(-3, 3, (N, 7, 9, 2))
    y = stnd.warp_affine(dx, da.from_array(theta, chunks=4))
    f = stnd.warp_flow(dx, da.from_array(flow, chunks=(4, -1, -1, -1)))
    got_y, got_f = client.compute([y, f], sync=True)
    np.testing.assert_array_equal(got_y, stn.warp_affine(x, theta))
    np.testing.assert_array_equal(got_f, stn.warp_flow(x, flow))
    # the tasks ran in the worker processes, with one Numba thread each
    assert set(_thread_count_of_blocks(dx)) == {1}


def test_channels_last_stack(rng):
    """layout="NHWC" passes through: a channels-last stack chunked along the batch
    (float32 NHWC: the specialisations tests/test_layout.py compiles)."""
    x = rng.random((N, 7, 9, 3)).astype(np.float32)
    dx = da.from_array(x, chunks=(BATCH_CHUNKS, -1, -1, -1))
    theta = random_theta(rng, N, 2, np.float32)
    y = stnd.warp_affine(dx, theta, layout="NHWC", padding_mode="border")
    assert y.shape == x.shape and y.chunks[0] == BATCH_CHUNKS
    want = stn.warp_affine(x, theta, layout="NHWC", padding_mode="border")
    np.testing.assert_array_equal(y.compute(scheduler="threads"), want)
    gi, gt = stnd.warp_affine_backward(dx, dx, theta, layout="NHWC")
    wgi, wgt = stn.warp_affine_backward(x, x, theta, layout="NHWC")
    np.testing.assert_array_equal(gi.compute(scheduler="sync"), wgi)
    np.testing.assert_array_equal(gt.compute(scheduler="sync"), wgt)
