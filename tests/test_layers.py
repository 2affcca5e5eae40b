"""stn_numba.SpatialTransformer: equals the functional API; float64 finite differences.

float64 throughout (one compiled specialisation per op), tiny shapes.
"""

import numpy as np
import pytest

import stn_numba as stn
from stn_numba import SpatialTransformer

N, C, H, W = 2, 2, 5, 6
SIZE = (4, 7)  # output spatial size differs from the input's
SRC = np.array([[-0.8, -0.7], [0.75, -0.8], [-0.7, 0.8], [0.8, 0.7], [0.05, 0.1]])


def _params(transform, rng):
    """A layer and a θ near (not at) the identity for it."""
    if transform == "affine":
        st = SpatialTransformer("affine", SIZE)
        theta = st.identity(N, np.float64) + 0.15 * rng.standard_normal((N, 2, 3))
    elif transform == "perspective":
        st = SpatialTransformer("perspective", SIZE)
        theta = st.identity(N, np.float64) + 0.1 * rng.standard_normal((N, 3, 3))
    else:
        st = SpatialTransformer("tps", SIZE, source_points=SRC, regularization=0.01)
        theta = st.identity(N, np.float64) + 0.1 * rng.standard_normal((N, len(SRC), 2))
    return st, theta


def _functional(transform, x, theta, g):
    """(output, grad_x, grad_theta) composed from the public functions."""
    if transform == "affine":
        out = stn.warp_affine(x, theta, SIZE)
        gx, gt = stn.warp_affine_backward(g, x, theta, SIZE)
    elif transform == "perspective":
        out = stn.warp_perspective(x, theta, SIZE)
        gx, gt = stn.warp_perspective_backward(g, x, theta, SIZE)
    else:
        full = (N, C) + SIZE
        grid = stn.tps_grid(SRC, theta, full, regularization=0.01)
        out = stn.grid_sample(x, grid)
        gx, gg = stn.grid_sample_backward(g, x, grid)
        gt = stn.tps_grid_backward(gg, SRC, theta, full, regularization=0.01)
    return out, gx, gt


TRANSFORMS = ["affine", "perspective", "tps"]


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_equals_functional_api(rng, transform):
    st, theta = _params(transform, rng)
    x = rng.random((N, C, H, W))
    g = rng.standard_normal((N, C) + SIZE)
    out = st.forward(x, theta)
    gx, gt = st.backward(g)
    ref_out, ref_gx, ref_gt = _functional(transform, x, theta, g)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(gx, ref_gx)
    np.testing.assert_array_equal(gt, ref_gt)
    assert out.shape == (N, C) + SIZE and gt.shape == theta.shape and gx.shape == x.shape
    # input_grad=False skips grad_x, grad_theta unchanged; __call__ is forward
    np.testing.assert_array_equal(st(x, theta), out)
    none, gt2 = st.backward(g, input_grad=False)
    assert none is None
    np.testing.assert_array_equal(gt2, gt)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_finite_differences(rng, transform):
    """float64 central differences of L = Σ w · forward(x, θ) w.r.t. θ and x."""
    st, theta = _params(transform, rng)
    x = rng.random((N, C, H, W))
    w = rng.standard_normal((N, C) + SIZE)
    loss = lambda x_, t_: float((w * st.forward(x_, t_)).sum())  # noqa: E731
    st.forward(x, theta)
    gx, gt = st.backward(w)
    eps = 1e-6
    num_t = np.zeros_like(theta)
    for i in np.ndindex(theta.shape):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += eps
        tm[i] -= eps
        num_t[i] = (loss(x, tp) - loss(x, tm)) / (2 * eps)
    np.testing.assert_allclose(gt, num_t, rtol=1e-5, atol=1e-6)
    # the output is linear in x: a few random directions suffice
    for _ in range(3):
        d = rng.standard_normal(x.shape)
        num = (loss(x + eps * d, theta) - loss(x - eps * d, theta)) / (2 * eps)
        np.testing.assert_allclose((gx * d).sum(), num, rtol=1e-6, atol=1e-8)


