"""stn_numba.ndimage against scipy.ndimage itself: random inputs over (order, mode,
ndim), the output conversions, no mutation, and a jitted mapping.

Bad input (one row per argument and kind, with the message) is in the table of
docs/errors.md, checked by tests/test_errors_table.py.

scipy's own test cases run in tests/test_ndimage_scipy.py. Every call here uses one
compiled sampling driver, one prefilter driver and one padding kernel (order and
mode are runtime arguments, inputs are converted to float64), plus one mapping
kernel.
"""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
import scipy.ndimage as ndi
from conftest import tol

from stn_numba import _bspline as B
from stn_numba import _pool
from stn_numba import ndimage as nd

MODES = ["constant", "grid-constant", "nearest", "mirror", "reflect", "grid-mirror", "wrap"]
MODES += ["grid-wrap"]
SHAPES = {1: (7,), 2: (5, 6), 3: (4, 5, 3)}
TOL = tol(np.float64)


def close(got, want, **kw):
    """Equal to float64 rounding of the largest magnitude (the prefilter's
    recursions cancel: small values carry the rounding of large ones)."""
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=TOL["rtol"], atol=TOL["atol"] * scale, **kw)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("order", range(6))
def test_map_coordinates_matches_scipy_every_mode(ndim, order, rng):
    a = rng.standard_normal(SHAPES[ndim])
    x = rng.uniform(-4, 9, (ndim, 30))
    x[:, :3] = np.floor(x[:, :3])  # integer points: the taps' edges and order 0's rounding
    for mode in MODES:
        for prefilter in (True, False):
            got = nd.map_coordinates(a, x, order=order, mode=mode, cval=0.7, prefilter=prefilter)
            want = ndi.map_coordinates(a, x, order=order, mode=mode, cval=0.7, prefilter=prefilter)
            close(got, want, err_msg=f"{mode} {prefilter}")


@pytest.mark.parametrize("order", [1, 3])
def test_points_near_the_edges_and_beyond_match_scipy_every_mode(order, rng):
    # the vectorised loop takes these: at order 3 it reads taps past the ends from
    # coefficients padded by the mode's fold, and the modes that map a point beyond
    # the image back into it map it before that loop
    for shape in [(9, 10), (6, 7, 8)]:
        a = rng.standard_normal(shape)
        bands = [
            np.r_[rng.uniform(-0.5, 1.5, 8), rng.uniform(n - 2.5, n - 0.5, 8), 0, n - 1,
                  rng.uniform(-3 * n, 4 * n, 8)]
            for n in shape
        ]  # fmt: skip
        x = np.stack(np.meshgrid(*bands, indexing="ij")).reshape(len(shape), -1)
        m = np.eye(len(shape))
        m[:2, :2] = [[1.9, -0.55], [0.55, 1.9]]  # rotated and scaled: the image twice over
        for mode in MODES:
            got = nd.map_coordinates(a, x, order=order, mode=mode, cval=0.7)
            want = ndi.map_coordinates(a, x, order=order, mode=mode, cval=0.7)
            close(got, want, err_msg=f"{shape} {mode}")
            got = nd.affine_transform(a, m, -3.0, order=order, mode=mode, cval=0.7)
            want = ndi.affine_transform(a, m, -3.0, order=order, mode=mode, cval=0.7)
            close(got, want, err_msg=f"affine {shape} {mode}")


_THREADED_SCRIPT = """
import concurrent.futures as cf, os, threading
import numba, numpy as np, scipy.ndimage as ndi
from stn_numba import _ndimage, _pool, ndimage as nd
# every call runs on threads, however small
_ndimage.PARALLEL_FROM = _ndimage.PREFILTER_PARALLEL_FROM = 0
rng = np.random.default_rng(0)
a = rng.standard_normal((41, 43))
m = np.array([[0.9, -0.25], [0.3, 1.1]])
x = rng.uniform(-3, 46, (2, 37, 39))


@numba.njit
def half(o):
    return (o[0] * 0.5 + 1.0, o[1] * 0.75 - 2.0)


calls = [
    lambda f: f.affine_transform(a, m, (4.0, -7.0), order=3, cval=0.5),
    lambda f: f.map_coordinates(a, x, order=1, mode="mirror"),
    lambda f: f.zoom(a, 1.3, order=1),
    lambda f: f.spline_filter(a, 5, mode="grid-wrap"),
    lambda f: f.geometric_transform(a, half, order=3, mode="nearest"),
]
ours = [c(nd) for c in calls]
def helpers():
    return sum(t.name == "stn_numba-ndimage" for t in threading.enumerate())
assert helpers() == _pool._helpers.count == 1, _pool._helpers.count  # 2 threads
for got, want in zip(ours, [c(ndi) for c in calls]):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * scale)
with cf.ThreadPoolExecutor(max_workers=4) as pool:
    runs = list(pool.map(lambda i: [c(nd) for c in calls], range(48)))
assert all(np.array_equal(g, w) for run in runs for g, w in zip(run, ours))
pid = os.fork()  # the child starts a helper of its own
if pid == 0:
    same = all(np.array_equal(c(nd), w) for c, w in zip(calls, ours))
    os._exit(0 if same and helpers() == 1 else 3)
assert os.waitpid(pid, 0)[1] == 0
print("ok")
"""


