"""splat (forward warping) and splat_backward, on the CPU.

splat is the adjoint of grid_sample with respect to its input. It is checked against:

* a naive NumPy scatter written here (``np.add.at`` over the input pixels, weights
  from (bi/tri)linear corners and nearest, every padding mode);
* the transpose of the naive *sampler* of ``reference.py`` (a matrix built column by
  column from unit images), which covers bicubic too;
* the adjoint identity ``<grid_sample(x, g), y> == <x, splat(y, g)>`` for every mode,
  padding and align_corners;
* ``grid_sample_backward``'s grad_input, bit for bit (it is the same scatter);
* float64 central finite differences for both gradients of splat_backward.
"""

import itertools

import numba
import numpy as np
import pytest
from conftest import DTYPES, MODES_2D, MODES_3D, PADDINGS, tol
from reference import ref_grid_sample
from scipy_ref import normalize

import stn_numba as stn

# 2-D: input (N, C, H, W) on grid's lattice, output size != input size
SHAPE_2D = ((2, 2, 4, 5), (5, 6))
SHAPE_3D = ((1, 2, 3, 4, 3), (4, 3, 5))
H_PT = 1e-6  # finite-difference step in normalised units (see test_gradients.py)
FD_TOL = dict(rtol=1e-6, atol=1e-7)


def problem(rng, dims, dtype=np.float64, spread=1.3):
    """(input, grid, size): random values and target points, some outside the output."""
    in_shape, size = SHAPE_2D if dims == 2 else SHAPE_3D
    x = rng.standard_normal(in_shape).astype(dtype)
    grid = rng.uniform(-spread, spread, (in_shape[0], *in_shape[2:], dims)).astype(dtype)
    return x, grid, size


# ----------------------------------------------------------------------------
# Naive references
# ----------------------------------------------------------------------------


def _unnormalize(g, size, align_corners):
    return (g + 1.0) / 2.0 * (size - 1) if align_corners else ((g + 1.0) * size - 1.0) / 2.0


def _pad(i, size, padding, align_corners):
    """The padding of pixel coordinates (vectorised)."""
    if padding == "border":
        return np.clip(i, 0.0, size - 1.0)
    if padding == "reflection":
        lo, hi = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
        span = hi - lo
        if span == 0:
            return np.zeros_like(i)
        t = np.mod(np.abs(i - lo), 2.0 * span)
        t = np.where(t > span, 2.0 * span - t, t)
        return np.clip(lo + t, 0.0, size - 1.0)
    return i


def naive_splat(x, grid, size, mode="bilinear", padding="zeros", align_corners=False):
    """Scatter every input pixel with np.add.at: (bi/tri)linear or nearest, float64."""
    x = np.asarray(x, np.float64)
    grid = np.asarray(grid, np.float64)
    n, c = x.shape[:2]
    dims = grid.shape[-1]
    out = np.zeros((n, *size, c))  # channels last for np.add.at
    pts = grid.reshape(n, -1, dims)  # (n, P, dims), last axis (x, y[, z])
    vals = x.reshape(n, c, -1).transpose(0, 2, 1)  # (n, P, c)
    # pixel coordinates, ordered like the output axes ((z,) y, x)
    coords = [
        _pad(_unnormalize(pts[..., dims - 1 - a], size[a], align_corners), size[a], padding,
             align_corners)
        for a in range(dims)
    ]  # fmt: skip
    batch = np.broadcast_to(np.arange(n)[:, None], pts.shape[:2])
    if mode == "nearest":
        idx = [np.rint(ci).astype(np.int64) for ci in coords]
        corners = [(idx, np.ones(pts.shape[:2]))]
    else:
        lo = [np.floor(ci).astype(np.int64) for ci in coords]
        frac = [ci - li for ci, li in zip(coords, lo, strict=True)]
        corners = []
        for bits in itertools.product((0, 1), repeat=dims):
            weight = np.ones(pts.shape[:2])
            for a, b in enumerate(bits):
                weight = weight * (frac[a] if b else 1.0 - frac[a])
            corners.append(([li + b for li, b in zip(lo, bits, strict=True)], weight))
    for idx, weight in corners:
        inside = np.ones(pts.shape[:2], dtype=bool)
        for a in range(dims):
            inside &= (idx[a] >= 0) & (idx[a] < size[a])  # zeros: outside taps dropped
        where = tuple([batch[inside]] + [i[inside] for i in idx])
        np.add.at(out, where, weight[inside][:, None] * vals[inside])
    return np.moveaxis(out, -1, 1)


