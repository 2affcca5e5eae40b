"""Channels-last layouts: every sampling operation, forward and backward, in
NHWC / NDHWC equals the NCHW / NCDHW call on the transposed arrays, bit for bit, with no
transposed copy of the image; errors name the layout."""

import numba
import numpy as np
import pytest
from conftest import MODES_2D, MODES_3D, PADDINGS, peak_extra, random_theta

import stn_numba as stn

DT = np.float32


def last(a):
    """NCHW -> NHWC (NCDHW -> NDHWC), C-contiguous."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def first(a):
    return np.moveaxis(a, -1, 1)


def _data(rng, dims, n=2, c=3):
    spatial = (5, 6) if dims == 2 else (3, 4, 5)
    out_spatial = (4, 7) if dims == 2 else (4, 3, 4)
    x = rng.standard_normal((n, c, *spatial)).astype(DT)
    theta = random_theta(rng, n, dims, DT, strength=0.25)
    grid = (1.2 * rng.uniform(-1, 1, (n, *out_spatial, dims))).astype(DT)
    return x, theta, grid, out_spatial


def _ops(rng, dims, c=3):
    """name -> (forward(x, **kw), backward(gout, x, **kw) -> (grad_input, other))."""
    x, theta, grid, size = _data(rng, dims, c=c)
    ops = {
        "grid_sample": (
            lambda x, **kw: stn.grid_sample(x, grid, **kw),
            lambda g, x, **kw: stn.grid_sample_backward(g, x, grid, **kw),
        ),
        "warp_affine": (
            lambda x, **kw: stn.warp_affine(x, theta, size, **kw),
            lambda g, x, **kw: stn.warp_affine_backward(g, x, theta, size, **kw),
        ),
        "warp_flow": (
            lambda x, **kw: stn.warp_flow(x, 2.0 * grid, **kw),
            lambda g, x, **kw: stn.warp_flow_backward(g, x, 2.0 * grid, **kw),
        ),
    }
    if dims == 2:
        H = np.concatenate([theta, np.tile([[[0.0, 0.0, 1.0]]], (2, 1, 1))], 1).astype(DT)
        H[:, 2, :2] = rng.uniform(-0.3, 0.3, (2, 2))
        ops["warp_perspective"] = (
            lambda x, **kw: stn.warp_perspective(x, H, size, **kw),
            lambda g, x, **kw: stn.warp_perspective_backward(g, x, H, size, **kw),
        )
    # splat: one target point per input pixel, into an output of another size
    sgrid = (1.2 * rng.uniform(-1, 1, (2, *x.shape[2:], dims))).astype(DT)
    ops["splat"] = (
        lambda x, **kw: stn.splat(x, sgrid, size, **kw),
        lambda g, x, **kw: stn.splat_backward(g, x, sgrid, **kw),
    )
    return x, ops


OPS_2D = ["grid_sample", "warp_affine", "warp_flow", "warp_perspective", "splat"]
OPS_3D = ["grid_sample", "warp_affine", "warp_flow", "splat"]


def _check_op(rng, dims, name, mode, padding, align_corners, c=3):
    x, ops = _ops(rng, dims, c)
    fwd, bwd = ops[name]
    kw = dict(mode=mode, padding_mode=padding, align_corners=align_corners)
    layout = "NHWC" if dims == 2 else "NDHWC"
    y = fwd(x, **kw)
    yl = fwd(last(x), layout=layout, **kw)
    assert yl.flags.c_contiguous and yl.shape == last(y).shape
    np.testing.assert_array_equal(yl, last(y))
    g = rng.standard_normal(y.shape).astype(DT)
    gi, go = bwd(g, x, **kw)
    gil, gol = bwd(last(g), last(x), layout=layout, **kw)
    assert gil.flags.c_contiguous and gil.shape == last(gi).shape
    np.testing.assert_array_equal(gil, last(gi))
    np.testing.assert_array_equal(gol, go)  # grid / θ / H / flow gradient: same layout


def _cases(dims):
    """(name, mode, padding) triples. What a layout changes is the memory order of the
    image's gathers and scatters, which each mode writes once per driver family: the
    samplers (grid_sample, warp_flow, warp_perspective and warp_affine forward), the
    scatter and point-gradient backward, the fused one-pass backward of
    warp_affine's (bi/tri)linear mode, and splat (a scatter forward, a gather backward).
    So grid_sample runs every mode (its forward is the gather, its backward the scatter
    and point-gradient family), warp_affine its one-pass (bi/tri)linear backward, splat
    (a scatter forward and a gather backward: grid_sample's code, run the other way)
    one mode, warp_flow and warp_perspective one mode each in 2-D (their own points;
    the memory order does not depend on where the points come from); the paddings
    rotate. Each triple compiles its own
    drivers in both layouts: the full product would multiply compilation, not coverage."""
    modes = MODES_2D if dims == 2 else MODES_3D
    rows = [("grid_sample", m) for m in modes] + [("warp_affine", "bilinear")]
    rows.append(("splat", "bilinear"))
    if dims == 2:  # the other point sources once, in 2-D
        rows += [("warp_flow", "nearest"), ("warp_perspective", "bilinear")]
    cases = [(name, mode, PADDINGS[i % len(PADDINGS)]) for i, (name, mode) in enumerate(rows)]
    # by default: grid_sample's modes in 2-D and warp_affine's one-pass backward; the other
    # families (3-D beyond bilinear grid_sample, splat, flow, perspective) under --all
    default = {("grid_sample", "bilinear")} if dims == 2 else set()
    default |= {("warp_affine", "bilinear")} if dims == 2 else {("grid_sample", "bilinear")}
    return [pytest.param(*c, marks=[] if c[:2] in default else [pytest.mark.slow]) for c in cases]


@pytest.mark.parametrize("name,mode,padding", _cases(2))
def test_nhwc_equals_nchw(rng, name, mode, padding):
    _check_op(rng, 2, name, mode, padding, align_corners=padding == "border")


@pytest.mark.parametrize("name,mode,padding", _cases(3))
def test_ndhwc_equals_ncdhw(rng, name, mode, padding):
    _check_op(rng, 3, name, mode, padding, align_corners=padding != "border")


@pytest.mark.parametrize("c", [1, 2])
def test_one_and_two_channels(rng, c):
    """C = 1 makes the channel stride tie with W's: the memory order must still hold."""
    for name in ("warp_affine", "splat"):
        _check_op(rng, 2, name, "bilinear", "zeros", False, c=c)


def test_nchw_default_and_explicit_names(rng):
    x, ops = _ops(rng, 2)
    fwd, _ = ops["warp_affine"]
    np.testing.assert_array_equal(fwd(x, layout="NCHW"), fwd(x))
    x3, ops3 = _ops(rng, 3)
    fwd3, _ = ops3["warp_affine"]
    np.testing.assert_array_equal(fwd3(x3, layout="NCDHW"), fwd3(x3, layout="NCHW"))


def test_strided_and_read_only_nhwc_inputs(rng):
    """Any strides are accepted in channels-last too (one contiguous copy, as in NCHW)."""
    x, ops = _ops(rng, 2)
    fwd, _ = ops["warp_affine"]
    ref = last(fwd(x))
    big = np.zeros((2, 5, 12, 3), DT)
    big[:, :, ::2] = last(x)
    view = big[:, :, ::2]  # non-contiguous
    np.testing.assert_array_equal(fwd(view, layout="NHWC"), ref)
    ro = last(x)
    ro.flags.writeable = False
    np.testing.assert_array_equal(fwd(ro, layout="NHWC"), ref)
    before = big.copy()
    fwd(view, layout="NHWC")
    np.testing.assert_array_equal(big, before)  # no mutation


def test_out_in_channels_last(rng):
    x, theta, _, size = _data(rng, 2)
    out = np.full((2, *size, 3), np.nan, DT)
    res = stn.warp_affine(last(x), theta, size, layout="NHWC", out=out)
    assert res is out
    np.testing.assert_array_equal(out, last(stn.warp_affine(x, theta, size)))
    with pytest.raises(ValueError, match=r"out must have shape \(2, 4, 7, 3\)"):
        stn.warp_affine(last(x), theta, size, layout="NHWC", out=np.empty((2, 3, 4, 7), DT))


def test_no_transposed_copy(rng):
    """A C-contiguous NHWC input is read in place: the call allocates its output and
    nothing of the input's size (a transpose copy would be one input-sized array, 128 KiB
    here; the bilinear forward's scratch rows are 64 B per output column per thread)."""
    x = rng.random((2, 64, 64, 4)).astype(DT)
    theta = random_theta(rng, 2, 2, DT)
    _, extra = peak_extra(lambda: stn.warp_affine(x, theta, layout="NHWC"))
    assert extra < min(4096 + 64 * 64 * numba.get_num_threads(), x.nbytes // 2), extra


def test_uint8_hwc_with_per_channel_fill(rng):
    img = rng.integers(0, 256, (2, 6, 7, 3), dtype=np.uint8)
    theta = random_theta(rng, 2, 2, DT, strength=0.4)
    kw = dict(padding_mode="constant", fill_value=(255, 0, 128), output_dtype=np.uint8)
    got = stn.warp_affine(img, theta, layout="NHWC", **kw)
    want = stn.warp_affine(first(img), theta, **kw)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, last(want))
    g = rng.standard_normal(got.shape).astype(DT)
    xf = img.astype(DT)
    gi, gt = stn.warp_affine_backward(
        g, xf, theta, layout="NHWC", padding_mode="constant", fill_value=(255, 0, 128)
    )
    gi0, gt0 = stn.warp_affine_backward(
        first(g), first(xf), theta, padding_mode="constant", fill_value=(255, 0, 128)
    )
    np.testing.assert_array_equal(gi, last(gi0))
    np.testing.assert_array_equal(gt, gt0)


def test_channels_last_against_scipy(rng):
    """Independent of the NCHW path: each channel plane of an NHWC warp is
    scipy.ndimage.map_coordinates of that plane (bilinear, zeros padding)."""
    from scipy import ndimage

    x = rng.standard_normal((1, 6, 8, 3))
    grid = rng.uniform(-1.1, 1.1, (1, 5, 4, 2))
    y = stn.grid_sample(x, grid, layout="NHWC")
    cols = ((grid[0, ..., 0] + 1) * 8 - 1) / 2
    rows = ((grid[0, ..., 1] + 1) * 6 - 1) / 2
    for c in range(3):
        ref = ndimage.map_coordinates(
            x[0, :, :, c], [rows, cols], order=1, mode="grid-constant", prefilter=False
        )
        np.testing.assert_allclose(y[0, :, :, c], ref, rtol=1e-12, atol=1e-12)


class TestErrors:
    def test_unknown_layout_suggests(self, rng):
        x = rng.random((1, 4, 4, 3))
        with pytest.raises(
            ValueError, match=r"layout must be one of .*'NHWC'.*did you mean 'NHWC'"
        ):
            stn.warp_affine(x, np.eye(2, 3)[None], layout="NWHC")
        with pytest.raises(TypeError, match="layout must be a str"):
            stn.warp_affine(x, np.eye(2, 3)[None], layout=None)

    def test_ndim_must_match_the_layout(self, rng):
        with pytest.raises(
            ValueError, match=r"input must be 4-D \(N, H, W, C\) for layout='NHWC'.*NDHWC"
        ):
            stn.warp_affine(rng.random((1, 2, 3, 4, 1)), np.eye(3, 4)[None], layout="NHWC")
        with pytest.raises(ValueError, match=r"input must be 5-D \(N, D, H, W, C\).*'NHWC'"):
            stn.warp_affine(rng.random((1, 3, 4, 1)), np.eye(2, 3)[None], layout="NDHWC")
        with pytest.raises(ValueError, match=r"input must be 5-D \(N, C, D, H, W\).*'NCHW'"):
            stn.grid_sample(rng.random((1, 1, 3, 4)), np.zeros((1, 2, 2, 2)), layout="NCDHW")

    def test_grad_output_shape_speaks_the_layout(self, rng):
        x = rng.random((1, 4, 5, 3))
        with pytest.raises(
            ValueError,
            match=r"grad_output must have shape \(1, 4, 5, 3\) "
            r"\(layout='NHWC'\); got \(1, 5, 4, 3\)",
        ):
            stn.warp_affine_backward(rng.random((1, 5, 4, 3)), x, np.eye(2, 3)[None],
                                     layout="NHWC")  # fmt: skip
        with pytest.raises(ValueError, match=r"grad_output must have input's batch and channels"):
            stn.splat_backward(rng.random((1, 4, 5, 2)), x, np.zeros((1, 4, 5, 2)), layout="NHWC")


def test_readme_channels_last_example():
    """The README's HWC uint8 example runs as printed."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "NHWC" in b]
    assert len(blocks) == 1
    scope = {}
    exec(blocks[0], scope)
    img, out = scope["img"], scope["out"]
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out[0, 0] == 255).all()  # a corner rotated in from outside: the fill


def test_warp_affine_pixels_hwc(rng):
    """An OpenCV-style H×W×C image ports in one line with layout="NHWC": equal to the
    NCHW call, and to cv2.warpAffine itself when OpenCV is installed."""
    img = rng.random((9, 11, 3)).astype(DT)
    M = np.array([[0.9, -0.2, 1.5], [0.25, 1.1, -0.5]])
    got = stn.warp_affine_pixels(img[None], M, (8, 10), convention="cv2", layout="NHWC")[0]
    nchw = stn.warp_affine_pixels(first(img[None]), M, (8, 10), convention="cv2")
    assert got.shape == (8, 10, 3)
    np.testing.assert_array_equal(got, last(nchw)[0])
    try:
        import cv2
    except ImportError:
        print("OpenCV is not installed: compared with the NCHW call only")
        return
    ref = cv2.warpAffine(img, M, (10, 8), flags=cv2.INTER_LINEAR)
    np.testing.assert_allclose(got, ref, atol=0.03)  # OpenCV's 1/32-px weights
