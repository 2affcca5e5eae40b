"""Batch broadcasting of the warps: one image with N transforms, N images with one
transform (batch 1 or unbatched), forward and backward. Each equals the explicitly
repeated batch bit for bit; the shared operand's gradient is the repeated batch's summed
over the samples (``np.sum(axis=0)``), bit for bit; the shared operand is not copied."""

import tracemalloc

import numpy as np
import pytest
from conftest import random_theta

import stn_numba as stn

DT = np.float32
N = 3


def _homography(rng, n, dims=2):
    """(n, 3, 3) homographies, or (n, 4, 4) ones for volumes."""
    H = np.zeros((n, dims + 1, dims + 1))
    H[:, :dims] = random_theta(rng, n, dims, strength=0.2)
    H[:, dims, :dims] = rng.uniform(-0.3, 0.3, (n, dims))
    H[:, dims, dims] = 1.0
    return H.astype(DT)


def _warps(rng, dims):
    """name -> (points (N, ...), forward(x, p, **kw), backward(g, x, p, **kw))."""
    spatial = (5, 6) if dims == 2 else (3, 4, 5)
    out_spatial = (4, 7) if dims == 2 else (2, 3, 4)
    grid = rng.uniform(-1.2, 1.2, (N, *out_spatial, dims)).astype(DT)
    warps = {
        "grid_sample": (grid, stn.grid_sample, stn.grid_sample_backward),
        "warp_affine": (
            random_theta(rng, N, dims, DT, strength=0.3),
            lambda x, t, **kw: stn.warp_affine(x, t, out_spatial, **kw),
            lambda g, x, t, **kw: stn.warp_affine_backward(g, x, t, out_spatial, **kw),
        ),
        "warp_flow": (2.0 * grid, stn.warp_flow, stn.warp_flow_backward),
    }
    warps["warp_perspective"] = (
        _homography(rng, N, dims),
        lambda x, h, **kw: stn.warp_perspective(x, h, out_spatial, **kw),
        lambda g, x, h, **kw: stn.warp_perspective_backward(g, x, h, out_spatial, **kw),
    )
    return spatial, warps


CASES = [
    (d, w) for d in (2, 3) for w in ("grid_sample", "warp_affine", "warp_flow", "warp_perspective")
]


def _check(rng, dims, name, shared, unbatched=False, **kw):
    spatial, warps = _warps(rng, dims)
    pts, fwd, bwd = warps[name]
    x = rng.standard_normal((N, 2, *spatial)).astype(DT)
    if shared == "input":
        x_arg, p_arg = x[:1], pts
        x_rep, p_rep = np.repeat(x[:1], N, 0), pts
    else:
        p_arg = pts[0] if unbatched else pts[:1]
        x_arg, x_rep, p_rep = x, x, np.repeat(pts[:1], N, 0)
    want = fwd(x_rep, p_rep, **kw)
    got = fwd(x_arg, p_arg, **kw)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    g = rng.standard_normal(want.shape).astype(DT)
    wi, wp = bwd(g, x_rep, p_rep, **kw)
    gi, gp = bwd(g, x_arg, p_arg, **kw)
    if shared == "input":
        np.testing.assert_array_equal(gi, wi.sum(0, keepdims=True))
        np.testing.assert_array_equal(gp, wp)
    else:
        np.testing.assert_array_equal(gi, wi)
        assert gp.shape == p_arg.shape
        np.testing.assert_array_equal(gp, wp.sum(0) if unbatched else wp.sum(0, keepdims=True))


@pytest.mark.parametrize("dims,name", CASES)
def test_one_image_many_transforms(rng, dims, name):
    _check(rng, dims, name, "input")


@pytest.mark.parametrize("dims,name", CASES)
def test_many_images_one_transform(rng, dims, name):
    _check(rng, dims, name, "points")


@pytest.mark.parametrize(
    "dims,name", [(2, "warp_affine"), (2, "warp_perspective"), (3, "warp_perspective")]
)
def test_unbatched_transform(rng, dims, name):
    """(2, 3) θ and (3, 3) H, as theta_from_cv2 returns them, and (4, 4) H with volumes:
    a gradient of that shape."""
    _check(rng, dims, name, "points", unbatched=True)


def test_unbatched_theta_from_cv2():
    """theta_from_cv2's unbatched θ warps a batch as that batch's repeated θ."""
    x = np.arange(2 * 12, dtype=DT).reshape(2, 1, 3, 4)
    M = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # shift right by one pixel
    theta = stn.theta_from_cv2(M, (3, 4)).astype(DT)
    assert theta.shape == (2, 3)
    out = stn.warp_affine(x, theta)
    np.testing.assert_array_equal(out[:, :, :, 1:], x[:, :, :, :-1])
    np.testing.assert_array_equal(out[:, :, :, 0], 0)


def test_channels_last_constant_fill_and_out(rng):
    """Broadcasting composes with the layouts, a constant fill and a given ``out``."""
    x = rng.random((1, 5, 6, 3)).astype(DT)  # one NHWC image
    theta = random_theta(rng, N, 2, DT, strength=0.4)
    kw = dict(layout="NHWC", padding_mode="constant", fill_value=[1.0, 2.0, 3.0])
    want = stn.warp_affine(np.repeat(x, N, 0), theta, **kw)
    out = np.full(want.shape, np.nan, DT)
    got = stn.warp_affine(x, theta, out=out, **kw)
    assert got is out
    np.testing.assert_array_equal(out, want)


def test_mismatched_batches_are_refused(rng):
    x = np.zeros((2, 1, 3, 4), DT)
    theta = random_theta(rng, 3, 2, DT)
    msg = r"theta.shape\[0\] \(batch\) must equal input.shape\[0\] = 2 \(or either of them 1\)"
    with pytest.raises(ValueError, match=msg):
        stn.warp_affine(x, theta)
    with pytest.raises(ValueError, match=r"grad_output.shape\[0\] \(batch\) must be 3"):
        stn.warp_affine_backward(np.zeros((1, 1, 3, 4), DT), x[:1], theta)


def test_the_shared_image_is_not_copied(rng):
    """One 1 MB image and 64 transforms: the call allocates the output and nothing of
    the image's size per sample (a repeated batch would be 64 MB)."""
    n = 64
    x = rng.random((1, 1, 512, 512)).astype(DT)
    theta = random_theta(rng, n, 2, DT, strength=0.1)
    out = np.empty((n, 1, 16, 16), DT)
    stn.warp_affine(x, theta, (16, 16), out=out)  # compiled, warm
    tracemalloc.start()
    try:
        stn.warp_affine(x, theta, (16, 16), out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 4, peak


def test_empty_batches_broadcast_to_empty(rng):
    """NumPy's rule: a batch of 1 against a batch of 0 gives 0 samples; the shared
    operand's gradient over no samples is zero."""
    x = rng.standard_normal((1, 2, 4, 5)).astype(DT)
    theta = random_theta(rng, 0, 2, DT)
    out = stn.warp_affine(x, theta)
    assert out.shape == (0, 2, 4, 5)
    gi, gt = stn.warp_affine_backward(out, x, theta)
    assert gi.shape == x.shape and not gi.any() and gt.shape == (0, 2, 3)
    out = stn.warp_affine(x[:0], random_theta(rng, 1, 2, DT)[0])  # no images, one θ
    assert out.shape == (0, 2, 4, 5)
