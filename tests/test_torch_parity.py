"""Parity with ``torch.nn.functional``: forward values and autograd gradients of
affine_grid, grid_sample and their fusion warp_affine, in 2-D and 3-D: every mode ×
padding_mode × align_corners in float32, and in float64 pairs of (mode, padding) that
cover each mode and each padding once (each combination is a driver that the run
compiles; see ``dtype_matrix`` in conftest.py: by default float32 on the covering pairs
too, the rest with ``--all``); warp_affine with every padding for its
fused (bi/tri)linear backward and each other mode once (WARP_MATRIX).

Both sides start from the same NumPy arrays and compute in the same dtype; torch's
gradients are those of ``sum(out * gout)`` for a random ``gout``.
"""

import warnings

import numpy as np
import pytest
from conftest import (
    DTYPES,
    PADDINGS,
    covering_pairs,
    dtype_matrix,
    random_theta,
    tol,
)

import stn_numba as stn

torch = pytest.importorskip("torch", reason="torch not installed: PyTorch parity tests skipped")
F = torch.nn.functional

pytestmark = pytest.mark.torch

ALIGNS = [True, False]

# Tiny non-square shapes; the output's spatial size differs from the input's.
N, C = 2, 2
IN_2D, OUT_2D = (5, 7), (4, 6)
IN_3D, OUT_3D = (4, 5, 6), (3, 4, 5)


def _t(a, requires_grad=False):
    """A torch tensor holding a copy of ``a`` (same dtype), optionally a leaf to differentiate."""
    return torch.from_numpy(np.array(a, copy=True)).requires_grad_(requires_grad)


def _np(t):
    return t.detach().numpy()


def _torch_affine_grid(theta, size, align_corners):
    """``F.affine_grid``; torch warns about unit-size grids with align_corners=True (its
    pre-1.3 behaviour changed) and pytest turns warnings into errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return F.affine_grid(theta, list(size), align_corners=align_corners)


def _assert_grad_close(got, ref, dtype):
    """Gradients against torch's autograd with conftest's "grad" tolerance of ``dtype``.

    No float32 widening is needed: torch reduces in float32 (bmm, atomic adds) and we in
    float64, but at these sizes the worst float32 case (grad_θ of warp_affine, a sum over
    every output pixel) uses under a fifth of the table's tolerance over many seeds.
    """
    np.testing.assert_allclose(got, ref, **tol(dtype, "grad"))


def _grid(rng, shape, dims, dtype):
    """Grid values uniform in [-1.6, 1.6]: inside, across the edges and outside.

    Random floats never hit the .5 ties of nearest rounding, nor (in practice) the
    integer kinks of linear interpolation, where one-sided gradients could differ.
    """
    return rng.uniform(-1.6, 1.6, (N, *shape, dims)).astype(dtype)


def _sample_case(rng, dims, dtype):
    in_shape, out_shape = (IN_2D, OUT_2D) if dims == 2 else (IN_3D, OUT_3D)
    x = rng.standard_normal((N, C, *in_shape)).astype(dtype)
    g = _grid(rng, out_shape, dims, dtype)
    gout = rng.standard_normal((N, C, *out_shape)).astype(dtype)
    return x, g, gout


def _torch_sample_grads(x, g, gout, mode, padding, align_corners):
    """(output, grad_input, grad_grid) of torch's grid_sample by autograd."""
    tx, tg = _t(x, True), _t(g, True)
    out = F.grid_sample(tx, tg, mode=mode, padding_mode=padding, align_corners=align_corners)
    gi, gg = torch.autograd.grad((out * _t(gout)).sum(), (tx, tg))
    return _np(out), _np(gi), _np(gg)


#: float32 over every (mode, padding), float64 over pairs covering each once (by
#: default the covering pairs in float32 only: see conftest.dtype_matrix).
MATRIX = dtype_matrix()
#: warp_affine: the fused one-pass backward of (bi/tri)linear mode has a driver per
#: padding, checked for each; the other modes run grid_sample's drivers (every pair
#: above) behind θ's points: each mode and padding once per dtype.
WARP_MATRIX = [
    c
    for c in MATRIX
    if c.values[2] == "bilinear" or tuple(c.values[2:]) in covering_pairs(c.values[1])
]
#: Both dtypes, each mode once with its covering padding (for what padding leaves alone).
COVERING = [c for c in MATRIX if tuple(c.values[2:]) in covering_pairs(c.values[1])]