def test_identity_is_c_contiguous():
    # a broadcast copied in "K" order would put the batch axis innermost (cuda.to_device
    # and the kernels want C order)
    for st in (SpatialTransformer("affine"), SpatialTransformer("tps", source_points=SRC)):
        assert st.identity(3, np.float32).flags.c_contiguous


def test_identity_and_size_none(rng):
    x = rng.random((N, C, H, W))
    for st in (
        SpatialTransformer("affine"),
        SpatialTransformer("perspective"),
        SpatialTransformer("tps", source_points=SRC),
    ):
        out = st.forward(x, st.identity(N, np.float64))
        np.testing.assert_allclose(out, x, rtol=1e-12, atol=1e-12)
    th = SpatialTransformer("tps", source_points=SRC).identity(3, np.float32)
    assert th.shape == (3, 5, 2) and th.dtype == np.float32 and th.flags.writeable


def test_affine_volumes(rng):
    st = SpatialTransformer("affine")
    x = rng.random((1, 1, 3, 4, 5))
    theta = np.eye(3, 4)[None] + 0.1 * rng.standard_normal((1, 3, 4))
    out = st.forward(x, theta)
    np.testing.assert_array_equal(out, stn.warp_affine(x, theta))
    assert st.backward(np.ones_like(out))[1].shape == (1, 3, 4)


def test_errors(rng):
    with pytest.raises(ValueError, match="transform must be one of"):
        SpatialTransformer("similarity")
    with pytest.raises(ValueError, match=r"source_points .* is required"):
        SpatialTransformer("tps")
    with pytest.raises(ValueError, match="source_points is only for"):
        SpatialTransformer("affine", source_points=SRC)
    with pytest.raises(ValueError, match="regularization is only for"):
        SpatialTransformer("perspective", regularization=0.1)
    with pytest.raises(ValueError, match="source_points must have shape"):
        SpatialTransformer("tps", source_points=np.zeros((5, 3)))
    with pytest.raises(TypeError, match="size must be None or a sequence of ints"):
        SpatialTransformer("affine", size=(4.5, 3))
    with pytest.raises(ValueError, match="batch must be an int >= 0"):
        SpatialTransformer().identity(-1)
    st = SpatialTransformer()
    with pytest.raises(RuntimeError, match="before forward"):
        st.backward(np.zeros((N, C, H, W)))
    x = rng.random((N, C, H, W))
    with pytest.raises(ValueError, match="theta"):  # the functional API's own message
        st.forward(x, np.zeros((N, 3, 3)))
    with pytest.raises(ValueError, match="x must be 4-D"):
        SpatialTransformer("tps", source_points=SRC).forward(x[:, :, None], np.zeros((N, 5, 2)))


