"""tps_grid / tps_grid_backward: the thin-plate-spline grid generator.

References, all independent of the library:

* ``ref_tps_grid`` below: the (K + 3) system built entry by entry in Python loops and
  the spline evaluated pixel by pixel, on the base grid of ``reference.ref_affine_grid``;
* the interpolation property (pixels placed exactly on the source points read their
  targets), and affine reproduction (affine targets give ``affine_grid``'s grid);
* float64 central finite differences for the gradient (the grid is linear in the
  targets, so any step is exact up to rounding).
"""

import itertools
import math

import numpy as np
import pytest
from conftest import tol
from reference import ref_affine_grid, ref_grid_sample

import stn_numba as stn

LIN_TOL = tol(np.float64, "grad")
# The spline solve loses about log10(cond(L)) ~ 3-4 digits on these point sets.
SOLVE_TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: tol(np.float32)}


# ----------------------------------------------------------------------------
# naive reference
# ----------------------------------------------------------------------------


def _U(dx, dy):
    r2 = dx * dx + dy * dy
    return 0.0 if r2 == 0.0 else r2 * math.log(r2)


def ref_tps_grid(source, target, size, align_corners, lam=0.0):
    """Naive TPS grid: loops over samples, matrix entries and pixels, float64."""
    target = np.asarray(target, np.float64)
    n, k = target.shape[:2]
    source = np.asarray(source, np.float64)
    if source.ndim == 2:
        source = np.broadcast_to(source, (n, k, 2))
    base = ref_affine_grid(np.tile(np.eye(2, 3), (n, 1, 1)), size, align_corners)
    out = np.empty(base.shape)
    for b in range(n):
        s = source[b]
        L = np.zeros((k + 3, k + 3))
        for i in range(k):
            for j in range(k):
                L[i, j] = _U(s[i, 0] - s[j, 0], s[i, 1] - s[j, 1]) + (lam if i == j else 0.0)
            L[i, k], L[i, k + 1], L[i, k + 2] = 1.0, s[i, 0], s[i, 1]
            L[k, i], L[k + 1, i], L[k + 2, i] = 1.0, s[i, 0], s[i, 1]
        rhs = np.zeros((k + 3, 2))
        rhs[:k] = target[b]
        c = np.linalg.solve(L, rhs)
        for h in range(base.shape[1]):
            for w in range(base.shape[2]):
                x, y = base[b, h, w]
                v = c[k] + c[k + 1] * x + c[k + 2] * y
                for i in range(k):
                    v = v + c[i] * _U(x - s[i, 0], y - s[i, 1])
                out[b, h, w] = v
    return out


def base_points(H, W, align_corners, pixels):
    """Normalised (x, y) of base-grid pixels ``pixels`` [(h, w), ...]."""
    base = ref_affine_grid(np.eye(2, 3)[None], (1, 1, H, W), align_corners)[0]
    return np.array([base[h, w] for h, w in pixels])


PIXELS = [(0, 0), (0, 5), (4, 0), (4, 5), (2, 2), (1, 4)]  # on a 5 x 6 output
SIZE = (2, 1, 5, 6)


def _points(rng, dtype=np.float64, shared=True, n=2):
    src = base_points(5, 6, False, PIXELS)
    if not shared:
        src = np.stack([src, src[::-1] * 0.9 + 0.05])
    tgt = np.broadcast_to(src, (n, len(PIXELS), 2)) + 0.2 * rng.standard_normal((n, len(PIXELS), 2))
    return src.astype(dtype), tgt.astype(dtype)