# ----------------------------------------------------------------------------
# grid_sample
# ----------------------------------------------------------------------------


class TestGridSample:
    @pytest.mark.parametrize("align_corners", ALIGNS)
    @pytest.mark.parametrize("dtype,dims,mode,padding", MATRIX)
    def test_forward(self, rng, dims, mode, padding, align_corners, dtype):
        x, g, _ = _sample_case(rng, dims, dtype)
        ref = F.grid_sample(
            _t(x), _t(g), mode=mode, padding_mode=padding, align_corners=align_corners
        )
        got = stn.grid_sample(x, g, mode, padding, align_corners)
        assert got.dtype == dtype and got.shape == tuple(ref.shape)
        np.testing.assert_allclose(got, _np(ref), **tol(dtype))

    @pytest.mark.parametrize("align_corners", ALIGNS)
    @pytest.mark.parametrize("dtype,dims,mode,padding", MATRIX)
    def test_backward(self, rng, dims, mode, padding, align_corners, dtype):
        x, g, gout = _sample_case(rng, dims, dtype)
        _, ref_gi, ref_gg = _torch_sample_grads(x, g, gout, mode, padding, align_corners)
        gi, gg = stn.grid_sample_backward(gout, x, g, mode, padding, align_corners)
        assert gi.dtype == dtype and gi.shape == x.shape
        assert gg.dtype == dtype and gg.shape == g.shape
        _assert_grad_close(gi, ref_gi, dtype)
        _assert_grad_close(gg, ref_gg, dtype)
        if mode == "nearest":
            np.testing.assert_array_equal(gg, 0.0)
            np.testing.assert_array_equal(ref_gg, 0.0)

    @pytest.mark.parametrize("dtype,dims,mode,padding", COVERING)
    def test_backward_flags(self, rng, dims, mode, padding, dtype):
        """A gradient not asked for comes back as None; the other is unchanged."""
        x, g, gout = _sample_case(rng, dims, dtype)
        args = (gout, x, g, mode, padding, False)
        _, ref_gi, ref_gg = _torch_sample_grads(x, g, gout, mode, padding, False)
        full_gi, full_gg = stn.grid_sample_backward(*args)

        gi, gg = stn.grid_sample_backward(*args, input_grad=True, grid_grad=False)
        assert gg is None
        np.testing.assert_array_equal(gi, full_gi)
        _assert_grad_close(gi, ref_gi, dtype)

        gi, gg = stn.grid_sample_backward(*args, input_grad=False, grid_grad=True)
        assert gi is None
        np.testing.assert_array_equal(gg, full_gg)
        _assert_grad_close(gg, ref_gg, dtype)

        assert stn.grid_sample_backward(*args, input_grad=False, grid_grad=False) == (None, None)

    @pytest.mark.parametrize("align_corners", ALIGNS)
    @pytest.mark.parametrize("dtype,dims,mode,padding", [c for c in MATRIX if c.values[1] == 2])
    @pytest.mark.parametrize("in_shape", [(1, 6), (5, 1), (1, 1)])
    def test_unit_size_input(self, rng, in_shape, dims, mode, padding, align_corners, dtype):
        """Inputs one pixel high or wide (∂i/∂g = 0 along that axis when align_corners)."""
        x = rng.standard_normal((N, C, *in_shape)).astype(dtype)
        g = _grid(rng, (3, 4), 2, dtype)
        gout = rng.standard_normal((N, C, 3, 4)).astype(dtype)
        ref, ref_gi, ref_gg = _torch_sample_grads(x, g, gout, mode, padding, align_corners)
        np.testing.assert_allclose(
            stn.grid_sample(x, g, mode, padding, align_corners), ref, **tol(dtype)
        )
        gi, gg = stn.grid_sample_backward(gout, x, g, mode, padding, align_corners)
        _assert_grad_close(gi, ref_gi, dtype)
        _assert_grad_close(gg, ref_gg, dtype)


# ----------------------------------------------------------------------------
# affine_grid
# ----------------------------------------------------------------------------

