"""Property tests (hypothesis): invariants over random shapes, modes, paddings,
align_corners and grids.

Bounded for CI: float64 only (the specialisations the other tests compile anyway),
images up to 7×7, 30 examples per property, derandomized (the same examples every run).
"""

import numpy as np
import pytest
from conftest import tol

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import stn_numba as stn  # noqa: E402

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MODES = st.sampled_from(["bilinear", "nearest", "bicubic"])
PADS = st.sampled_from(["zeros", "border", "reflection"])
BOOL = st.booleans()
SEEDS = st.integers(0, 2**32 - 1)


def _shape(draw, square=False):
    n = draw(st.integers(1, 2))
    c = draw(st.integers(1, 2))
    h = draw(st.integers(1, 7))
    w = h if square else draw(st.integers(1, 7))
    return n, c, h, w


@st.composite
def images(draw, square=False):
    shape = _shape(draw, square)
    rng = np.random.default_rng(draw(SEEDS))
    return rng.standard_normal(shape)


@st.composite
def grids(draw, n, h, w, spread=1.5):
    rng = np.random.default_rng(draw(SEEDS))
    return rng.uniform(-spread, spread, (n, h, w, 2))


@SETTINGS
@given(x=images(), mode=MODES, pad=PADS)
def test_identity_theta_reproduces_the_input(x, mode, pad):
    theta = np.tile(np.eye(2, 3), (x.shape[0], 1, 1))
    out = stn.warp_affine(x, theta, mode=mode, padding_mode=pad, align_corners=True)
    np.testing.assert_allclose(out, x, **tol(np.float64))


@SETTINGS
@given(
    x=images(square=True),
    mode=MODES,
    pad=PADS,
    ac=BOOL,
    quarter=st.integers(0, 3),
    flip=BOOL,
    shift=st.tuples(st.integers(-2, 2), st.integers(-2, 2)),
)
def test_warp_then_inverse_warp_returns_the_interior(x, mode, pad, ac, quarter, flip, shift):
    """Rotations by 90°, flips and whole-pixel shifts map pixel centres onto pixel
    centres: warping by θ and then by θ⁻¹ gives back every pixel whose shifted position
    stayed inside the image."""
    n, _, s, _ = x.shape
    if ac and s == 1:
        return  # with align_corners=True an axis of size 1 has no pixel step to shift by
    c, si = [(1, 0), (0, 1), (-1, 0), (0, -1)][quarter]
    A = np.array([[c, -si], [si, c]], float)
    if flip:
        A = A @ np.diag([-1.0, 1.0])
    step = 2.0 / (s - 1) if ac else 2.0 / s
    t = step * np.array(shift, float)
    theta = np.tile(np.hstack([A, t[:, None]]), (n, 1, 1))
    Ai = np.linalg.inv(A)
    inv = np.tile(np.hstack([Ai, (-Ai @ t)[:, None]]), (n, 1, 1))
    kw = dict(mode=mode, padding_mode=pad, align_corners=ac)
    back = stn.warp_affine(stn.warp_affine(x, theta, **kw), inv, **kw)
    # the interior: pixels whose image under θ⁻¹ lies inside (index space, 2 px margin
    # for bicubic's taps under zeros padding)
    margin = 2 if mode == "bicubic" and pad == "zeros" else 0
    lo, hi = max(abs(shift[0]), abs(shift[1])) + margin, s - max(abs(shift[0]), abs(shift[1]))
    hi -= margin
    if lo >= hi:
        return
    np.testing.assert_allclose(
        back[:, :, lo:hi, lo:hi], x[:, :, lo:hi, lo:hi], rtol=1e-10, atol=1e-10
    )


@SETTINGS
@given(data=st.data(), mode=MODES, pad=PADS, ac=BOOL)
def test_adjoint_identity(data, mode, pad, ac):
    """<grid_sample(x, g), y> == <x, grad_input(y)> == <x, splat(y, g)>."""
    x = data.draw(images())
    n, c = x.shape[:2]
    ho, wo = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    g = data.draw(grids(n, ho, wo))
    y = np.random.default_rng(data.draw(SEEDS)).standard_normal((n, c, ho, wo))
    kw = dict(mode=mode, padding_mode=pad, align_corners=ac)
    lhs = np.sum(stn.grid_sample(x, g, **kw) * y)
    gi, _ = stn.grid_sample_backward(y, x, g, grid_grad=False, **kw)
    sp = stn.splat(y, g, x.shape[2:], **kw)
    scale = max(1.0, np.sum(np.abs(x)) * np.max(np.abs(y)))
    assert abs(lhs - np.sum(x * gi)) <= 1e-12 * scale
    assert abs(lhs - np.sum(x * sp)) <= 1e-12 * scale


@SETTINGS
@given(data=st.data(), mode=MODES, pad=PADS, ac=BOOL, a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_linear_in_the_input(data, mode, pad, ac, a, b):
    x1 = data.draw(images())
    x2 = np.random.default_rng(data.draw(SEEDS)).standard_normal(x1.shape)
    g = data.draw(grids(x1.shape[0], 4, 5))
    kw = dict(mode=mode, padding_mode=pad, align_corners=ac)
    lhs = stn.grid_sample(a * x1 + b * x2, g, **kw)
    rhs = a * stn.grid_sample(x1, g, **kw) + b * stn.grid_sample(x2, g, **kw)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10 * (1 + abs(a) + abs(b)))


FINITE = st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(data=st.data(), mode=MODES, pad=PADS, ac=BOOL)
def test_finite_in_finite_out(data, mode, pad, ac):
    """Any finite grid values, huge ones included, give finite outputs and gradients."""
    x = data.draw(images())
    n = x.shape[0]
    vals = data.draw(st.lists(FINITE, min_size=n * 3 * 2 * 2, max_size=n * 3 * 2 * 2))
    g = np.array(vals).reshape(n, 3, 2, 2)
    kw = dict(mode=mode, padding_mode=pad, align_corners=ac)
    out = stn.grid_sample(x, g, **kw)
    assert np.all(np.isfinite(out))
    gi, gg = stn.grid_sample_backward(np.ones_like(out), x, g, **kw)
    assert np.all(np.isfinite(gi)) and np.all(np.isfinite(gg))