def test_threaded_calls_match_scipy_from_several_threads_and_after_fork():
    """Calls of at least PARALLEL_FROM units of work run in parts on threads (the
    small inputs of the other tests run on the calling thread). With the thresholds
    at 0, in a new process: scipy's numbers, near the edges and beyond them too; the
    same bits from 4 Python threads at once, and in a child forked after the helper
    thread started."""
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    run = subprocess.run(
        [sys.executable, "-c", _THREADED_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]


@numba.njit
def _tilt(o):
    return (o[0] * 0.8 + 0.3 * o[1] - 1.0, o[1] * 1.1 - 2.5)


@pytest.mark.parametrize("order", [0, 1, 3])
def test_every_output_point_is_written(order, rng):
    """The given output is NaN first: a point that the drivers skip stays NaN (a new
    output is left uninitialised, so this is what guards it)."""
    a = rng.standard_normal((9, 11))
    stack = np.eye(3)
    stack[1:, 1:] = [[0.9, -0.3], [0.4, 1.1]]
    x = rng.uniform(-4, 14, (2, 7, 8))
    cases = [
        ("map_coordinates", (a, x)),
        ("affine_transform", (a, stack[1:, 1:], (1.5, -2.0))),
        ("affine_transform", (a, [1.3, 0.7], (1.5, -2.0))),
        ("affine_transform", (np.stack([a, -a, 2 * a]), stack)),
        ("shift", (a, (2.3, -1.7))),
        ("zoom", (a, 1.6)),
        ("rotate", (a, 25)),
        ("geometric_transform", (a, _tilt)),
    ]
    for name, args in cases:
        for mode in ("constant", "grid-constant", "mirror", "nearest"):
            kw = dict(order=order, mode=mode, cval=0.5)
            want = getattr(ndi, name)(*args, **kw)
            out = np.full(want.shape, np.nan)
            getattr(nd, name)(*args, output=out, **kw)
            close(out, want, err_msg=f"{name} {mode}")


@pytest.mark.parametrize("order", [1, 3])
def test_a_stack_of_planes_transformed_alike_is_scipys_per_plane(order, rng):
    """A 3-D affine that leaves axis 0 as it is: scipy's 2-D transform of each plane
    (the driver computes each point's taps once for every plane), near the edges and
    beyond them too, and with an output of its own strides."""
    a = rng.standard_normal((4, 9, 11))
    m = np.eye(3)
    m[1:, 1:] = [[0.9, -0.3], [0.4, 1.1]]
    off = (0.0, 1.5, -2.0)
    for mode in ("constant", "grid-constant", "mirror", "wrap"):
        kw = dict(order=order, mode=mode, cval=0.5)
        want = np.stack([ndi.affine_transform(p, m[1:, 1:], off[1:], **kw) for p in a])
        close(nd.affine_transform(a, m, off, **kw), want, err_msg=mode)
        a32 = a.astype(np.float32)
        want = np.stack(
            [ndi.affine_transform(p, m[1:, 1:], off[1:], output=float, **kw) for p in a32]
        )
        out = np.full((11, 9, 4), np.nan).transpose(2, 1, 0)  # not C-contiguous
        nd.affine_transform(a32, m, off, output=out, **kw)
        close(out, want, err_msg=mode)


def test_an_output_sharing_the_inputs_memory_gets_the_same_numbers(rng):
    a = rng.standard_normal((12, 12))
    m = np.array([[0.2, 1.0], [1.0, -0.1]])  # a transpose: reads far from the write
    calls = {
        "affine_transform": lambda src, **kw: nd.affine_transform(src, m, (0.5, 0.0), **kw),
        "shift": lambda src, **kw: nd.shift(src, (3.5, -2.0), **kw),
        "zoom": lambda src, **kw: nd.zoom(src, 1.0, **kw),
        "rotate": lambda src, **kw: nd.rotate(src, 90, reshape=False, **kw),
        "geometric_transform": lambda src, **kw: nd.geometric_transform(src, _tilt, **kw),
    }
    for name, call in calls.items():
        for order in (1, 3):
            want = call(a, order=order)
            b = a.copy()
            call(b, order=order, output=b)
            close(b, want, err_msg=f"{name} order {order}")
    # map_coordinates: into the input, and into the coordinates' own buffer
    x = rng.uniform(0, 11, (2, 12, 12))
    want = nd.map_coordinates(a, x, order=1)
    b = a.copy()
    nd.map_coordinates(b, x, order=1, output=b)
    close(b, want)
    y = x.copy()
    nd.map_coordinates(a, y, order=1, output=y[1])
    close(y[1], want)


def test_pool_runs_every_part_once_and_raises_a_parts_error():
    seen = []

    def record(tag, part, parts):
        seen.append((tag, part, parts))
        if tag == "bad" and part == 5:
            raise ValueError("part 5")

    _pool.run(record, ("ok",), 7, 3)
    assert sorted(seen) == [("ok", p, 7) for p in range(7)]
    seen.clear()
    with pytest.raises(ValueError, match="part 5"):
        _pool.run(record, ("bad",), 7, 2)
    assert sorted(seen) == [("bad", p, 7) for p in range(7)]  # the others still ran
    seen.clear()
    _pool.run(record, ("one",), 3, 1)  # one thread: in order, on this thread
    assert seen == [("one", p, 3) for p in range(3)]


@pytest.mark.parametrize("ndim", [2, 3])
def test_affine_shift_zoom_rotate_match_scipy(ndim, rng):
    a = rng.standard_normal(SHAPES[ndim]) * 10
    m = np.eye(ndim) + 0.3 * rng.standard_normal((ndim, ndim))
    off = rng.standard_normal(ndim)
    homog = np.eye(ndim + 1)
    homog[:ndim, :ndim] = m
    homog[:ndim, ndim] = off
    for order, mode in [(0, "nearest"), (1, "constant"), (3, "reflect"), (5, "grid-constant")]:
        kw = dict(order=order, mode=mode, cval=1.5)
        for args in [(m, off), (np.diag(m), off), (homog,), (homog[:ndim],)]:
            close(nd.affine_transform(a, *args, **kw), ndi.affine_transform(a, *args, **kw))
        out_shape = (3,) * ndim
        close(
            nd.affine_transform(a, m, off, output_shape=out_shape, **kw),
            ndi.affine_transform(a, m, off, output_shape=out_shape, **kw),
        )
        close(nd.shift(a, off, **kw), ndi.shift(a, off, **kw))
        for grid_mode in (False, True):
            z = (1.7, 0.6, 2.0)[:ndim]
            zmode = "grid-constant" if mode == "constant" else mode
            kz = dict(kw, mode=zmode, grid_mode=grid_mode)
            close(nd.zoom(a, z, **kz), ndi.zoom(a, z, **kz))
        for reshape in (True, False):
            axes = (1, 0) if ndim == 2 else (0, 2)
            kr = dict(kw, axes=axes, reshape=reshape)
            close(nd.rotate(a, 23, **kr), ndi.rotate(a, 23, **kr))


def test_reflect_prefilter_is_scipys_on_short_lines():
    # scipy's half-sample-mirror prefilter does not reproduce the samples of short
    # lines; stn_numba.ndimage gives scipy's numbers, B.REFLECT stays exact.
    s = np.array([0.3, -1.2])
    got = nd.spline_filter1d(s, 3, mode="reflect")
    close(got, ndi.spline_filter1d(s, 3, mode="reflect"))
    exact = np.array(s)

    @numba.njit
    def run(c):
        B.prefilter_line(c, 3, B.REFLECT)

    run(exact)
    assert np.abs(got - exact).max() > 1e-5


@pytest.mark.parametrize("mode", ["mirror", "reflect", "nearest", "grid-wrap"])
def test_spline_filters_match_scipy(mode, rng):
    a = rng.standard_normal((3, 40, 5)) * 100
    for order in range(2, 6):
        close(nd.spline_filter(a, order, mode=mode), ndi.spline_filter(a, order, mode=mode))
        for axis in (0, 1, -1):
            close(
                nd.spline_filter1d(a, order, axis, mode=mode),
                ndi.spline_filter1d(a, order, axis, mode=mode),
            )
    # a float32 output holds each axis' result (scipy's order); equal to float32 rounding
    got = nd.spline_filter(a, 3, output=np.float32, mode=mode)
    want = ndi.spline_filter(a, 3, output=np.float32, mode=mode)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.uint16, np.int32, np.int64, np.uint64, np.float32, bool]
)
def test_integer_and_other_outputs_are_scipys(dtype, rng):
    a = rng.uniform(-300, 300, (6, 7))
    x = rng.uniform(-1, 7, (2, 50))
    for order in (0, 1, 3):
        got = nd.map_coordinates(a, x, output=dtype, order=order, mode="mirror")
        want = ndi.map_coordinates(a, x, output=dtype, order=order, mode="mirror")
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_integer_input_keeps_its_dtype_and_output_arrays_are_filled(rng):
    a = rng.integers(0, 255, (8, 9)).astype(np.uint8)
    want = ndi.zoom(a, 1.5, order=3)
    got = nd.zoom(a, 1.5, order=3)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    out = np.zeros((9, 8), np.float32)[::-1]  # a non-contiguous output array
    res = nd.affine_transform(a, [[0, 1], [1, 0]], output=out, order=1)
    assert res is out
    np.testing.assert_array_equal(
        out,
        ndi.affine_transform(a, [[0, 1], [1, 0]], output=np.float32, output_shape=(9, 8), order=1),
    )