AFFINE_SIZES = [
    pytest.param((N, C, 4, 6), id="2d-4x6"),
    pytest.param((N, C, 1, 5), id="2d-1x5"),
    pytest.param((N, C, 3, 1), id="2d-3x1"),
    pytest.param((N, C, 1, 1), id="2d-1x1"),
    pytest.param((N, C, 3, 4, 5), id="3d-3x4x5"),
    pytest.param((N, C, 1, 4, 1), id="3d-1x4x1"),
    pytest.param((N, C, 2, 1, 3), id="3d-2x1x3"),
]


class TestAffineGrid:
    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("align_corners", ALIGNS)
    @pytest.mark.parametrize("size", AFFINE_SIZES)
    def test_forward(self, rng, size, align_corners, dtype):
        dims = len(size) - 2
        theta = random_theta(rng, N, dims, dtype, strength=0.5)
        ref = _torch_affine_grid(_t(theta), size, align_corners)
        got = stn.affine_grid(theta, size, align_corners)
        assert got.dtype == dtype and got.shape == tuple(ref.shape)
        np.testing.assert_allclose(got, _np(ref), **tol(dtype))

    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("align_corners", ALIGNS)
    @pytest.mark.parametrize("size", AFFINE_SIZES)
    def test_backward(self, rng, size, align_corners, dtype):
        dims = len(size) - 2
        theta = random_theta(rng, N, dims, dtype, strength=0.5)
        ggrid = rng.standard_normal((N, *size[2:], dims)).astype(dtype)
        tt = _t(theta, True)
        (ref,) = torch.autograd.grad(
            (_torch_affine_grid(tt, size, align_corners) * _t(ggrid)).sum(), (tt,)
        )
        got = stn.affine_grid_backward(ggrid, size, align_corners)
        assert got.dtype == dtype and got.shape == theta.shape
        _assert_grad_close(got, _np(ref), dtype)


# ----------------------------------------------------------------------------
# warp_affine (fused affine_grid + grid_sample)
# ----------------------------------------------------------------------------

WARP_SIZES = {2: [None, OUT_2D], 3: [None, OUT_3D]}


def _warp_case(rng, dims, size, dtype):
    in_shape = IN_2D if dims == 2 else IN_3D
    out_shape = in_shape if size is None else size
    x = rng.standard_normal((N, C, *in_shape)).astype(dtype)
    # strength 0.5: the map reaches well past the input's edges, so padding matters.
    theta = random_theta(rng, N, dims, dtype, strength=0.5)
    gout = rng.standard_normal((N, C, *out_shape)).astype(dtype)
    return x, theta, gout, (N, C, *out_shape)


def _torch_warp_grads(x, theta, gout, out_size, mode, padding, align_corners):
    """(output, grad_input, grad_theta) of grid_sample(affine_grid(θ)) by autograd."""
    tx, tt = _t(x, True), _t(theta, True)
    grid = _torch_affine_grid(tt, out_size, align_corners)
    out = F.grid_sample(tx, grid, mode=mode, padding_mode=padding, align_corners=align_corners)
    gi, gt = torch.autograd.grad((out * _t(gout)).sum(), (tx, tt))
    return _np(out), _np(gi), _np(gt)


