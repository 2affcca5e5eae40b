"""Non-finite and huge values (NaN, ±inf, ±1e30) in grids, θ, H, flows and TPS points
(the rules are in docs/errors.md, "Non-finite and huge values").

grid_sample: every mode × padding × align_corners, forward and backward, 2-D and 3-D,
in float32, and each mode and padding in float64 (the rules do not depend on the dtype);
splat with two (mode, padding) pairs in float32 and one in float64; the warps with
their own points (θ, homography, flow): test_nonfinite_warps.py. The checks: no crash; the output
and every gradient finite (the input is); the points that hold the bad values give the
documented result; and the other points are untouched (no NaN leaks): their outputs and
grid gradients equal a run without the bad points.

The references are the library's own results on *finite* stand-ins, which the rules make
exact: a NaN coordinate samples 0 with zero gradient (= that point removed: its
grad_output zeroed); ±inf and ±1e30 are clamped to ±2**40 pixels with derivative 0, which
under ``zeros`` and ``border`` padding is the same as a coordinate of ±3 (outside the
input, so 0, or clipped to the edge: both with derivative 0).
"""

import numpy as np
import pytest
from conftest import DTYPES, MODES_2D, MODES_3D, PADDINGS, covering_pairs, tol

import stn_numba as stn

BAD = [np.nan, np.inf, -np.inf, 1e30, -1e30]
BAD_IDS = ["nan", "inf", "-inf", "1e30", "-1e30"]


def _modes_paddings(dtype, dims):
    """Every (mode, padding) in float32, and pairs covering each mode and each padding
    once in float64: the non-finite rules do not depend on the dtype, and every pair
    is a driver of its own to compile."""
    modes = MODES_2D if dims == 2 else MODES_3D
    if np.dtype(dtype) == np.float32 and dims == 2:
        return [(m, p) for m in modes for p in PADDINGS]
    return covering_pairs(dims)  # 3-D float32 too: as test_torch_parity's default run


def _pairs_shared(dtype, dims):
    """For the warps (θ, homography, flow) and splat: in float32 (bilinear, reflection),
    which folds huge values back inside, and (nearest, border), whose backward is the
    scatter rather than θ's fused one; (bilinear, zeros) in float64. Their points reach
    the same kernels as grid_sample's, whose rules test_grid_sample checks for every
    pair; here each source's own path is what is tested."""
    if np.dtype(dtype) == np.float32:
        return [("bilinear", "reflection"), ("nearest", "border")]
    return [("bilinear", "zeros")]


GRID_CASES = [
    (dtype, dims, m, p)
    for dtype in DTYPES
    for dims in (2, 3)
    for m, p in _modes_paddings(dtype, dims)
]


def _problem(dims, dtype, bad, seed=3):
    """input (2, 2, *spatial), grid with its first row (first plane in 3-D) of sample 0
    holding ``bad`` in one or more coordinates of each point, grad_output."""
    rng = np.random.default_rng(seed)
    spatial_in = (4, 5) if dims == 2 else (3, 4, 5)
    spatial_out = (3, 4) if dims == 2 else (2, 3, 4)
    x = rng.standard_normal((2, 2, *spatial_in)).astype(dtype)
    grid = rng.uniform(-1.2, 1.2, (2, *spatial_out, dims))
    row = grid[0, 0] if dims == 2 else grid[0, 0, 0]  # (W, dims) view: the bad points
    patterns = [(0,), (1,), tuple(range(dims)), (dims - 1,)]
    for w, axes in enumerate(patterns):
        row[w, list(axes)] = bad if w != 3 else -bad  # both signs of inf / huge
    gout = rng.standard_normal((2, 2, *spatial_out)).astype(dtype)
    return x, grid.astype(dtype), gout


def _bad_mask(grid):
    """(N, *spatial) True at points with a non-finite or huge coordinate."""
    return ~np.all(np.abs(grid) < 1e20, axis=-1)