# ----------------------------------------------------------------------------
# forward: known answers and reference
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("align_corners", [False, True])
def test_control_points_map_onto_targets(rng, dtype, align_corners):
    src = base_points(5, 6, align_corners, PIXELS)
    tgt = src[None] + 0.3 * rng.standard_normal((2, len(PIXELS), 2))
    grid = stn.tps_grid(src.astype(dtype), tgt.astype(dtype), SIZE, align_corners)
    assert grid.shape == (2, 5, 6, 2) and grid.dtype == dtype
    got = np.array([grid[:, h, w] for h, w in PIXELS]).transpose(1, 0, 2)
    np.testing.assert_allclose(got, tgt.astype(dtype), **SOLVE_TOL[dtype])
    # and the pixels in between move: not just an affine map of the targets
    theta_fit = np.linalg.lstsq(np.c_[src, np.ones(len(src))], tgt[0], rcond=None)[0].T
    affine = stn.affine_grid(theta_fit[None], (1, 1, 5, 6), align_corners)
    assert np.abs(grid[0] - affine[0]).max() > 1e-2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("align_corners", [False, True])
def test_identity_targets_give_identity_grid(rng, dtype, align_corners):
    src = rng.uniform(-1, 1, (2, 7, 2)).astype(dtype)
    grid = stn.tps_grid(src, src, SIZE, align_corners)
    ident = stn.affine_grid(np.tile(np.eye(2, 3, dtype=dtype), (2, 1, 1)), SIZE, align_corners)
    np.testing.assert_allclose(grid, ident, **SOLVE_TOL[dtype])


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_affine_targets_give_affine_grid(rng, lam):
    src = rng.uniform(-1, 1, (2, 6, 2))
    theta = np.eye(2, 3)[None] + 0.3 * rng.standard_normal((2, 2, 3))
    tgt = np.einsum("nij,nkj->nki", theta[:, :, :2], src) + theta[:, None, :, 2]
    for ac in (False, True):
        grid = stn.tps_grid(src, tgt, SIZE, ac, regularization=lam)
        np.testing.assert_allclose(grid, stn.affine_grid(theta, SIZE, ac), **SOLVE_TOL[np.float64])


@pytest.mark.parametrize(
    "shared,align_corners,lam", [(True, False, 0.0), (False, True, 0.0), (False, False, 0.3)]
)
def test_matches_naive_reference(rng, shared, align_corners, lam):
    src, tgt = _points(rng, shared=shared)
    got = stn.tps_grid(src, tgt, SIZE, align_corners, lam)
    want = ref_tps_grid(src, tgt, SIZE, align_corners, lam)
    np.testing.assert_allclose(got, want, **SOLVE_TOL[np.float64])
    got32 = stn.tps_grid(src.astype(np.float32), tgt.astype(np.float32), SIZE, align_corners, lam)
    np.testing.assert_allclose(got32, want, **tol(np.float32))


def test_shared_sources_equal_per_sample_copies(rng):
    src, tgt = _points(rng)
    a = stn.tps_grid(src, tgt, SIZE)
    b = stn.tps_grid(np.stack([src, src]), tgt, SIZE)
    np.testing.assert_array_equal(a, b)


def test_sizes_one_and_nonsquare(rng):
    src, tgt = _points(rng)
    for size in ((2, 3, 1, 1), (2, 1, 1, 4), (2, 1, 3, 1)):
        np.testing.assert_allclose(
            stn.tps_grid(src, tgt, size, True),
            ref_tps_grid(src, tgt, size, True),
            **SOLVE_TOL[np.float64],
        )


# ----------------------------------------------------------------------------
# regularization
# ----------------------------------------------------------------------------


def test_regularization_smooths(rng):
    src = base_points(5, 6, False, PIXELS)
    tgt = src[None] + 0.3 * rng.standard_normal((1, len(PIXELS), 2))
    size = (1, 1, 5, 6)

    def misfit(lam):
        grid = stn.tps_grid(src, tgt, size, regularization=lam)
        return np.abs(np.array([grid[0, h, w] for h, w in PIXELS]) - tgt[0]).max()

    fits = [misfit(lam) for lam in (0.0, 0.01, 0.1, 1.0, 10.0)]
    assert fits[0] < 1e-12  # interpolates
    assert all(a < b for a, b in itertools.pairwise(fits)), fits  # then approximates, ever less
    # λ -> ∞: the least-squares affine fit of the targets (w = O(1/λ))
    theta = np.linalg.lstsq(np.c_[src, np.ones(len(src))], tgt[0], rcond=None)[0].T[None]
    np.testing.assert_allclose(
        stn.tps_grid(src, tgt, size, regularization=1e9),
        stn.affine_grid(theta, size),
        rtol=0,
        atol=1e-7,
    )


