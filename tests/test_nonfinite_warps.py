"""Non-finite and huge values in θ, homographies and flows: the rules of
docs/errors.md ("Non-finite and huge values") for the warps that compute their own
points. A file of its own so that the parallel test runner (one file per worker) can
run it beside test_nonfinite.py, whose helpers it uses.
"""

import numpy as np
import pytest
from conftest import DTYPES
from test_nonfinite import BAD, BAD_IDS, _pairs_shared, _problem

import stn_numba as stn


def _theta(dims, dtype, bad, where):
    t = np.stack([np.eye(dims, dims + 1)] * 2) * 0.9
    t[1][where] = bad
    return t.astype(dtype)


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
@pytest.mark.parametrize("where", [(0, 0), (0, 2), (1, 1)], ids=["linear", "shift", "diag"])
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_warp_affine(dtype, dims, where, bad):
    """A bad θ entry in sample 1: sample 1 is finite (0 / edge / folded) with finite
    gradients; sample 0 is exactly what it is alone."""
    x, _, _ = _problem(dims, dtype, 0.0)
    theta = _theta(dims, dtype, bad, where)
    for mode, padding in _pairs_shared(dtype, dims):
        for ac in (False, True):
            args = (None, mode, padding, ac)
            out = stn.warp_affine(x, theta, *args)
            gi, gt = stn.warp_affine_backward(np.ones_like(out), x, theta, *args)
            assert np.isfinite(out).all() and np.isfinite(gi).all()
            assert np.isfinite(gt).all()
            alone = stn.warp_affine(x[:1], theta[:1], *args)
            np.testing.assert_array_equal(out[:1], alone)
            gi0, gt0 = stn.warp_affine_backward(np.ones_like(alone), x[:1], theta[:1], *args)
            np.testing.assert_array_equal(gi[:1], gi0)
            np.testing.assert_array_equal(gt[:1], gt0)
            if np.isnan(bad):
                assert np.all(gi[1] == 0) and np.all(gt[1] == 0)


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
@pytest.mark.parametrize("where", [(0, 0), (0, 2), (2, 0), (2, 2)])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_warp_perspective(dtype, where, bad):
    """A bad H entry in sample 1: its points are NaN (sampled as 0) or clamped; all
    finite; sample 0 untouched."""
    x, _, _ = _problem(2, dtype, 0.0)
    H = np.stack([np.eye(3)] * 2)
    H[1][where] = bad
    H = H.astype(dtype)
    grid = stn.perspective_grid(H, (2, 1, 4, 5))
    assert not np.isinf(grid).any() or True  # the grid itself may hold inf/NaN
    gH = stn.perspective_grid_backward(np.ones_like(grid), H, (2, 1, 4, 5))
    assert np.isfinite(gH).all()
    for mode, padding in _pairs_shared(dtype, 2):
        for ac in (False, True):
            args = (None, mode, padding, ac)
            out = stn.warp_perspective(x, H, *args)
            gi, gHw = stn.warp_perspective_backward(np.ones_like(out), x, H, *args)
            assert np.isfinite(out).all() and np.isfinite(gi).all()
            assert np.isfinite(gHw).all()
            alone = stn.warp_perspective(x[:1], H[:1], *args)
            np.testing.assert_array_equal(out[:1], alone)


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_warp_flow(dtype, dims, bad):
    """Bad flow vectors: warp_flow is grid_sample at flow_grid's points, so the grid
    rules apply; the flow gradient at a bad component is 0."""
    x, grid, gout = _problem(dims, dtype, bad)
    flow = grid * 2  # same bad points; values in pixels
    size = x.shape[2:]
    fg = stn.flow_grid(flow, size)
    assert np.array_equal(np.isnan(fg), np.isnan(flow))  # NaN stays NaN, inf stays inf
    for mode, padding in _pairs_shared(dtype, dims):
        for ac in (False, True):
            args = (mode, padding, ac)
            out = stn.warp_flow(x, flow, *args)
            gi, gf = stn.warp_flow_backward(gout, x, flow, *args)
            assert np.isfinite(out).all() and np.isfinite(gi).all()
            assert np.isfinite(gf).all()
            assert np.all(gf[~(np.abs(flow) < 1e20)] == 0)
            g = stn.flow_grid(flow, size, ac)
            ref = stn.grid_sample(x, g, *args)
            np.testing.assert_array_equal(out, ref)  # the same points, in the same dtype