def _stand_in(grid):
    """±inf / ±1e30 -> ±3 (outside the input; NaN stays)."""
    g = grid.copy()
    big = np.abs(g) >= 1e20
    g[big] = 3.0 * np.sign(g[big])
    return g


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    "dtype,dims,mode,padding", GRID_CASES, ids=lambda v: getattr(v, "__name__", str(v))
)
def test_grid_sample(dtype, dims, mode, padding, align_corners, bad):
    x, grid, gout = _problem(dims, dtype, bad)
    mask = _bad_mask(grid)
    args = (mode, padding, align_corners)
    out = stn.grid_sample(x, grid, *args)
    gi, gg = stn.grid_sample_backward(gout, x, grid, *args)
    assert np.isfinite(out).all() and np.isfinite(gi).all() and np.isfinite(gg).all()
    # The bad coordinates themselves have zero gradient.
    bad_coords = ~(np.abs(grid) < 1e20)
    assert np.all(gg[bad_coords] == 0)
    if np.isnan(bad):
        # NaN: the point samples 0 and has zero gradient = the point removed.
        assert np.all(out.transpose(0, *range(2, out.ndim), 1)[mask] == 0)
        assert np.all(gg[mask] == 0)
        g0 = np.where(np.isnan(grid), 0, grid).astype(dtype)
        go0 = gout.copy()
        go0.transpose(0, *range(2, go0.ndim), 1)[mask] = 0
        want_out = stn.grid_sample(x, g0, *args)
        want_gi, want_gg = stn.grid_sample_backward(go0, x, g0, *args)
        keep = ~mask
        np.testing.assert_array_equal(
            out.transpose(0, *range(2, out.ndim), 1)[keep],
            want_out.transpose(0, *range(2, out.ndim), 1)[keep],
        )
        np.testing.assert_array_equal(gg[keep], want_gg[keep])
        np.testing.assert_array_equal(gi, want_gi)
    elif padding in ("zeros", "border"):
        # ±inf, ±1e30: exactly what a coordinate of ±3 gives (outside / clipped).
        # (bicubic: at ±3 and at 2**40 the clipped taps have other weights, summing to
        # 1 up to rounding)
        same = np.testing.assert_array_equal
        if mode == "bicubic":

            def same(a, b):
                np.testing.assert_allclose(a, b, **tol(dtype, "grad"))

        ref = _stand_in(grid)
        same(out, stn.grid_sample(x, ref, *args))
        want_gi, want_gg = stn.grid_sample_backward(gout, x, ref, *args)
        same(gg[~bad_coords], want_gg[~bad_coords])
        same(gi, want_gi)
    else:
        # reflection folds ±2**40 back inside: some finite point; the others untouched.
        keep = ~mask
        ref = np.where(mask[..., None], 0, grid).astype(dtype)
        want = stn.grid_sample(x, ref, *args)
        np.testing.assert_array_equal(
            out.transpose(0, *range(2, out.ndim), 1)[keep],
            want.transpose(0, *range(2, out.ndim), 1)[keep],
        )
        _, want_gg = stn.grid_sample_backward(gout, x, ref, *args)
        np.testing.assert_array_equal(gg[keep], want_gg[keep])
        if mode != "bicubic":  # a convex combination of input values
            assert out.min() >= x.min() and out.max() <= x.max()


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
@pytest.mark.parametrize(
    "dtype,mode,padding",
    [(d, m, p) for d in DTYPES for m, p in _pairs_shared(d, 2)],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_splat(dtype, mode, padding, bad):
    """splat scatters with grid_sample's weights: NaN targets drop their pixel, clamped
    ones go outside (zeros) or to the edge (border) or fold back (reflection)."""
    x, grid, _ = _problem(2, dtype, bad)
    x = x[:, :, :3, :4].copy()  # splat's input lives on grid's lattice
    for ac in (False, True):
        out = stn.splat(x, grid, (4, 5), mode, padding, ac)
        gi, gg = stn.splat_backward(np.ones_like(out), x, grid, mode, padding, ac)
        assert np.isfinite(out).all() and np.isfinite(gi).all() and np.isfinite(gg).all()
        assert np.all(gg[~(np.abs(grid) < 1e20)] == 0)
        # adjointness survives: <grid_sample(y', g), x> == <y', splat(x, g)>
        yy = np.random.default_rng(6).standard_normal(out.shape).astype(dtype)
        lhs = np.vdot(stn.grid_sample(yy, grid, mode, padding, ac).astype(np.float64), x)
        rhs = np.vdot(yy.astype(np.float64), out)
        assert lhs == pytest.approx(rhs, rel=1e-4, abs=1e-4)
        if np.isnan(bad):
            bare = x.copy()
            bare.transpose(0, 2, 3, 1)[_bad_mask(grid)] = 0
            np.testing.assert_array_equal(out, stn.splat(bare, grid, (4, 5), mode, padding, ac))


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
def test_grid_generators_pass_values_through(bad):
    """affine_grid, perspective_grid and flow_grid compute in IEEE arithmetic: a bad
    parameter gives bad grid values (NaN, ±inf or huge), never an error or a crash;
    the samplers then apply the rules above. Their backwards stay finite where
    grad_grid is finite and zero at the bad points of the samplers' gradients."""
    theta = np.eye(2, 3)[None].copy()
    theta[0, 0, 2] = bad
    grid = stn.affine_grid(theta, (1, 1, 2, 3))
    if np.isnan(bad):
        assert np.isnan(grid[..., 0]).all() and np.isfinite(grid[..., 1]).all()
    else:
        assert np.all(np.abs(grid[..., 0]) >= 1e29)
    flow = np.zeros((1, 2, 3, 2))
    flow[0, 0, 0, 0] = bad
    fg = stn.flow_grid(flow)
    assert np.isnan(fg[0, 0, 0, 0]) == np.isnan(bad) and np.isfinite(fg[0, 1]).all()
    # Backwards of the generators with a finite grad_grid are finite.
    assert np.isfinite(stn.affine_grid_backward(np.ones((1, 2, 3, 2)), (1, 1, 2, 3))).all()
    assert np.isfinite(stn.flow_grid_backward(np.ones((1, 2, 3, 2)), (2, 3))).all()


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
@pytest.mark.parametrize("which", ["source_points", "target_points"])
def test_tps_points_rejected(which, bad):
    """TPS control points must be finite: a clear ValueError, as documented (the spline
    solve would otherwise fill the whole grid with NaN). 1e30 is finite and accepted
    for targets (the grid is linear in them); as a source point it makes the system
    ill-posed and is rejected or gives a finite grid — never a crash."""
    src = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1], [0, 0.0]])
    tgt = src[None].copy()
    args = {"source_points": src.copy(), "target_points": tgt}
    args[which][..., 2, 1] = bad
    if np.isfinite(bad):
        try:
            grid = stn.tps_grid(**args, size=(1, 1, 3, 4))
        except ValueError:
            return
        assert not np.isnan(grid).any() or which == "source_points"
        return
    with pytest.raises(ValueError, match=rf"{which} must be finite"):
        stn.tps_grid(**args, size=(1, 1, 3, 4))
    with pytest.raises(ValueError, match=rf"{which} must be finite"):
        stn.tps_grid_backward(np.zeros((1, 3, 4, 2)), **args, size=(1, 1, 3, 4))


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
def test_pixel_matrices_rejected(bad):
    """The θ <-> pixel-matrix conversions refuse non-finite matrices (ValueError)."""
    if np.isfinite(bad):
        pytest.skip("±1e30 is a finite matrix entry")
    M = np.eye(2, 3)
    M[0, 2] = bad
    for fn, name in [
        (stn.theta_from_cv2, "M"),
        (stn.theta_to_cv2, "theta"),
        (stn.theta_to_scipy, "theta"),
    ]:
        with pytest.raises(ValueError, match=rf"{name} must be finite"):
            fn(M, (3, 4))
    with pytest.raises(ValueError, match="matrix must be finite"):
        stn.theta_from_scipy(M, (3, 4))
    with pytest.raises(ValueError, match="matrix must be finite"):
        stn.warp_affine_pixels(np.zeros((1, 1, 3, 4)), M, convention="cv2")