def sampler_transpose(x, grid, size, mode, padding, align_corners):
    """splat as the transpose of reference.py's naive sampler, column by column."""
    n, c = x.shape[:2]
    out = np.zeros((n, c, *size))
    for pos in np.ndindex(*size):
        unit = np.zeros((n, 1, *size))
        unit[(slice(None), 0, *pos)] = 1.0
        col = ref_grid_sample(unit, grid, mode, padding, align_corners)  # (n, 1, *in)
        out[(slice(None), slice(None), *pos)] = np.sum(
            col * np.asarray(x, np.float64), axis=tuple(range(2, x.ndim))
        )
    return out


def kink_free_grid(rng, n, lattice, size, align_corners, reach=2):
    """Normalised targets whose pixel coordinates keep >= 0.1 px from every integer and
    half-integer (bilinear corners, border clips, reflection folds, nearest ties)."""
    dims = len(size)
    grid = np.empty((n, *lattice, dims))
    for k in range(dims):  # x, y, z -> output axis dims - 1 - k
        s = size[dims - 1 - k]
        shape = (n, *lattice)
        base = rng.integers(-reach, s + reach, shape)
        frac = rng.uniform(0.1, 0.4, shape) + 0.5 * rng.integers(0, 2, shape)
        grid[..., k] = normalize(base + frac, s, align_corners)
    return grid


def inner(a, b):
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


# ----------------------------------------------------------------------------
# Known answers and shapes
# ----------------------------------------------------------------------------


def test_known_answer_half_pixel_shift():
    x = np.array([[[[1.0, 2.0, 3.0]]]])
    grid = np.array([[[[-0.5, 0.0], [0.5, 0.0], [1.5, 0.0]]]])  # half a pixel right
    np.testing.assert_array_equal(stn.splat(x, grid, align_corners=True), [[[[0.5, 1.5, 2.5]]]])
    # border: the half that left the image piles up on the last pixel
    out = stn.splat(x, grid, padding_mode="border", align_corners=True)
    np.testing.assert_array_equal(out, [[[[0.5, 1.5, 4.0]]]])