class TestWarpAffine:
    @pytest.mark.parametrize("align_corners", ALIGNS)
    @pytest.mark.parametrize("resized", [False, True], ids=["same", "resized"])
    @pytest.mark.parametrize("dtype,dims,mode,padding", WARP_MATRIX)
    def test_forward(self, rng, dims, mode, resized, padding, align_corners, dtype):
        size = WARP_SIZES[dims][resized]
        x, theta, _, out_size = _warp_case(rng, dims, size, dtype)
        grid = _torch_affine_grid(_t(theta), out_size, align_corners)
        ref = F.grid_sample(
            _t(x), grid, mode=mode, padding_mode=padding, align_corners=align_corners
        )
        got = stn.warp_affine(x, theta, size, mode, padding, align_corners)
        assert got.dtype == dtype and got.shape == out_size
        np.testing.assert_allclose(got, _np(ref), **tol(dtype))

    @pytest.mark.parametrize("align_corners", ALIGNS)
    @pytest.mark.parametrize("resized", [False, True], ids=["same", "resized"])
    @pytest.mark.parametrize("dtype,dims,mode,padding", WARP_MATRIX)
    def test_backward(self, rng, dims, mode, resized, padding, align_corners, dtype):
        size = WARP_SIZES[dims][resized]
        x, theta, gout, out_size = _warp_case(rng, dims, size, dtype)
        _, ref_gi, ref_gt = _torch_warp_grads(
            x, theta, gout, out_size, mode, padding, align_corners
        )
        gi, gt = stn.warp_affine_backward(gout, x, theta, size, mode, padding, align_corners)
        assert gi.dtype == dtype and gi.shape == x.shape
        assert gt.dtype == dtype and gt.shape == theta.shape
        _assert_grad_close(gi, ref_gi, dtype)
        _assert_grad_close(gt, ref_gt, dtype)
        if mode == "nearest":
            np.testing.assert_array_equal(gt, 0.0)

    @pytest.mark.parametrize("resized", [False, True], ids=["same", "resized"])
    @pytest.mark.parametrize("dtype,dims,mode,padding", COVERING)
    def test_backward_flags(self, rng, dims, mode, resized, padding, dtype):
        """A gradient not asked for comes back as None; the other is unchanged."""
        size = WARP_SIZES[dims][resized]
        x, theta, gout, out_size = _warp_case(rng, dims, size, dtype)
        args = (gout, x, theta, size, mode, padding, True)
        _, ref_gi, ref_gt = _torch_warp_grads(x, theta, gout, out_size, *args[4:])
        full_gi, full_gt = stn.warp_affine_backward(*args)

        gi, gt = stn.warp_affine_backward(*args, input_grad=True, theta_grad=False)
        assert gt is None
        np.testing.assert_array_equal(gi, full_gi)
        _assert_grad_close(gi, ref_gi, dtype)

        gi, gt = stn.warp_affine_backward(*args, input_grad=False, theta_grad=True)
        assert gi is None
        np.testing.assert_array_equal(gt, full_gt)
        _assert_grad_close(gt, ref_gt, dtype)

        assert stn.warp_affine_backward(*args, input_grad=False, theta_grad=False) == (None, None)


# ----------------------------------------------------------------------------
# float32 computed in float32: nearest-neighbour ties fall where PyTorch's do
# ----------------------------------------------------------------------------


def test_float32_nearest_tie_as_pytorch_test_suite():
    """PyTorch's own grid_sample test value: ((g + 1)·5 − 1)/2 is exactly 1.5 in float32
    (1.4999999925 in float64), a tie that rounds to even: column 2, value 8."""
    x = np.arange(1.0, 11, dtype=np.float32).reshape(1, 1, 2, 5)
    grid = np.array([[[[-0.2, 1e-6]]]], np.float32)
    out = stn.grid_sample(x, grid, mode="nearest", align_corners=False)
    assert out.dtype == np.float32 and out.ravel().tolist() == [8.0]
    ref = F.grid_sample(_t(x), _t(grid), mode="nearest", align_corners=False)
    assert _np(ref).ravel().tolist() == [8.0]


@pytest.mark.parametrize("align_corners", ALIGNS)
@pytest.mark.parametrize("padding", PADDINGS)
def test_float32_nearest_resize_equals_torch(padding, align_corners):
    """Nearest-neighbour resizing by the identity θ, input widths 2-11 × output widths
    2-23: the base grid and the coordinates in float32 put every tie where PyTorch puts
    it (in float64 132 of these 1,320 cases differed in at least one pixel)."""
    theta = np.array([[[1, 0, 0], [0, 1, 0]]], np.float32)
    bad = []
    for w_in in range(2, 12):
        x = np.arange(w_in, dtype=np.float32).reshape(1, 1, 1, w_in)
        for w_out in range(2, 24):
            kw = dict(mode="nearest", padding_mode=padding, align_corners=align_corners)
            got = stn.warp_affine(x, theta, (1, w_out), **kw)
            grid = _torch_affine_grid(_t(theta), (1, 1, 1, w_out), align_corners)
            ref = _np(F.grid_sample(_t(x), grid, **kw))
            if not np.array_equal(got, ref):
                bad.append((w_in, w_out, got.ravel().tolist(), ref.ravel().tolist()))
    assert not bad, bad[:3]
