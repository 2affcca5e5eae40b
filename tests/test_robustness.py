"""Never corrupt: no public function changes an argument; concurrent calls from
Python threads equal serial calls bit for bit; inputs with more than 2**31 elements are
indexed correctly; strange-but-valid shapes and layouts for the newer functions.

The argument sets come from the bad-input table's valid calls (tests/test_errors_table.py,
``VALID``), with the zeros replaced by random values, so every public function is covered.
"""

import concurrent.futures as cf

import numpy as np
import pytest
from test_errors_table import NAMESPACE, VALID, function

import stn_numba as stn


def random_args(fname, seed=0):
    """VALID's call of ``fname`` with random (still valid) float values."""
    rng = np.random.default_rng(seed)
    args = {}
    for k, src in VALID[fname].items():
        v = eval(src, NAMESPACE)
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            v = (v + 0.1 * rng.standard_normal(v.shape)).astype(v.dtype)
        args[k] = v
    return args


def _results(result):
    if isinstance(result, tuple):
        return [r for r in result if r is not None]
    return [result]


FUNCTIONS = sorted(VALID)


class TestNoMutation:
    @pytest.mark.parametrize("layout", ["C", "fortran_readonly"])
    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_arguments_bit_identical(self, fname, layout):
        """Every argument (arrays, sequences) is unchanged bit for bit, keeps its strides
        and flags, and no result shares memory with an argument."""
        args = random_args(fname)
        if layout != "C":
            for k, v in args.items():
                if isinstance(v, np.ndarray):
                    v = np.asfortranarray(v)
                    v.flags.writeable = False
                    args[k] = v
        snap = {
            k: (v.copy(), v.strides, v.flags.writeable, v.flags.f_contiguous)
            if isinstance(v, np.ndarray)
            else repr(v)
            for k, v in args.items()
        }
        results = _results(function(fname)(**args))
        for k, v in args.items():
            if isinstance(v, np.ndarray):
                copy, strides, writeable, fortran = snap[k]
                assert v.tobytes() == copy.tobytes(), f"{fname} modified {k}"
                assert (v.strides, v.flags.writeable, v.flags.f_contiguous) == (
                    strides,
                    writeable,
                    fortran,
                )
                for r in results:
                    assert not np.shares_memory(np.asarray(r), v), f"result aliases {k}"
            else:
                assert repr(v) == snap[k], f"{fname} modified {k}"


# ----------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------

#: (function, keyword arguments builder): forward and backward of the kernel families.
THREADED = [
    "grid_sample",
    "grid_sample_backward",
    "warp_affine",
    "warp_affine_backward",
    "warp_perspective_backward",
    "warp_flow_backward",
    "splat",
    "splat_backward",
    "tps_grid",
    "affine_grid_backward",
]


@pytest.mark.parametrize("fname", THREADED)
def test_threads_equal_serial(fname):
    """8 calls at once from 4 Python threads, on 4 different argument sets and on one
    shared set, give the serial results bit for bit."""
    fn = function(fname)
    sets = [random_args(fname, seed) for seed in range(4)]
    serial = [_results(fn(**a)) for a in sets]
    shared = sets[0]
    jobs = [(i % 4, sets[i % 4]) for i in range(8)] + [(0, shared)] * 8
    with cf.ThreadPoolExecutor(max_workers=4) as pool:
        futures = [(i, pool.submit(lambda a=a: _results(fn(**a)))) for i, a in jobs]
        for i, fut in futures:
            got = fut.result(timeout=120)
            assert len(got) == len(serial[i])
            for g, s in zip(got, serial[i]):
                np.testing.assert_array_equal(g, s)
                assert g.tobytes() == s.tobytes()


_WORKQUEUE_SCRIPT = """
import concurrent.futures as cf
import numba, numpy as np, stn_numba as stn
rng = np.random.default_rng(0)
x = rng.random((2, 1, 16, 16))
theta = np.tile(np.eye(2, 3), (2, 1, 1)) + 0.1 * rng.standard_normal((2, 2, 3))
ref = stn.warp_affine(x, theta)
assert numba.threading_layer() == "workqueue", numba.threading_layer()
with cf.ThreadPoolExecutor(max_workers=4) as pool:
    outs = list(pool.map(lambda _: stn.warp_affine(x, theta), range(64)))
assert all(np.array_equal(o, ref) for o in outs)
print("ok")
"""