def test_regularization_allows_duplicate_sources(rng):
    src = base_points(5, 6, False, PIXELS)
    src = np.concatenate([src, src[:1]])  # point 0 twice
    tgt = src[None] + 0.1 * rng.standard_normal((1, len(src), 2))
    with pytest.raises(ValueError, match="duplicate"):
        stn.tps_grid(src, tgt, (1, 1, 5, 6))
    grid = stn.tps_grid(src, tgt, (1, 1, 5, 6), regularization=0.1)
    np.testing.assert_allclose(
        grid, ref_tps_grid(src, tgt, (1, 1, 5, 6), False, 0.1), **SOLVE_TOL[np.float64]
    )


# ----------------------------------------------------------------------------
# gradient
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shared,align_corners,lam", [(True, False, 0.0), (False, True, 0.0), (True, True, 0.2)]
)
def test_gradient_against_finite_differences(rng, shared, align_corners, lam):
    src, tgt = _points(rng, shared=shared)
    gout = rng.standard_normal((2, 5, 6, 2))

    def f(t):
        return float(np.sum(gout * stn.tps_grid(src, t, SIZE, align_corners, lam)))

    want = np.zeros_like(tgt)
    h = 0.5  # the loss is linear in the targets: any step is exact
    for i in range(tgt.size):
        tp, tm = tgt.copy(), tgt.copy()
        tp.flat[i] += h
        tm.flat[i] -= h
        want.flat[i] = (f(tp) - f(tm)) / (2 * h)
    got = stn.tps_grid_backward(gout, src, tgt, SIZE, align_corners, lam)
    assert got.shape == tgt.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, want, **LIN_TOL)


def test_gradient_adjoint_and_float32(rng):
    src, tgt = _points(rng)
    gout = rng.standard_normal((2, 5, 6, 2))
    g = stn.tps_grid_backward(gout, src, tgt, SIZE)
    # <gout, A t> == <Aᵀ gout, t>
    lhs = np.sum(gout * stn.tps_grid(src, tgt, SIZE))
    assert lhs == pytest.approx(np.sum(g * tgt), rel=1e-12, abs=1e-12)
    # shifting every target by c shifts the grid by c: Σ_k dL/dt_k = Σ_p dL/dgrid_p
    np.testing.assert_allclose(g.sum(axis=1), gout.sum(axis=(1, 2)), **LIN_TOL)
    g32 = stn.tps_grid_backward(
        gout.astype(np.float32), src.astype(np.float32), tgt.astype(np.float32), SIZE
    )
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g, **tol(np.float32, "grad"))


def test_backward_is_deterministic_across_thread_counts(rng):
    numba = pytest.importorskip("numba", reason="numba is required")
    src, tgt = _points(rng)
    gout = rng.standard_normal((2, 5, 6, 2)).astype(np.float32)
    src, tgt = src.astype(np.float32), tgt.astype(np.float32)
    first = stn.tps_grid_backward(gout, src, tgt, SIZE)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = stn.tps_grid_backward(gout, src, tgt, SIZE)
    finally:
        numba.set_num_threads(old)
    assert np.array_equal(first, single)


# ----------------------------------------------------------------------------
# end to end, out=, layouts, empty batch
# ----------------------------------------------------------------------------