@pytest.mark.parametrize("transform", ["affine", "perspective", "tps"])
def test_channels_last_layer(transform, rng):
    """layout="NHWC": forward and backward equal the NCHW layer's, transposed, bit for
    bit (float32: the channels-last specialisations tests/test_layout.py compiles)."""
    kw = dict(source_points=SRC, regularization=0.01) if transform == "tps" else {}
    st = SpatialTransformer(transform, SIZE, **kw)
    stl = SpatialTransformer(transform, SIZE, layout="NHWC", **kw)
    assert stl.layout == "NHWC"
    _, theta = _params(transform, rng)
    theta = theta.astype(np.float32)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y, yl = st.forward(x, theta), stl.forward(xl, theta)
    np.testing.assert_array_equal(yl, y.transpose(0, 2, 3, 1))
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx, gt = st.backward(g)
    gxl, gtl = stl.backward(np.ascontiguousarray(g.transpose(0, 2, 3, 1)))
    np.testing.assert_array_equal(gxl, gx.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(gtl, gt)
    with pytest.raises(ValueError, match="did you mean 'NHWC'"):
        SpatialTransformer(transform, SIZE, layout="NHCW", **kw)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_backward_uses_the_forward_values_after_in_place_edits(rng, transform):
    """Training loops update θ and reuse x's buffer in place between forward and
    backward; the gradients must be those of the values the forward saw."""
    st, theta = _params(transform, rng)
    x = rng.random((N, C, H, W))
    g = rng.standard_normal((N, C) + SIZE)
    _, ref_gx, ref_gt = _functional(transform, x.copy(), theta.copy(), g)
    st.forward(x, theta)
    theta += 0.3
    x *= 2
    gx, gt = st.backward(g)
    np.testing.assert_array_equal(gx, ref_gx)
    np.testing.assert_array_equal(gt, ref_gt)


def test_tps_source_points_are_copied(rng):
    src = SRC.copy()
    st = SpatialTransformer("tps", SIZE, source_points=src, regularization=0.01)
    src += 0.1
    np.testing.assert_array_equal(st.source_points, SRC)


def test_identity_of_an_empty_batch():
    for st in (SpatialTransformer("affine"), SpatialTransformer("tps", source_points=SRC)):
        th = st.identity(0, np.float64)
        assert th.shape[0] == 0 and th.dtype == np.float64
        out = st.forward(np.zeros((0, C, H, W)), th)
        assert out.shape == (0, C, H, W)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(size=(4, 0)), ValueError, r"size entries must be >= 1; got \(4, 0\)"),
        (dict(size=(4, 5, 6, 7)), ValueError, "size must be None or the output's spatial"),
        (dict(transform="perspective", size=(4, 5, 6)), ValueError, r"\(H, W\) for transform"),
        (dict(transform="tps", source_points=SRC, regularization=-1.0), ValueError, "finite"),
        (dict(transform="tps", source_points=SRC, regularization="0"), TypeError, "real"),
        (
            dict(transform="tps", source_points=[[0, 0], [1, 1], [2, 2.0], [3, 3]]),
            ValueError,
            "collinear",
        ),
        (dict(transform="tps", source_points=[[0, 0], [1, 1.0]]), ValueError, "K >= 3"),
        (dict(transform="tps", source_points=[[0, 0], [1, 0], [0, np.nan]]), ValueError, "finite"),
        (dict(fill_value=1.0), ValueError, "fill_value is used only with padding_mode"),
        (dict(padding_mode="constant", fill_value=np.inf), ValueError, "fill_value must be"),
        (dict(padding_mode="constant", fill_value=[1, "a"]), TypeError, "fill_value must be"),
    ],
)
def test_bad_arguments_are_refused_at_construction(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SpatialTransformer(**kwargs)


@pytest.mark.parametrize("fill", [0.5, [0.25, -1.0], np.array(0.75)])
def test_constant_padding_layer_equals_functional(rng, fill):
    st = SpatialTransformer("affine", SIZE, padding_mode="constant", fill_value=fill)
    x = rng.random((N, C, H, W))
    theta = st.identity(N, np.float64) * 1.5 + 0.2  # reads outside the input
    g = rng.standard_normal((N, C) + SIZE)
    kw = dict(padding_mode="constant", fill_value=fill)
    np.testing.assert_array_equal(st.forward(x, theta), stn.warp_affine(x, theta, SIZE, **kw))
    gx, gt = st.backward(g)
    ref_gx, ref_gt = stn.warp_affine_backward(g, x, theta, SIZE, **kw)
    np.testing.assert_array_equal(gx, ref_gx)
    np.testing.assert_array_equal(gt, ref_gt)
    with pytest.raises(ValueError, match="fill_value must be a number or a sequence of C = 2"):
        SpatialTransformer(padding_mode="constant", fill_value=[1, 2, 3]).forward(x, theta)