def test_complex_input_is_split(rng):
    a = rng.standard_normal((5, 6)) + 1j * rng.standard_normal((5, 6))
    x = rng.uniform(-1, 6, (2, 20))
    np.testing.assert_allclose(
        nd.map_coordinates(a, x, cval=1 + 2j), ndi.map_coordinates(a, x, cval=1 + 2j)
    )


def test_inputs_are_not_mutated(rng):
    a = rng.standard_normal((6, 7))
    x = rng.uniform(-1, 7, (2, 10))
    m = np.eye(3)
    copies = [a.copy(), x.copy(), m.copy()]
    for mode in ("nearest", "grid-constant", "reflect"):
        nd.map_coordinates(a, x, mode=mode)
        nd.affine_transform(a, m, mode=mode)
        nd.spline_filter(a)
    for before, after in zip(copies, [a, x, m]):
        np.testing.assert_array_equal(before, after)


def test_an_output_that_overlaps_what_the_call_reads(rng):
    """The input itself, or a view of the coordinates, as ``output``: the values are
    those of a separate output (what is read is copied first), scipy's of copies."""
    a = rng.standard_normal((6, 7))
    want = ndi.shift(a.copy(), (0.5, -0.25), order=1)
    b = a.copy()
    assert nd.shift(b, (0.5, -0.25), output=b, order=1) is b
    np.testing.assert_allclose(b, want, **TOL)
    m = np.array([[0.9, 0.1], [-0.2, 1.1]])
    c = a.copy()
    nd.affine_transform(c, m, offset=(0.4, -0.3), output=c, order=1)
    np.testing.assert_allclose(c, ndi.affine_transform(a, m, offset=(0.4, -0.3), order=1), **TOL)
    x = rng.uniform(0, 5, (2, 9))
    want = ndi.map_coordinates(a, x.copy(), order=1)
    nd.map_coordinates(a, x, output=x[0], order=1)
    np.testing.assert_allclose(x[0], want, **TOL)


@numba.njit
def _shear(o, k):
    return (o[0] * 0.9 + 0.25 * o[1] - k, o[1] * 1.1 - 0.5)


def _shear_py(o, k):
    return (o[0] * 0.9 + 0.25 * o[1] - k, o[1] * 1.1 - 0.5)


def test_geometric_transform_with_a_jitted_mapping_is_scipys_with_python(rng):
    a = rng.standard_normal((7, 8))
    for order, mode in [(1, "constant"), (3, "mirror")]:
        got = nd.geometric_transform(
            a, _shear, (6, 9), order=order, mode=mode, extra_arguments=(0.3,)
        )
        want = ndi.geometric_transform(
            a, _shear_py, (6, 9), order=order, mode=mode, extra_arguments=(0.3,)
        )
        close(got, want)


def test_zoom_grid_mode_warns_as_scipy():
    with pytest.warns(UserWarning, match="grid-constant"):
        nd.zoom(np.ones((3, 3)), 2, grid_mode=True, mode="constant")