def test_end_to_end_with_grid_sample(rng):
    x = rng.standard_normal((2, 3, 5, 6))
    src, tgt = _points(rng)
    grid = stn.tps_grid(src, tgt, (2, 3, 5, 6))
    out = stn.grid_sample(x, grid, padding_mode="border")
    np.testing.assert_allclose(
        out, ref_grid_sample(x, grid, "bilinear", "border"), **tol(np.float64)
    )
    # identity targets: bilinear sampling at the pixel centres gives the input back
    ident = stn.tps_grid(src, np.stack([src, src]), (2, 3, 5, 6))
    np.testing.assert_allclose(stn.grid_sample(x, ident), x, **SOLVE_TOL[np.float64])
    # chain rule into the targets: grid_sample_backward then tps_grid_backward
    go = rng.standard_normal(out.shape)
    _, gg = stn.grid_sample_backward(go, x, grid, padding_mode="border", input_grad=False)
    gt = stn.tps_grid_backward(gg, src, tgt, (2, 3, 5, 6))
    k = (1, 2, 0)  # one entry, by central differences through the whole pipeline
    tp, tm = tgt.copy(), tgt.copy()
    tp[k] += 1e-6
    tm[k] -= 1e-6

    def loss(t):
        return np.sum(go * stn.grid_sample(x, stn.tps_grid(src, t, x.shape), padding_mode="border"))

    assert gt[k] == pytest.approx((loss(tp) - loss(tm)) / 2e-6, rel=1e-5, abs=1e-6)


def test_out_argument_and_layouts(rng):
    src, tgt = _points(rng, shared=False)
    want = stn.tps_grid(src, tgt, SIZE)
    out = np.empty((2, 5, 6, 2))
    assert stn.tps_grid(src, tgt, SIZE, out=out) is out
    np.testing.assert_array_equal(out, want)
    with pytest.raises(ValueError, match="out must have shape"):
        stn.tps_grid(src, tgt, SIZE, out=np.empty((2, 5, 6, 3)))
    # read-only, Fortran-ordered and negative-strided arguments, left untouched
    s2 = np.asfortranarray(src)
    t2 = np.ascontiguousarray(tgt[::-1])[::-1]
    s2.flags.writeable = False
    t2.flags.writeable = False
    np.testing.assert_array_equal(stn.tps_grid(s2, t2, SIZE), want)
    gout = np.asfortranarray(rng.standard_normal((2, 5, 6, 2)))
    keep = gout.copy()
    np.testing.assert_array_equal(
        stn.tps_grid_backward(gout, s2, t2, SIZE),
        stn.tps_grid_backward(np.ascontiguousarray(gout), src, tgt, SIZE),
    )
    np.testing.assert_array_equal(gout, keep)
    np.testing.assert_array_equal(s2, src)


def test_empty_batch(rng):
    src, _ = _points(rng)
    tgt = np.zeros((0, len(src), 2))
    assert stn.tps_grid(src, tgt, (0, 1, 3, 4)).shape == (0, 3, 4, 2)
    g = stn.tps_grid_backward(np.zeros((0, 3, 4, 2)), src, tgt, (0, 1, 3, 4))
    assert g.shape == (0, len(src), 2)


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------


def _good():
    src = base_points(5, 6, False, PIXELS)
    return src, np.stack([src, src])


def _nan_at(a, index, value=np.nan):
    a = a.copy()
    a[index] = value
    return a


def _line(k):
    """k distinct points on the line y = 0.7 x - 0.2 (inexact in binary)."""
    x = np.linspace(-0.9, 0.8, k)
    return np.c_[x, 0.7 * x - 0.2]