def test_identity_grid_is_identity_and_mass_is_kept(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    ident = stn.affine_grid(np.tile(np.eye(2, 3), (2, 1, 1)), x.shape, False)
    for mode in MODES_2D:
        np.testing.assert_allclose(stn.splat(x, ident, mode=mode), x, **tol(np.float64))
    # points strictly inside the output: bilinear splatting keeps every channel's sum
    inside = rng.uniform(-0.6, 0.6, (2, 4, 5, 2))
    out = stn.splat(x, inside, (6, 7))
    np.testing.assert_allclose(out.sum(axis=(2, 3)), x.sum(axis=(2, 3)), **tol(np.float64))


@pytest.mark.parametrize("dims", [2, 3])
def test_shapes_dtype_and_default_size(rng, dims):
    for dtype in DTYPES:
        x, grid, size = problem(rng, dims, dtype)
        out = stn.splat(x, grid, size)
        assert out.shape == x.shape[:2] + size and out.dtype == dtype
        same = stn.splat(x, grid)  # size=None: the input's spatial shape
        assert same.shape == x.shape
        np.testing.assert_array_equal(same, stn.splat(x, grid, x.shape[2:]))


def test_out_is_overwritten_and_arguments_untouched(rng):
    x, grid, size = problem(rng, 2)
    x = np.asfortranarray(x)  # any memory order is accepted
    grid_ro = grid.copy()
    grid_ro.flags.writeable = False
    x0, g0 = x.copy(), grid.copy()
    want = stn.splat(x, grid_ro, size)
    out = np.full(x.shape[:2] + size, 1e30)
    assert stn.splat(x, grid_ro, size, out=out) is out
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(grid, g0)


# ----------------------------------------------------------------------------
# Against the naive references
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_against_naive_scatter_2d(rng, mode, padding, align_corners):
    x, grid, size = problem(rng, 2)
    got = stn.splat(x, grid, size, mode, padding, align_corners)
    np.testing.assert_allclose(
        got, naive_splat(x, grid, size, mode, padding, align_corners), **tol(np.float64)
    )


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", MODES_3D)
def test_against_naive_scatter_3d(rng, mode, padding):
    x, grid, size = problem(rng, 3)
    for ac in (True, False):
        got = stn.splat(x, grid, size, mode, padding, ac)
        np.testing.assert_allclose(
            got, naive_splat(x, grid, size, mode, padding, ac), **tol(np.float64)
        )


def test_float32_against_naive_scatter(rng):
    x, grid, size = problem(rng, 2, np.float32)
    got = stn.splat(x, grid, size, padding_mode="reflection")
    assert got.dtype == np.float32
    np.testing.assert_allclose(
        got, naive_splat(x, grid, size, "bilinear", "reflection"), **tol(np.float32)
    )


@pytest.mark.parametrize("padding", PADDINGS)
def test_bicubic_is_the_reference_samplers_transpose(rng, padding):
    x, grid, size = problem(rng, 2)
    x, grid = x[:1, :1], grid[:1]  # the column-by-column transpose is slow: one image
    for ac in (True, False):
        got = stn.splat(x, grid, size, "bicubic", padding, ac)
        want = sampler_transpose(x, grid, size, "bicubic", padding, ac)
        np.testing.assert_allclose(got, want, **tol(np.float64))


# ----------------------------------------------------------------------------
# Adjointness and the link with grid_sample_backward
# ----------------------------------------------------------------------------

ADJ_CASES = [
    (dims, mode, padding, ac)
    for dims, modes in ((2, MODES_2D), (3, MODES_3D))
    for mode in modes
    for padding in PADDINGS
    for ac in (True, False)
]


@pytest.mark.parametrize(
    "dims,mode,padding,align_corners",
    ADJ_CASES,
    ids=[f"{d}d-{m}-{p}-ac{int(a)}" for d, m, p, a in ADJ_CASES],
)
def test_adjoint_of_grid_sample(rng, dims, mode, padding, align_corners):
    y, grid, size = problem(rng, dims)
    x = rng.standard_normal(y.shape[:2] + size)
    kw = dict(mode=mode, padding_mode=padding, align_corners=align_corners)
    lhs = inner(stn.grid_sample(x, grid, **kw), y)
    rhs = inner(x, stn.splat(y, grid, size, **kw))
    scale = float(np.sum(np.abs(x)) * np.max(np.abs(y)) * 4.0)
    assert abs(lhs - rhs) <= 1e-13 * scale, (lhs, rhs)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dims,mode", [(2, "bilinear"), (2, "bicubic"), (3, "bilinear")])
def test_bit_identical_to_grid_sample_backward(rng, dims, mode, dtype):
    y, grid, size = problem(rng, dims, dtype)
    x = np.zeros(y.shape[:2] + size, dtype)
    for padding in PADDINGS:
        gi, _ = stn.grid_sample_backward(y, x, grid, mode, padding, True, grid_grad=False)
        np.testing.assert_array_equal(stn.splat(y, grid, size, mode, padding, True), gi)


# ----------------------------------------------------------------------------
# splat_backward against finite differences (float64)
# ----------------------------------------------------------------------------

FD_CASES = [
    (2, "bilinear", "zeros", False),
    (2, "bilinear", "border", True),
    (2, "bilinear", "reflection", False),
    (2, "bicubic", "reflection", True),
    (2, "bicubic", "zeros", False),
    (2, "nearest", "zeros", True),
    (3, "bilinear", "reflection", True),
    (3, "bilinear", "zeros", False),
]


@pytest.mark.parametrize(
    "dims,mode,padding,align_corners",
    FD_CASES,
    ids=[f"{d}d-{m}-{p}-ac{int(a)}" for d, m, p, a in FD_CASES],
)
def test_backward_against_finite_differences(rng, dims, mode, padding, align_corners):
    x, _, size = problem(rng, dims)
    grid = kink_free_grid(rng, x.shape[0], x.shape[2:], size, align_corners)
    gout = rng.standard_normal(x.shape[:2] + size)
    kw = dict(mode=mode, padding_mode=padding, align_corners=align_corners)
    gi, gg = stn.splat_backward(gout, x, grid, **kw)

    # input: the loss is linear in x, so a unit step is exact (a dozen entries: each
    # difference is two splat calls)
    def loss_x(xv):
        return inner(gout, stn.splat(xv, grid, size, **kw))

    for k in rng.choice(x.size, 12, replace=False):
        xp, xm = x.copy(), x.copy()
        xp.flat[k] += 0.5
        xm.flat[k] -= 0.5
        assert gi.flat[k] == pytest.approx(loss_x(xp) - loss_x(xm), rel=1e-10, abs=1e-10)
    np.testing.assert_array_equal(gi, stn.grid_sample(gout, grid, **kw))

    # grid: input pixel p moves with grid[p] only -> perturb one component everywhere
    fd_g = np.empty_like(grid)
    for k in range(dims):
        gp, gm = grid.copy(), grid.copy()
        gp[..., k] += H_PT
        gm[..., k] -= H_PT
        # the loss of input pixel p, Σ_c x[p, c] · grid_sample(gout, grid)[p, c]
        lp = np.sum(x * stn.grid_sample(gout, gp, **kw), axis=1)
        lm = np.sum(x * stn.grid_sample(gout, gm, **kw), axis=1)
        fd_g[..., k] = (lp - lm) / (gp[..., k] - gm[..., k])
        # ... and the same through splat itself, summed
        whole = (
            inner(gout, stn.splat(x, gp, size, **kw)) - inner(gout, stn.splat(x, gm, size, **kw))
        ) / (2 * H_PT)
        assert whole == pytest.approx(float(np.sum(gg[..., k])), rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(gg, fd_g, **FD_TOL)
    if mode == "nearest":
        assert not gg.any()
    else:
        assert np.abs(gg).max() > 0.1


def test_backward_flags_and_shapes(rng):
    x, grid, size = problem(rng, 2, np.float32)
    gout = rng.standard_normal(x.shape[:2] + size).astype(np.float32)
    gi, gg = stn.splat_backward(gout, x, grid, input_grad=False)
    assert gi is None and gg.shape == grid.shape and gg.dtype == np.float32
    gi, gg = stn.splat_backward(gout, x, grid, grid_grad=False)
    assert gg is None and gi.shape == x.shape and gi.dtype == np.float32
    gi, gg = stn.splat_backward(gout, x, grid, deterministic=False)
    assert gi.shape == x.shape and gg.shape == grid.shape


# ----------------------------------------------------------------------------
# Determinism: bit-identical at 1 and 2 threads (see test_determinism.py)
# ----------------------------------------------------------------------------


@pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="NUMBA_NUM_THREADS < 2: no second thread"
)
@pytest.mark.parametrize("dims,mode", [(2, "bilinear"), (2, "bicubic"), (3, "bilinear")])
def test_thread_count_invariance(rng, dims, mode):
    """Zoom-out splatting (a large input onto a small patch of the output): dozens of
    input pixels add into each output pixel, so the order of additions matters."""
    before = numba.get_num_threads()
    if dims == 2:
        x = rng.standard_normal((1, 2, 40, 48))
        size = (24, 20)
    else:
        x = rng.standard_normal((1, 2, 12, 10, 8))
        size = (10, 6, 7)
    ident = np.eye(dims, dims + 1)[None]
    grid = 0.3 * stn.affine_grid(ident, x.shape, False) + 0.002 * rng.standard_normal(
        (1, *x.shape[2:], dims)
    )
    results = []
    try:
        for nthreads in (1, 2, 2):
            numba.set_num_threads(nthreads)
            results.append(stn.splat(x, grid, size, mode, "reflection"))
    finally:
        numba.set_num_threads(before)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    # the collisions are real: reversing the raster order changes some last bits
    rev = tuple(slice(None, None, -1) for _ in range(dims))
    flipped = stn.splat(
        x[(..., *rev)].copy(), grid[(slice(None), *rev)].copy(), size, mode, "reflection"
    )
    np.testing.assert_allclose(flipped, results[0], **tol(np.float64))
    assert not np.array_equal(flipped, results[0])


# ----------------------------------------------------------------------------
# Bad input: errors name the argument
# ----------------------------------------------------------------------------


def test_bad_input(rng):
    x, grid, size = problem(rng, 2)
    gout = np.zeros(x.shape[:2] + size)
    with pytest.raises(ValueError, match="grid must have shape"):
        stn.splat(x, grid[:, :3], size)  # not on input's lattice
    with pytest.raises(ValueError, match=r"grid\.shape\[0\]"):
        stn.splat(x, grid[:1], size)
    with pytest.raises(ValueError, match="grid's last axis"):
        stn.splat(x, np.zeros((2, 4, 5, 3)), size)
    with pytest.raises(ValueError, match="size must have 2 entries"):
        stn.splat(x, grid, (5, 6, 7))
    with pytest.raises(ValueError, match="size entries must be >= 1"):
        stn.splat(x, grid, (0, 6))
    with pytest.raises(TypeError, match="size must"):
        stn.splat(x, grid, 5)
    with pytest.raises(TypeError, match="grid has dtype float32"):
        stn.splat(x, grid.astype(np.float32), size)
    with pytest.raises(TypeError, match="input must have dtype"):
        stn.splat(x.astype(np.int32), grid, size)
    with pytest.raises(ValueError, match="mode must be one of"):
        stn.splat(x, grid, size, mode="linear")
    with pytest.raises(ValueError, match="padding_mode"):
        stn.splat(x, grid, size, padding_mode="mirror")
    with pytest.raises(TypeError, match="deterministic must be a bool"):
        stn.splat(x, grid, size, deterministic=1)
    with pytest.raises(ValueError, match="out must have shape"):
        stn.splat(x, grid, size, out=np.zeros(x.shape))
    with pytest.raises(ValueError, match="out must not overlap input"):
        stn.splat(x, grid, x.shape[2:], out=x)
    x3, g3, s3 = problem(rng, 3)
    with pytest.raises(ValueError, match="bicubic"):
        stn.splat(x3, g3, s3, mode="bicubic")
    with pytest.raises(ValueError, match="grad_output must have shape"):
        stn.splat_backward(gout[:, :1], x, grid)
    with pytest.raises(ValueError, match="grad_output must be"):
        stn.splat_backward(gout[0], x, grid)
    with pytest.raises(TypeError, match="grad_output has dtype"):
        stn.splat_backward(gout.astype(np.float32), x, grid)
    with pytest.raises(TypeError, match="grid_grad must be a bool"):
        stn.splat_backward(gout, x, grid, grid_grad="yes")
    with pytest.raises(ValueError, match="grid must have shape"):
        stn.splat_backward(gout, x, grid[:, :, :4])


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_non_finite_grid_values(rng, mode):
    """NaN targets drop their pixel; ±inf and huge ones are clamped like grid_sample's
    points (border: the edge), so the output stays finite and adjointness holds."""
    y, grid, size = problem(rng, 2)
    grid[0, 0, 0] = (np.nan, 0.0)
    grid[0, 1, 2] = (np.inf, -np.inf)
    grid[1, 2, 3] = (0.1, 1e30)
    grid[1, 3, 4] = (-np.inf, np.nan)
    x = rng.standard_normal(y.shape[:2] + size)
    for padding in PADDINGS:
        out = stn.splat(y, grid, size, mode, padding)
        assert np.isfinite(out).all()
        lhs = inner(stn.grid_sample(x, grid, mode, padding), y)
        assert lhs == pytest.approx(inner(x, out), rel=1e-12, abs=1e-12)
        gi, gg = stn.splat_backward(x, y, grid, mode, padding)
        assert np.isfinite(gi).all() and np.isfinite(gg).all()
    bare = y.copy()
    bare[0, :, 0, 0] = 0.0  # the pixels with a NaN target contribute nothing
    bare[1, :, 3, 4] = 0.0
    for padding in PADDINGS:
        np.testing.assert_array_equal(
            stn.splat(y, grid, size, mode, padding), stn.splat(bare, grid, size, mode, padding)
        )
