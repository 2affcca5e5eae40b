"""The B-spline arithmetic (stn_numba._bspline) against scipy.ndimage and finite differences."""

import numba
import numpy as np
import pytest
import scipy.ndimage as ndi

from stn_numba import _bspline as B

BOUNDARIES = [(B.MIRROR, "mirror"), (B.REFLECT, "reflect"), (B.PERIODIC, "grid-wrap")]


@numba.njit
def _interp(c, x, order, boundary):
    out = np.empty(x.shape[0])
    for k in range(x.shape[0]):
        i0, w = B.spline_weights(x[k], order)
        acc = 0.0
        for j in range(order + 1):
            acc += w[j] * c[B.fold_index(i0 + j, c.shape[0], boundary)]
        out[k] = acc
    return out


@numba.njit
def _prefilter(c, order, boundary, transpose):
    if transpose:
        B.prefilter_line_transpose(c, order, boundary)
    else:
        B.prefilter_line(c, order, boundary)


@numba.njit
def _weights(x, order):
    i0, w = B.spline_weights(x, order)
    return i0, np.array(w)


@numba.njit
def _weight_grads(x, order):
    return np.array(B.spline_weight_grads(x, order))


def _filtered(s, order, boundary, transpose=False):
    c = np.array(s, dtype=np.float64)
    _prefilter(c, order, boundary, transpose)
    return c


@pytest.mark.parametrize("order", range(6))
def test_weights_are_the_spline_at_the_taps(order):
    # β_k(u) from scipy's own spline evaluation: interpolate a unit impulse without
    # prefilter and read it at x; the weight of tap j is β_k(x - j).
    rng = np.random.default_rng(order)
    for x in rng.uniform(-4, 4, 25):
        i0, w = _weights(x, order)
        assert w[order + 1 :].tolist() == [0.0] * (5 - order)
        assert w.sum() == pytest.approx(1.0, abs=1e-14)
        impulse = np.zeros(21)
        impulse[10] = 1.0
        for j in range(order + 1):
            ref = ndi.map_coordinates(
                impulse, [[10 + x - (i0 + j)]], order=order, prefilter=False, mode="constant"
            )[0]
            assert w[j] == pytest.approx(ref, abs=1e-13), (x, j)


@pytest.mark.parametrize("order", range(1, 6))
def test_weight_grads_match_finite_differences(order):
    h = 1e-6
    for x in np.random.default_rng(order).uniform(-4, 4, 25):
        i_hi, w_hi = _weights(x + h, order)
        i_lo, w_lo = _weights(x - h, order)
        if i_hi != i_lo:  # a knot between x - h and x + h
            continue
        fd = (w_hi - w_lo) / (2 * h)
        np.testing.assert_allclose(_weight_grads(x, order), fd, atol=1e-7)


@pytest.mark.parametrize("order", range(2, 6))
@pytest.mark.parametrize("n", [1, 2, 3, 7, 90])
def test_prefilter_interpolates_the_samples(order, n):
    s = np.random.default_rng(n).standard_normal(n)
    for boundary, _ in BOUNDARIES:
        c = _filtered(s, order, boundary)
        np.testing.assert_allclose(
            _interp(c, np.arange(n, dtype=float), order, boundary), s, atol=1e-13
        )


@pytest.mark.parametrize("order", range(2, 6))
@pytest.mark.parametrize("n", [2, 5, 90])
def test_prefilter_and_interpolation_match_scipy(order, n):
    rng = np.random.default_rng(n)
    s = rng.standard_normal(n)
    x = rng.uniform(-3, n + 2, 40)
    for boundary, mode in BOUNDARIES:
        if boundary == B.REFLECT and n < 50:
            # scipy's half-sample-mirror prefilter is not exact on short lines (it
            # does not reproduce the samples: off by 5e-4 at n = 2, order 3); ours
            # is, as the test above checks. From about 50 samples the two agree.
            continue
        np.testing.assert_allclose(
            _filtered(s, order, boundary), ndi.spline_filter1d(s, order, mode=mode), atol=1e-13
        )
        ref = ndi.map_coordinates(s, [x], order=order, mode=mode)
        np.testing.assert_allclose(
            _interp(_filtered(s, order, boundary), x, order, boundary), ref, atol=1e-12
        )


@pytest.mark.parametrize("order", range(2, 6))
@pytest.mark.parametrize("n", [2, 3, 9, 90])
def test_prefilter_transpose_is_the_adjoint(order, n):
    rng = np.random.default_rng(n)
    a, g = rng.standard_normal(n), rng.standard_normal(n)
    for boundary, _ in BOUNDARIES:
        lhs = _filtered(a, order, boundary) @ g
        rhs = a @ _filtered(g, order, boundary, transpose=True)
        assert lhs == pytest.approx(rhs, abs=1e-12)


@pytest.mark.parametrize("boundary", [b for b, _ in BOUNDARIES])
def test_fold_index(boundary):
    n = 4
    got = [B.fold_index(i, n, boundary) for i in range(-6, 10)]
    ref = np.pad(
        np.arange(n),
        12,
        mode={B.MIRROR: "reflect", B.REFLECT: "symmetric", B.PERIODIC: "wrap"}[boundary],
    )[12 - 6 : 12 + 10]
    assert got == ref.tolist()
    assert B.zero_margin(3) > 0 and B.zero_margin(1) == 0