BAD_POINTS = {
    "src-shape": (lambda s, t: (s[:, :1], t), ValueError, r"source_points must have shape"),
    "tgt-shape": (lambda s, t: (s, t[0]), ValueError, r"target_points must have shape \(N, K, 2"),
    "K-mismatch": (lambda s, t: (s[:5], t), ValueError, r"same number of control points K"),
    "batch": (
        lambda s, t: (np.stack([s] * 3), t),
        ValueError,
        r"source_points.shape\[0\] \(batch\) must equal target_points",
    ),
    "K<3": (lambda s, t: (s[:2], t[:, :2]), ValueError, r"K >= 3 control points"),
    "mixed-dtype": (
        lambda s, t: (s.astype(np.float32), t),
        TypeError,
        r"source_points has dtype float32",
    ),
    "int-dtype": (
        lambda s, t: (s.astype(np.int64), t),
        TypeError,
        r"source_points must have dtype",
    ),
    "src-nan": (
        lambda s, t: (_nan_at(s, (2, 1)), t),
        ValueError,
        r"source_points must be finite; got nan at index \(2, 1\)",
    ),
    "tgt-inf": (
        lambda s, t: (s, _nan_at(t, (1, 0, 0), np.inf)),
        ValueError,
        r"target_points must be finite; got inf at index \(1, 0, 0\)",
    ),
    "duplicates": (
        lambda s, t: (np.concatenate([s, s[3:4]]), np.concatenate([t, t[:, 3:4]], 1)),
        ValueError,
        r"source_points has duplicate control points: points 3 and 6",
    ),
    "collinear-sample1": (
        lambda s, t: (np.stack([s, _line(len(s))]), t),
        ValueError,
        r"source_points are all collinear in sample 1",
    ),
    "collinear-line": (
        lambda s, t: (_line(len(s)), t),
        ValueError,
        r"source_points are all collinear",
    ),
    "all-equal-regularized": (
        lambda s, t: (np.zeros_like(s), t),
        ValueError,
        r"source_points are all collinear \(on one line, or all equal\)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_POINTS))
def test_bad_points(case):
    change, exc, match = BAD_POINTS[case]
    src, tgt = change(*_good())
    lam = 0.1 if case.endswith("regularized") else 0.0
    size = (2, 1, 5, 6)
    with pytest.raises(exc, match=match):
        stn.tps_grid(src, tgt, size, regularization=lam)
    with pytest.raises(exc, match=match):
        stn.tps_grid_backward(np.zeros((2, 5, 6, 2)), src, tgt, size, regularization=lam)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(regularization=-0.1), ValueError, r"regularization must be a finite number >= 0"),
        (dict(regularization=math.nan), ValueError, r"regularization must be a finite number"),
        (dict(regularization=True), TypeError, r"regularization must be a real number"),
        (dict(regularization="0"), TypeError, r"regularization must be a real number"),
        (dict(align_corners=1), TypeError, r"align_corners must be a bool"),
        (dict(size=(3, 1, 5, 6)), ValueError, r"size\[0\] \(batch\) must equal target_points"),
        (dict(size=(2, 1, 5)), ValueError, r"size must have 4 entries"),
        (dict(size=(2, 1, 0, 6)), ValueError, r"size's spatial entries must be >= 1"),
        (dict(device="tpu"), ValueError, r"device must be None, 'cpu' or 'cuda'"),
    ],
    ids=["lam-neg", "lam-nan", "lam-bool", "lam-str", "ac", "size-batch", "size-len", "size-0",
         "device"],
)  # fmt: skip
def test_bad_arguments(kwargs, exc, match):
    src, tgt = _good()
    kw = {"size": (2, 1, 5, 6), **kwargs}
    with pytest.raises(exc, match=match):
        stn.tps_grid(src, tgt, **kw)
    with pytest.raises(exc, match=match):
        stn.tps_grid_backward(np.zeros((2, 5, 6, 2)), src, tgt, **kw)


def test_bad_grad_grid():
    src, tgt = _good()
    with pytest.raises(ValueError, match=r"grad_grid must have shape \(2, 5, 6, 2\)"):
        stn.tps_grid_backward(np.zeros((2, 6, 5, 2)), src, tgt, (2, 1, 5, 6))
    with pytest.raises(TypeError, match=r"grad_grid has dtype float32"):
        stn.tps_grid_backward(np.zeros((2, 5, 6, 2), np.float32), src, tgt, (2, 1, 5, 6))