def test_threads_under_the_workqueue_layer():
    """Numba's fallback threading layer aborts the process when two threads launch
    parallel kernels at once; the library serialises its launches under it."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2")
    run = subprocess.run(
        [sys.executable, "-c", _WORKQUEUE_SCRIPT], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


# ----------------------------------------------------------------------------
# More than 2**31 elements
# ----------------------------------------------------------------------------

BIG = 46341  # 46341**2 > 2**31: indices past the int32 range


@pytest.fixture(scope="module")
def big_image():
    """(1, 1, 46341, 46341) float32 zeros (8.6 GB of address space, pages never touched
    except the few written here), with known values in its last 3x3 corner."""
    try:
        x = np.zeros((1, 1, BIG, BIG), dtype=np.float32)
    except MemoryError:  # pragma: no cover - address space limited
        pytest.skip("cannot reserve 8.6 GB of (untouched) address space here")
    assert x.size > 2**31
    corner = np.arange(1.0, 10.0, dtype=np.float32).reshape(3, 3)
    x[0, 0, -3:, -3:] = corner
    return x, corner


def _bilinear(corner, px, py):
    """Bilinear value of the 3x3 corner block (zeros outside) at pixel (px, py) of it."""
    pad = np.zeros((5, 5))
    pad[1:4, 1:4] = corner
    x0, y0 = int(np.floor(px)), int(np.floor(py))
    fx, fy = px - x0, py - y0
    v = pad[y0 + 1 : y0 + 3, x0 + 1 : x0 + 3]
    return (1 - fy) * ((1 - fx) * v[0, 0] + fx * v[0, 1]) + fy * ((1 - fx) * v[1, 0] + fx * v[1, 1])


def test_big_input_grid_sample(big_image):
    """Sample a few points of the last 3x3 pixels of a > 2**31-element input."""
    x, corner = big_image
    # pixel coordinates (relative to the corner block) and the grid values that reach them
    rel = [(0.25, 0.5), (1.0, 1.0), (1.5, 0.75), (2.0, 2.0), (0.0, 2.5)]
    pix = np.array([(BIG - 3 + a, BIG - 3 + b) for a, b in rel])
    grid = (2.0 * pix / (BIG - 1) - 1.0)[None, None].astype(np.float32)  # align_corners
    out = stn.grid_sample(x, grid, align_corners=True)
    # the grid is float32 and so is the coordinate math (PyTorch's order): compare with
    # the pixel coordinates that float32 computes from the points the grid holds
    f32 = np.float32
    held = ((grid + f32(1)) / f32(2)) * f32(BIG - 1)
    held = held.astype(np.float64) - (BIG - 3)
    want = [_bilinear(corner, px, py) for px, py in held[0, 0]]
    np.testing.assert_allclose(out[0, 0, 0], want, rtol=1e-5, atol=1e-5)
    assert out[0, 0, 0, 1] == pytest.approx(corner[1, 1], abs=0.05)


def test_big_input_warp_affine(big_image):
    """A 3x3 output of warp_affine that zooms onto the far corner (fused θ path)."""
    x, corner = big_image
    s = (3 - 1) / (BIG - 1)  # align_corners=True: output pixels -> the last 3 input pixels
    t = 1.0 - s
    theta = np.array([[[s, 0.0, t], [0.0, s, t]]], dtype=np.float32)
    out = stn.warp_affine(x, theta, (3, 3), align_corners=True)
    np.testing.assert_allclose(out[0, 0], corner, atol=0.02)
    # and with nearest, which picks whole pixels (rounding of θ in float32 is < 0.5 px)
    out = stn.warp_affine(x, theta, (3, 3), "nearest", align_corners=True)
    np.testing.assert_array_equal(out[0, 0], corner)


# grad_input of a backward is input-sized (8.6 GB written in full): not tested here.


# ----------------------------------------------------------------------------
# Strange but valid input for the newer functions
# ----------------------------------------------------------------------------

NEW = [
    "perspective_grid",
    "perspective_grid_backward",
    "warp_perspective",
    "warp_perspective_backward",
    "flow_grid",
    "flow_grid_backward",
    "warp_flow",
    "warp_flow_backward",
    "splat",
    "splat_backward",
    "tps_grid",
    "tps_grid_backward",
    "warp_affine_pixels",
]


def _layout(a, how):
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "negative":
        idx = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[idx])[idx]
    if how == "strided":
        big = np.full(tuple(2 * s for s in a.shape), np.nan, a.dtype)
        v = big[(slice(None, None, 2),) * a.ndim]
        v[...] = a
        v.flags.writeable = False
        return v
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["fortran", "negative", "strided"])
@pytest.mark.parametrize("fname", NEW)
def test_layouts(fname, how):
    args = random_args(fname, 1)
    want = _results(function(fname)(**args))
    lay = {k: _layout(v, how) if isinstance(v, np.ndarray) else v for k, v in args.items()}
    got = _results(function(fname)(**lay))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_views_of_one_another():
    """Arguments that are views of one buffer work; out= may not alias any of them."""
    rng = np.random.default_rng(2)
    buf = rng.uniform(-1, 1, (2, 3, 4, 2))
    x = buf[..., 0].reshape(2, 1, 3, 4)  # input is a view into the flow / grid
    for fn in (stn.warp_flow, stn.splat):
        np.testing.assert_array_equal(fn(x, buf), fn(x.copy(), buf.copy()))
    flat = rng.uniform(-1, 1, 24 + 48)  # input and flow / grid: two views of one buffer
    xc, fc = flat[:24].reshape(2, 1, 3, 4), flat[24:].reshape(2, 3, 4, 2)
    for fn in (stn.warp_flow, stn.splat):
        np.testing.assert_array_equal(fn(xc, fc), fn(xc.copy(), fc.copy()))
        with pytest.raises(ValueError, match="out must not overlap input"):
            fn(xc, fc, out=xc)
        with pytest.raises(ValueError, match=r"out must not overlap (flow|grid)"):
            fn(xc, fc, out=flat[24:48].reshape(2, 1, 3, 4))
    H = np.stack([np.eye(3)] * 2)
    with pytest.raises(ValueError, match="out must not overlap input"):
        stn.warp_perspective(xc, H, out=xc)


@pytest.mark.parametrize("n,c", [(0, 1), (1, 0), (0, 0)])
@pytest.mark.parametrize(
    "fname",
    [
        "warp_perspective",
        "warp_perspective_backward",
        "warp_flow",
        "warp_flow_backward",
        "splat",
        "splat_backward",
    ],
)
def test_empty_batch_or_channels(fname, n, c):
    args = random_args(fname)
    for k in ("grad_output", "input"):
        if k in args:
            args[k] = np.zeros((n, c, *args[k].shape[2:]))
    for k in ("H", "flow", "grid"):
        if k in args:
            args[k] = args[k][:n].copy() if n == 0 else args[k]
    res = _results(function(fname)(**args))
    for r in res:
        assert r.dtype == np.float64
        assert r.shape[0] == n
        assert not r.size or np.all(r == 0) or c > 0


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (7, 1), (9, 11), (1, 2)])
@pytest.mark.parametrize("fname", ["warp_perspective", "splat"])
def test_up_and_down_sampling(fname, size):
    """H or W = 1 and outputs larger / far smaller than the input: the identity map
    samples what grid_sample samples at affine_grid's points (same convention)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 5, 6))
    if fname == "warp_perspective":
        H = np.eye(3)[None]
        out = stn.warp_perspective(x, H, size, align_corners=True)
        grid = stn.affine_grid(np.eye(2, 3)[None], (1, 2, *size), True)
        np.testing.assert_allclose(out, stn.grid_sample(x, grid, align_corners=True), atol=1e-12)
    else:
        grid = rng.uniform(-1, 1, (1, 5, 6, 2))
        out = stn.splat(x, grid, size, align_corners=True)
        y = rng.standard_normal(out.shape)
        lhs = np.vdot(stn.grid_sample(y, grid, align_corners=True), x)
        assert lhs == pytest.approx(np.vdot(y, out), rel=1e-12, abs=1e-12)


def test_flow_axis_of_size_one():
    x = np.arange(6.0).reshape(1, 1, 1, 6)
    flow = np.zeros((1, 1, 6, 2))
    flow[..., 0] = 1.0
    out = stn.warp_flow(x, flow, padding_mode="border")
    np.testing.assert_array_equal(out[0, 0, 0], [1, 2, 3, 4, 5, 5])
