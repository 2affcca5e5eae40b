"""stn_numba.matrices: parameterised affine θ (+ backwards) and pixel-space matrices.

References: explicit per-sample matrix products and float64 central differences for the
parameterised affine (torch autograd when installed); scipy.ndimage.affine_transform,
tests/scipy_ref.py's matrix and cv2.warpAffine (when installed) for the pixel-space
conversions. Images are tiny and mostly float64 so that one warp_affine compile serves.
"""

import doctest

import numpy as np
import pytest
from conftest import HAS_TORCH, tol
from scipy import ndimage
from scipy_ref import scipy_affine_matrix

import stn_numba as stn
from stn_numba import matrices

# ----------------------------------------------------------------------------
# helpers (independent of the module under test)
# ----------------------------------------------------------------------------


def explicit_theta(angle, sx, sy, shear, t):
    """θ of one sample from the formula in the docstring, written out matrix by matrix."""
    R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    S = np.array([[sx, 0.0], [0.0, sy]])
    H = np.array([[1.0, shear], [0.0, 1.0]])
    return np.hstack([R @ S @ H, np.broadcast_to(np.reshape(t, (-1, 1)), (2, 1))])


def central_diff(f, x, eps=1e-6):
    """d f / d x for scalar f and any-shaped float64 x, by central differences."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def smooth_image(shape):
    """A smooth 2-D/3-D test image (values within [-3, 3])."""
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    return sum(np.sin(g / (2.3 + k) + k) for k, g in enumerate(grids))


PARAMS = {  # N = 3 samples
    "angle": np.array([0.3, -1.1, 2.0]),
    "scale": np.array([[0.8, 1.3], [1.1, 0.7], [0.9, 0.95]]),
    "shear": np.array([0.2, -0.35, 0.1]),
    "translation": np.array([[0.1, -0.2], [0.05, 0.3], [-0.25, 0.0]]),
}


# ----------------------------------------------------------------------------
# affine_theta
# ----------------------------------------------------------------------------


class TestAffineTheta:
    def test_identity(self):
        np.testing.assert_array_equal(stn.affine_theta(), np.eye(2, 3)[None])
        theta = stn.affine_theta(batch=3)
        assert theta.shape == (3, 2, 3) and theta.dtype == np.float64
        np.testing.assert_array_equal(theta, np.broadcast_to(np.eye(2, 3), (3, 2, 3)))

    def test_composition_order(self):
        theta = stn.affine_theta(**PARAMS)
        for n in range(3):
            ref = explicit_theta(
                PARAMS["angle"][n],
                *PARAMS["scale"][n],
                PARAMS["shear"][n],
                PARAMS["translation"][n],
            )
            np.testing.assert_allclose(theta[n], ref, rtol=1e-14, atol=1e-15)
        # the order matters: S·R·H or R·H·S would give different matrices here
        R = explicit_theta(PARAMS["angle"][0], 1, 1, 0, [0, 0])[:, :2]
        S = np.diag(PARAMS["scale"][0])
        H = explicit_theta(0, 1, 1, PARAMS["shear"][0], [0, 0])[:, :2]
        assert not np.allclose(theta[0, :, :2], S @ R @ H)
        assert not np.allclose(theta[0, :, :2], R @ H @ S)

    def test_each_component_alone(self):
        a, k, t = 0.7, 0.4, np.array([0.3, -0.1])
        np.testing.assert_allclose(stn.affine_theta(angle=a)[0], explicit_theta(a, 1, 1, 0, 0))
        np.testing.assert_array_equal(stn.affine_theta(scale=2.0)[0], [[2, 0, 0], [0, 2, 0]])
        np.testing.assert_array_equal(stn.affine_theta(shear=k)[0], [[1, k, 0], [0, 1, 0]])
        np.testing.assert_array_equal(
            stn.affine_theta(translation=t)[0], [[1, 0, 0.3], [0, 1, -0.1]]
        )

    def test_isotropic_scale_and_broadcasting(self):
        s = np.array([0.5, 2.0])
        iso = stn.affine_theta(angle=0.2, scale=s, translation=[0.1, 0.2])
        pair = stn.affine_theta(angle=np.full(2, 0.2), scale=np.stack([s, s], -1))
        pair[:, :, 2] = [0.1, 0.2]
        np.testing.assert_array_equal(iso, pair)
        # a (1, 2) scale is one (sx, sy) for every sample; a (2,) one is isotropic, N=2
        one = stn.affine_theta(scale=[[2.0, 3.0]], angle=[0.0, 0.0, 0.0])
        assert one.shape == (3, 2, 3)
        np.testing.assert_array_equal(one[:, 0, 0], 2.0)
        np.testing.assert_array_equal(one[:, 1, 1], 3.0)
        assert stn.affine_theta(scale=[2.0, 3.0]).shape == (2, 2, 3)
        assert stn.affine_theta(angle=0.1, batch=4).shape == (4, 2, 3)

    def test_dtypes(self):
        assert stn.affine_theta(angle=np.float32(0.5)).dtype == np.float32
        t32 = stn.affine_theta(angle=np.array([0.5], np.float32), scale=2)  # int is weak
        assert t32.dtype == np.float32
        np.testing.assert_allclose(t32, stn.affine_theta(angle=0.5, scale=2.0), **tol(np.float32))
        assert stn.affine_theta(angle=1).dtype == np.float64
        assert stn.affine_theta(angle=np.float32(1), dtype=np.float64).dtype == np.float64
        # a float32 array parameter that is Fortran-ordered, read-only and non-native
        tr = np.asfortranarray(np.ones((2, 2), ">f4"))
        tr.flags.writeable = False
        assert stn.affine_theta(translation=tr).dtype == np.float32
        with pytest.raises(TypeError, match="share one dtype"):
            stn.affine_theta(angle=np.float32(1), scale=np.float64(2))

    def test_rotation_by_90_degrees_turns_the_image_counter_clockwise(self):
        x = np.arange(25.0).reshape(1, 1, 5, 5)
        theta = stn.affine_theta(angle=np.pi / 2)
        for ac in (True, False):  # square image: pixel centres land on pixel centres
            got = stn.warp_affine(x, theta, align_corners=ac)[0, 0]
            np.testing.assert_allclose(got, np.rot90(x[0, 0]), atol=1e-12)

    def test_translation_and_scale_known_answers(self):
        x = np.arange(20.0).reshape(1, 1, 4, 5)
        # tx = 2/W reads one pixel to the right: the content moves one pixel left
        got = stn.warp_affine(x, stn.affine_theta(translation=[2 / 5, 0.0]))[0, 0]
        np.testing.assert_allclose(got[:, :4], x[0, 0, :, 1:], atol=1e-12)
        np.testing.assert_allclose(got[:, 4], 0.0, atol=1e-12)  # half of the last pixel
        # scale 0.5 with align_corners=True on 5 columns: the middle three, every half pixel
        y = np.arange(5.0)[None, None, None, :].repeat(5, 2)
        got = stn.warp_affine(y, stn.affine_theta(scale=0.5), align_corners=True)[0, 0, 0]
        np.testing.assert_allclose(got, [1.0, 1.5, 2.0, 2.5, 3.0], atol=1e-12)

    @pytest.mark.parametrize(
        "bad, err, match",
        [
            (dict(angle=np.zeros((2, 2))), ValueError, r"angle must have shape \(\) or \(N,\)"),
            (dict(scale=np.zeros((2, 3))), ValueError, "scale must have shape"),
            (dict(translation=np.zeros(3)), ValueError, "translation must have shape"),
            (dict(translation=0.5), ValueError, "translation must have shape"),
            (dict(shear=np.zeros((2, 1))), ValueError, "shear must have shape"),
            (dict(angle=[0, 1], shear=[0, 1, 2]), ValueError, "angle has 2, shear has 3"),
            (dict(angle=[0, 1], batch=3), ValueError, "batch=3"),
            (dict(batch=0), ValueError, "batch must be >= 1"),
            (dict(batch=2.0), TypeError, "batch must be an int"),
            (dict(angle="0.5"), TypeError, "angle must be a number"),
            (dict(angle=True), TypeError, "angle must be float32/float64"),
            (dict(scale=np.float16(1)), TypeError, "scale must be float32/float64"),
            (dict(angle=0.1, dtype=np.int32), TypeError, "dtype must be float32"),
        ],
    )
    def test_errors(self, bad, err, match):
        with pytest.raises(err, match=match):
            stn.affine_theta(**bad)


# ----------------------------------------------------------------------------
# backwards
# ----------------------------------------------------------------------------

GIVEN = [
    ("angle", "scale", "shear", "translation"),
    ("angle",),
    ("scale",),
    ("shear", "scale"),
    ("angle", "translation"),
]


class TestAffineThetaBackward:
    @pytest.mark.parametrize("given", GIVEN, ids=lambda g: "+".join(g))
    @pytest.mark.parametrize("iso", [False, True], ids=["sxsy", "iso"])
    def test_finite_differences(self, rng, given, iso):
        params = {k: PARAMS[k] for k in given}
        if iso and "scale" in params:
            params["scale"] = params["scale"][:, 0]
        G = rng.standard_normal((3, 2, 3))
        grads = stn.affine_theta_backward(G, **params)
        for name in AffineFields:
            if name not in params:
                assert getattr(grads, name) is None
                continue

            def loss(v, name=name):
                return np.sum(G * stn.affine_theta(**{**params, name: v}))

            got = getattr(grads, name)
            assert got.shape == params[name].shape
            np.testing.assert_allclose(got, central_diff(loss, params[name]), rtol=1e-8, atol=1e-9)

    def test_broadcast_parameters_get_summed_gradients(self, rng):
        G = rng.standard_normal((4, 2, 3))
        params = dict(
            angle=0.4, scale=np.array([[1.2, 0.9]]), shear=np.array([0.3]), translation=[0.1, 0.2]
        )
        grads = stn.affine_theta_backward(G, **params)
        assert grads.angle.shape == () and grads.scale.shape == (1, 2)
        assert grads.shear.shape == (1,) and grads.translation.shape == (2,)
        for name in AffineFields:

            def loss(v, name=name):
                return np.sum(G * stn.affine_theta(**{**params, name: v}, batch=4))

            ref = central_diff(loss, params[name])
            np.testing.assert_allclose(getattr(grads, name), ref, rtol=1e-8, atol=1e-9)

    def test_float32(self, rng):
        G = rng.standard_normal((3, 2, 3)).astype(np.float32)
        p32 = {k: v.astype(np.float32) for k, v in PARAMS.items()}
        g32 = stn.affine_theta_backward(G, **p32)
        g64 = stn.affine_theta_backward(G.astype(np.float64), **PARAMS)
        for a, b in zip(g32, g64):
            assert a.dtype == np.float32
            np.testing.assert_allclose(a, b, **tol(np.float32, "grad"))

    def test_chained_through_warp_affine(self, rng):
        """∂L/∂parameters of L = Σ w ⊙ warp_affine(x, affine_theta(p)) == finite differences."""
        x = rng.standard_normal((2, 2, 6, 7))
        w = rng.standard_normal((2, 2, 5, 6))
        params = {
            "angle": np.array([0.31, -0.23]),
            "scale": np.array([[0.83, 0.91], [1.07, 0.78]]),
            "shear": np.array([0.13, -0.17]),
            "translation": np.array([[0.07, -0.11], [-0.05, 0.09]]),
        }

        def loss(**p):
            return np.sum(w * stn.warp_affine(x, stn.affine_theta(**p), (5, 6)))

        theta = stn.affine_theta(**params)
        _, grad_theta = stn.warp_affine_backward(w, x, theta, (5, 6), input_grad=False)
        grads = stn.affine_theta_backward(grad_theta, **params)
        for name in AffineFields:
            ref = central_diff(lambda v, name=name: loss(**{**params, name: v}), params[name])
            np.testing.assert_allclose(getattr(grads, name), ref, rtol=1e-6, atol=1e-7)

    def test_errors(self):
        with pytest.raises(ValueError, match=r"grad_theta must have shape \(N, 2, 3\)"):
            stn.affine_theta_backward(np.zeros((2, 3)), angle=0.0)
        with pytest.raises(ValueError, match=r"grad_theta.shape\[0\]=2"):
            stn.affine_theta_backward(np.zeros((2, 2, 3)), angle=[0.0, 1.0, 2.0])
        with pytest.raises(TypeError, match="grad_theta must be"):
            stn.affine_theta_backward("g", angle=0.0)


AffineFields = stn.AffineThetaGrads._fields


# ----------------------------------------------------------------------------
# affine_theta(size=): rigid in pixels on non-square images
# ----------------------------------------------------------------------------


def pixel_linear_part(theta, size, align_corners):
    """θ's linear part seen in pixel offsets (x, y) from the image centre, input = output."""
    h, w = size
    d = np.array([w - 1.0, h - 1.0]) if align_corners else np.array([w / 1.0, h / 1.0])
    return np.diag(d) @ theta[:2, :2] @ np.diag(1 / d)


class TestAffineThetaSize:
    @pytest.mark.parametrize("align_corners", [False, True])
    def test_rotation_is_rigid_in_pixels(self, align_corners):
        size = (48, 64)
        theta = stn.affine_theta(angle=0.5, size=size, align_corners=align_corners)[0]
        lin = pixel_linear_part(theta, size, align_corners)
        np.testing.assert_allclose(lin @ lin.T, np.eye(2), atol=1e-14)  # orthogonal
        np.testing.assert_allclose(lin, explicit_theta(0.5, 1, 1, 0, 0)[:, :2], atol=1e-14)
        plain = stn.affine_theta(angle=0.5)[0]
        lin = pixel_linear_part(plain, size, align_corners)
        assert np.abs(lin @ lin.T - np.eye(2)).max() > 0.05  # the plain θ is not rigid here

    @pytest.mark.parametrize("align_corners", [False, True])
    def test_equals_rotation_matrix_about_the_centre(self, align_corners):
        (h, w), n = (48, 64), 3
        angle, scale = np.array([0.3, -1.1, 2.0]), np.array([0.8, 1.25, 1.0])
        t = np.array([[0.1, -0.2], [0.0, 0.0], [-0.3, 0.05]])
        theta = stn.affine_theta(
            angle=angle, scale=scale, translation=t, size=(h, w), align_corners=align_corners
        )
        M = stn.rotation_matrix(((w - 1) / 2, (h - 1) / 2), np.rad2deg(angle), 1 / scale)
        ref = stn.theta_from_cv2(M, (h, w), align_corners=align_corners)
        assert ref.shape == theta.shape == (n, 2, 3)
        np.testing.assert_allclose(theta[:, :, :2], ref[:, :, :2], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(ref[:, :, 2], 0.0, atol=1e-14)  # about the centre
        np.testing.assert_array_equal(theta[:, :, 2], t)  # translation: normalised units

    def test_square_image_and_translation_are_unchanged(self):
        params = dict(angle=0.7, scale=[[0.9, 1.2]], shear=0.3, translation=[0.1, 0.2])
        plain = stn.affine_theta(**params)
        for ac in (False, True):
            np.testing.assert_allclose(
                stn.affine_theta(**params, size=(9, 9), align_corners=ac), plain, atol=1e-15
            )
        # only the aspect ratio matters (align_corners=False)
        np.testing.assert_allclose(
            stn.affine_theta(**params, size=(3, 4)),
            stn.affine_theta(**params, size=(48, 64)),
            atol=1e-15,
        )

    def test_float32(self):
        t32 = stn.affine_theta(angle=np.float32(0.5), size=(48, 64))
        assert t32.dtype == np.float32
        np.testing.assert_allclose(
            t32, stn.affine_theta(angle=0.5, size=(48, 64)), **tol(np.float32)
        )

    @pytest.mark.parametrize("align_corners", [False, True])
    @pytest.mark.parametrize("given", GIVEN, ids=lambda g: "+".join(g))
    def test_backward_finite_differences(self, rng, given, align_corners):
        params = {k: PARAMS[k] for k in given}
        kw = dict(size=(5, 11), align_corners=align_corners)
        G = rng.standard_normal((3, 2, 3))
        grads = stn.affine_theta_backward(G, **params, **kw)
        for name in params:

            def loss(v, name=name):
                return np.sum(G * stn.affine_theta(**{**params, name: v}, **kw))

            ref = central_diff(loss, params[name])
            np.testing.assert_allclose(getattr(grads, name), ref, rtol=1e-8, atol=1e-9)

    @pytest.mark.parametrize(
        "kwargs, err, match",
        [
            (dict(size=(3, 4, 5)), ValueError, "size must have 2 entries"),
            (dict(size=(0, 4)), ValueError, "size entries must be >= 1"),
            (dict(size=64), TypeError, "size must be a sequence"),
            (dict(size=(1, 4), align_corners=True), ValueError, "axis of size 1"),
            (dict(align_corners=True), ValueError, "align_corners is used only with size"),
            (dict(size=(3, 4), align_corners=1), TypeError, "align_corners must be a bool"),
        ],
    )
    def test_errors(self, kwargs, err, match):
        with pytest.raises(err, match=match):
            stn.affine_theta(angle=0.1, **kwargs)
        with pytest.raises(err, match=match):
            stn.affine_theta_backward(np.zeros((1, 2, 3)), angle=0.1, **kwargs)


class TestAttentionTheta:
    def test_forward(self):
        s, t = np.array([0.5, 1.5]), np.array([[0.25, -0.5], [0.0, 0.1]])
        np.testing.assert_array_equal(
            stn.attention_theta(s, t),
            [[[0.5, 0, 0.25], [0, 0.5, -0.5]], [[1.5, 0, 0.0], [0, 1.5, 0.1]]],
        )
        np.testing.assert_array_equal(
            stn.attention_theta(s, t), stn.affine_theta(scale=s, translation=t)
        )

    def test_backward_finite_differences(self, rng):
        s, t = np.array([0.5, 1.5]), np.array([[0.25, -0.5], [0.0, 0.1]])
        G = rng.standard_normal((2, 2, 3))
        grads = stn.attention_theta_backward(G, s, t)
        assert isinstance(grads, stn.AttentionThetaGrads)
        ref_s = central_diff(lambda v: np.sum(G * stn.attention_theta(v, t)), s)
        ref_t = central_diff(lambda v: np.sum(G * stn.attention_theta(s, v)), t)
        np.testing.assert_allclose(grads.scale, ref_s, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(grads.translation, ref_t, rtol=1e-9, atol=1e-10)

    def test_errors(self):
        with pytest.raises(ValueError, match="isotropic"):
            stn.attention_theta(np.ones((2, 2)), np.zeros((2, 2)))
        with pytest.raises(ValueError, match="isotropic"):
            stn.attention_theta_backward(np.zeros((2, 2, 3)), np.ones((2, 2)), np.zeros((2, 2)))
        with pytest.raises(TypeError):
            stn.attention_theta(0.5)  # translation is required


@pytest.mark.torch
@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed: autograd parity skipped")
def test_torch_autograd_parity(rng):
    import torch

    p = {k: torch.tensor(v, requires_grad=True) for k, v in PARAMS.items()}
    c, s = torch.cos(p["angle"]), torch.sin(p["angle"])
    R = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    S = torch.diag_embed(p["scale"])
    one, zero = torch.ones_like(p["shear"]), torch.zeros_like(p["shear"])
    H = torch.stack([torch.stack([one, p["shear"]], -1), torch.stack([zero, one], -1)], -2)
    theta = torch.cat([R @ S @ H, p["translation"][:, :, None]], -1)
    np.testing.assert_allclose(
        stn.affine_theta(**PARAMS), theta.detach().numpy(), rtol=1e-14, atol=1e-15
    )
    G = rng.standard_normal((3, 2, 3))
    (theta * torch.tensor(G)).sum().backward()
    grads = stn.affine_theta_backward(G, **PARAMS)
    for name in AffineFields:
        np.testing.assert_allclose(
            getattr(grads, name), p[name].grad.numpy(), rtol=1e-12, atol=1e-13
        )


# ----------------------------------------------------------------------------
# pixel-space matrices: scipy
# ----------------------------------------------------------------------------


def random_scipy_matrix(rng, d):
    return np.eye(d) + 0.25 * rng.standard_normal((d, d)), rng.uniform(-1.5, 1.5, d)


def scipy_reference(img, matrix, offset, out_shape):
    return ndimage.affine_transform(
        img, matrix, offset, output_shape=out_shape, order=1, mode="grid-constant", prefilter=False
    )


SIZES_2D = [((6, 7), (5, 9)), ((6, 7), None), ((5, 4), (1, 6))]
SIZES_3D = [((4, 5, 3), (3, 6, 4))]


class TestScipy:
    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("sizes", SIZES_2D + SIZES_3D, ids=str)
    def test_warp_equals_affine_transform(self, rng, sizes, align_corners):
        ins, outs = sizes
        d = len(ins)
        img = smooth_image(ins)
        matrix, offset = random_scipy_matrix(rng, d)
        ref = scipy_reference(img, matrix, offset, outs or ins)
        theta = stn.theta_from_scipy(matrix, ins, outs, offset=offset, align_corners=align_corners)
        assert theta.shape == (d, d + 1)
        got = stn.warp_affine(img[None, None], theta[None], outs, align_corners=align_corners)
        np.testing.assert_allclose(got[0, 0], ref, rtol=1e-11, atol=1e-11)
        one_line = stn.warp_affine_pixels(
            img[None, None],
            matrix,
            outs,
            align_corners=align_corners,
            convention="scipy",
            offset=offset,
        )
        np.testing.assert_allclose(one_line[0, 0], ref, rtol=1e-11, atol=1e-11)

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("sizes", [SIZES_2D[0], SIZES_3D[0]], ids=str)
    def test_to_scipy_is_spec_matrix_and_round_trips(self, rng, sizes, align_corners):
        ins, outs = sizes
        d = len(ins)
        theta = np.eye(d, d + 1) + 0.3 * rng.standard_normal((2, d, d + 1))
        matrix, offset = stn.theta_to_scipy(theta, ins, outs, align_corners=align_corners)
        assert matrix.shape == (2, d, d) and offset.shape == (2, d)
        for n in range(2):
            spec = scipy_affine_matrix(theta[n], ins, outs, align_corners)
            np.testing.assert_allclose(matrix[n], spec[:d, :d], rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(offset[n], spec[:d, d], rtol=1e-13, atol=1e-13)
        back = stn.theta_from_scipy(matrix, ins, outs, offset=offset, align_corners=align_corners)
        np.testing.assert_allclose(back, theta, rtol=1e-13, atol=1e-13)

    def test_matrix_forms_agree(self, rng):
        matrix, offset = random_scipy_matrix(rng, 2)
        ins, outs = (6, 7), (5, 9)
        ref = stn.theta_from_scipy(matrix, ins, outs, offset=offset)
        h = np.eye(3)
        h[:2, :2], h[:2, 2] = matrix, offset
        forms = [
            stn.theta_from_scipy(h, ins, outs, offset=99.0),  # offset ignored, as scipy does
            stn.theta_from_scipy(h[:2], ins, outs),
            stn.theta_from_scipy(matrix.tolist(), ins, outs, offset=offset.tolist()),
            stn.theta_from_scipy(np.stack([matrix, matrix]), ins, outs, offset=offset)[1],
            stn.theta_from_scipy(np.stack([h, h]), ins, outs)[0],
        ]
        for f in forms:
            np.testing.assert_allclose(f, ref, rtol=1e-14, atol=1e-14)
        diag = stn.theta_from_scipy(np.array([1.5, 0.5]), ins, outs, offset=0.25)
        np.testing.assert_allclose(
            diag,
            stn.theta_from_scipy(np.diag([1.5, 0.5]), ins, outs, offset=[0.25, 0.25]),
            atol=1e-15,
        )
        batch_off = stn.theta_from_scipy(
            np.stack([matrix, matrix]), ins, outs, offset=np.stack([offset, 0 * offset])
        )
        np.testing.assert_allclose(batch_off[0], ref, rtol=1e-14, atol=1e-14)

    def test_dtype_follows_matrix(self):
        assert stn.theta_from_scipy(np.eye(2, dtype=np.float32), (3, 3)).dtype == np.float32
        assert stn.theta_from_scipy(np.eye(2, dtype=int), (3, 3)).dtype == np.float64
        m, o = stn.theta_to_scipy(np.eye(3, 4, dtype=np.float32), (2, 3, 4))
        assert m.dtype == o.dtype == np.float32

    @pytest.mark.parametrize(
        "call, err, match",
        [
            (
                lambda: stn.theta_from_scipy(np.eye(3), (3, 4, 5, 6)),
                ValueError,
                "input_size must be",
            ),
            (lambda: stn.theta_from_scipy(np.eye(4), (3, 4)), ValueError, "matrix must have shape"),
            (lambda: stn.theta_from_scipy(np.ones((3, 3)), (3, 4)), ValueError, "bottom row"),
            (
                lambda: stn.theta_from_scipy(np.eye(2), 5),
                TypeError,
                "input_size must be a sequence",
            ),
            (lambda: stn.theta_from_scipy(np.eye(2), (3, 0)), ValueError, "input_size entries"),
            (lambda: stn.theta_from_scipy(np.eye(2), (3, 4), (3,)), ValueError, "output_size"),
            (
                lambda: stn.theta_from_scipy(np.eye(2), (3, 4), offset=[1, 2, 3]),
                ValueError,
                "offset",
            ),
            (
                lambda: stn.theta_from_scipy(np.eye(2), (3, 4), offset=np.zeros((2, 2))),
                ValueError,
                "batched matrix",
            ),
            (lambda: stn.theta_from_scipy(np.full((2, 2), np.nan), (3, 4)), ValueError, "finite"),
            (lambda: stn.theta_from_scipy("eye", (3, 4)), TypeError, "matrix must be"),
            (
                lambda: stn.theta_from_scipy(np.eye(2), (1, 4), align_corners=True),
                ValueError,
                "axis of size 1",
            ),
            (
                lambda: stn.theta_from_scipy(np.eye(2), (3, 4), align_corners=1),
                TypeError,
                "align_corners",
            ),
            (
                lambda: stn.theta_to_scipy(np.eye(2, 3), (3, 4, 5)),
                ValueError,
                "input_size must have 2",
            ),
            (lambda: stn.theta_to_scipy(np.eye(2), (3, 4)), ValueError, "theta must have shape"),
        ],
    )
    def test_errors(self, call, err, match):
        with pytest.raises(err, match=match):
            call()


# ----------------------------------------------------------------------------
# pixel-space matrices: OpenCV
# ----------------------------------------------------------------------------


def cv2_tolerance(img):
    """Bound on |cv2.warpAffine - exact bilinear| for OpenCV's 1/32-pixel fixed point.

    OpenCV rounds each source coordinate to 1/32 pixel, after summing two terms each
    rounded to 1/1024: |δx|, |δy| <= 1/64 + 1/1024. Bilinear interpolation (zeros outside)
    changes by at most Lx·|δx| + Ly·|δy| when the point moves by (δx, δy), Lx / Ly the
    largest horizontal / vertical difference between adjacent pixels of the zero-padded
    image. Plus float32 rounding of cv2's float32 arithmetic (a few ulps of max |img|).
    """
    p = np.pad(img.astype(np.float64), 1)
    lx = np.abs(np.diff(p, axis=1)).max()
    ly = np.abs(np.diff(p, axis=0)).max()
    return (lx + ly) * (1 / 64 + 1 / 1024) + 8 * np.finfo(np.float32).eps * np.abs(img).max()


class TestCv2:
    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("inverse_map", [False, True])
    @pytest.mark.parametrize("sizes", [((9, 11), (8, 13)), ((9, 11), None)], ids=str)
    def test_warp_equals_cv2_warp_affine(self, sizes, inverse_map, align_corners):
        cv2 = pytest.importorskip("cv2", reason="OpenCV not installed: cv2 parity skipped")
        ins, outs = sizes
        img = smooth_image(ins).astype(np.float32)
        M = cv2.getRotationMatrix2D((5.2, 3.9), 25.0, 1.15)
        M[0, 2] += 0.7
        flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse_map else 0)
        dsize = (outs or ins)[::-1]  # cv2's dsize is (W, H)
        ref = cv2.warpAffine(img, M, dsize, flags=flags)
        theta = stn.theta_from_cv2(
            M, ins, outs, inverse_map=inverse_map, align_corners=align_corners
        )
        x = img[None, None].astype(np.float64)
        got = stn.warp_affine(x, theta[None], outs, align_corners=align_corners)[0, 0]
        bound = cv2_tolerance(img)
        assert np.abs(got - ref).max() <= bound
        one_line = stn.warp_affine_pixels(
            x, M, outs, align_corners=align_corners, convention="cv2", inverse_map=inverse_map
        )
        np.testing.assert_allclose(one_line[0, 0], got, rtol=1e-12, atol=1e-12)

    @pytest.mark.parametrize(
        "border, padding, align_corners",
        [
            ("BORDER_REPLICATE", "border", False),
            ("BORDER_REFLECT_101", "reflection", True),
            ("BORDER_REFLECT", "reflection", False),
        ],
    )
    def test_border_modes(self, border, padding, align_corners):
        cv2 = pytest.importorskip("cv2", reason="OpenCV not installed: cv2 parity skipped")
        img = smooth_image((7, 8)).astype(np.float32)
        M = cv2.getRotationMatrix2D((3.5, 3.0), -30.0, 0.8)
        ref = cv2.warpAffine(img, M, (9, 6), borderMode=getattr(cv2, border))
        got = stn.warp_affine_pixels(
            img[None, None].astype(np.float64),
            M,
            (6, 9),
            padding_mode=padding,
            align_corners=align_corners,
            convention="cv2",
        )
        assert np.abs(got[0, 0] - ref).max() <= cv2_tolerance(img)

    def test_known_answer_without_cv2(self):
        # M moves the content 1 px right and 2 px down: output pixel (x, y) reads (x-1, y-2)
        M = np.array([[1.0, 0, 1], [0, 1, 2]])
        x = np.arange(20.0).reshape(1, 1, 4, 5)
        got = stn.warp_affine_pixels(x, M, convention="cv2")[0, 0]
        ref = np.zeros((4, 5))
        ref[2:, 1:] = x[0, 0, :2, :4]
        np.testing.assert_allclose(got, ref, atol=1e-12)
        inv = stn.warp_affine_pixels(x, M, convention="cv2", inverse_map=True)[0, 0]
        ref = np.zeros((4, 5))
        ref[:2, :4] = x[0, 0, 2:, 1:]
        np.testing.assert_allclose(inv, ref, atol=1e-12)

    @pytest.mark.parametrize("align_corners", [True, False])
    @pytest.mark.parametrize("inverse_map", [False, True])
    def test_round_trips(self, rng, inverse_map, align_corners):
        ins, outs = (9, 11), (8, 13)
        M = np.eye(2, 3) + 0.2 * rng.standard_normal((3, 2, 3))
        kw = dict(inverse_map=inverse_map, align_corners=align_corners)
        theta = stn.theta_from_cv2(M, ins, outs, **kw)
        assert theta.shape == (3, 2, 3)
        np.testing.assert_allclose(
            stn.theta_to_cv2(theta, ins, outs, **kw), M, rtol=1e-12, atol=1e-12
        )
        t = np.eye(2, 3) + 0.2 * rng.standard_normal((2, 3))
        back = stn.theta_from_cv2(stn.theta_to_cv2(t, ins, outs, **kw), ins, outs, **kw)
        np.testing.assert_allclose(back, t, rtol=1e-12, atol=1e-12)

    def test_cv2_and_scipy_agree(self, rng):
        """One warp both ways: scipy's matrix is cv2's inverse map, axes swapped."""
        A = np.eye(2, 3) + 0.2 * rng.standard_normal((2, 3))
        matrix, offset = A[::-1, 1::-1], A[::-1, 2]
        t_cv2 = stn.theta_from_cv2(A, (6, 7), (5, 4), inverse_map=True)
        t_sp = stn.theta_from_scipy(matrix, (6, 7), (5, 4), offset=offset)
        np.testing.assert_allclose(t_cv2, t_sp, rtol=1e-14, atol=1e-14)

    @pytest.mark.parametrize(
        "call, err, match",
        [
            (lambda: stn.theta_from_cv2(np.eye(3), (4, 4)), ValueError, "M must have shape"),
            (lambda: stn.theta_from_cv2(np.zeros((2, 3)), (4, 4)), ValueError, "M is singular"),
            (
                lambda: stn.theta_from_cv2(np.stack([np.eye(2, 3), np.zeros((2, 3))]), (4, 4)),
                ValueError,
                r"M \(sample 1\) is singular",
            ),
            (
                lambda: stn.theta_from_cv2(np.eye(2, 3), (4, 4, 4)),
                ValueError,
                r"input_size must be \(H, W\)",
            ),
            (
                lambda: stn.theta_from_cv2(np.eye(2, 3), (4, 4), inverse_map=1),
                TypeError,
                "inverse_map",
            ),
            (
                lambda: stn.theta_from_cv2(np.eye(2, 3), (1, 4), align_corners=True),
                ValueError,
                "size 1",
            ),
            (lambda: stn.theta_to_cv2(np.eye(3, 4), (4, 4)), ValueError, "for OpenCV"),
            (
                lambda: stn.theta_to_cv2(np.zeros((2, 3)), (4, 4)),
                ValueError,
                "theta .* is singular",
            ),
        ],
    )
    def test_errors(self, call, err, match):
        with pytest.raises(err, match=match):
            call()


# ----------------------------------------------------------------------------
# rotation_matrix
# ----------------------------------------------------------------------------


def smooth_rgb(h, w):
    """A smooth uint8 H×W×3 image: adjacent pixels differ by at most 24 + 17 grey levels."""
    yy, xx = np.mgrid[:h, :w]
    planes = [127.5 + 120 * np.sin(xx / 5.0 + c) * np.cos(yy / 7.0 - c) for c in range(3)]
    return np.stack(planes, -1).round().astype(np.uint8)


class TestRotationMatrix:
    def test_equals_get_rotation_matrix_2d(self):
        cv2 = pytest.importorskip("cv2", reason="OpenCV not installed: cv2 parity skipped")
        for center, angle, scale in [((5.25, 3.5), 25.0, 1.15), ((0, 0), -70, 0.5)]:
            ref = cv2.getRotationMatrix2D(center, angle, scale)
            got = stn.rotation_matrix(center, angle, scale)
            assert got.shape == (2, 3) and got.dtype == np.float64
            np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-14)

    def test_known_answer_and_batching(self):
        c, s = np.cos(np.deg2rad(30.0)), np.sin(np.deg2rad(30.0))
        ref = np.array([[2 * c, 2 * s, (1 - 2 * c) * 3 - 2 * s * 1], [-2 * s, 2 * c, 0.0]])
        ref[1, 2] = 2 * s * 3 + (1 - 2 * c) * 1
        np.testing.assert_allclose(stn.rotation_matrix([3, 1], 30, 2), ref, atol=1e-15)
        centers = np.array([[3.0, 1.0], [0.0, 0.0]])
        batch = stn.rotation_matrix(centers, [30.0, -45.0], 2.0)
        assert batch.shape == (2, 2, 3)
        np.testing.assert_allclose(batch[0], ref, atol=1e-15)
        np.testing.assert_allclose(batch[1], stn.rotation_matrix((0, 0), -45.0, 2), atol=0)
        assert stn.rotation_matrix((1, 2), 10.0, [1.0, 2.0, 3.0]).shape == (3, 2, 3)
        assert stn.rotation_matrix((1, 2), np.float32(10)).dtype == np.float32
        assert stn.rotation_matrix((1, 2), 10, dtype=np.float32).dtype == np.float32

    def test_a_rotation_maps_the_center_to_itself(self):
        M = stn.rotation_matrix((4.5, 2.0), 37.0, 1.7)
        np.testing.assert_allclose(M @ [4.5, 2.0, 1.0], [4.5, 2.0], atol=1e-14)
        # and turns (cx + 1, cy) counter-clockwise on screen (y down): towards -y
        turned = M @ [5.5, 2.0, 1.0] - [4.5, 2.0]
        a = np.deg2rad(37.0)
        np.testing.assert_allclose(turned, 1.7 * np.array([np.cos(a), -np.sin(a)]), atol=1e-14)

    def test_rgb_uint8_rotation_equals_cv2_warp_affine(self):
        """A 30° turn of a non-square H×W×3 uint8 image, channels-last, both routes."""
        cv2 = pytest.importorskip("cv2", reason="OpenCV not installed: cv2 parity skipped")
        (h, w), center = (48, 64), (63 / 2, 47 / 2)
        img = smooth_rgb(h, w)
        M = cv2.getRotationMatrix2D(center, 30.0, 1.0)
        ref = cv2.warpAffine(img, M, (w, h)).astype(int)  # bilinear, zero border
        thetas = [
            stn.theta_from_cv2(stn.rotation_matrix(center, 30.0), (h, w))[None],
            stn.affine_theta(angle=np.deg2rad(30.0), size=(h, w)),
        ]
        # where the source point is >= 1 px inside the image, every tap and OpenCV's
        # 1/32-pixel rounding of the point stay inside: the float results differ by at most
        # (24 + 17)·(1/64 + 1/1024) < 0.7, so the rounded ones by at most 1 grey level.
        # Within 1 px of the border the zero padding is a step of up to 255: up to
        # 255·2·(1/64 + 1/1024) + 1 < 10. OpenCV 5.1 was measured to agree exactly everywhere.
        src = np.linalg.inv(np.vstack([M, [0, 0, 1]])) @ np.stack(
            [*np.mgrid[:h, :w][::-1], np.ones((h, w))]
        ).reshape(3, -1)
        sx, sy = src[0].reshape(h, w), src[1].reshape(h, w)
        inside = (sx >= 1) & (sx <= w - 2) & (sy >= 1) & (sy <= h - 2)
        far = (sx < -2) | (sx > w + 1) | (sy < -2) | (sy > h + 1)
        band = ~inside & ~far
        assert band.mean() < 0.1  # thin: about 7 % of the pixels
        for theta in thetas:
            got = stn.warp_affine(
                img[None], theta.astype(np.float32), layout="NHWC", output_dtype=np.uint8
            )[0].astype(int)
            diff = np.abs(got - ref)
            assert diff[inside].max() <= 1
            assert diff[band].max() < 10
            assert diff[far].max() == 0

    @pytest.mark.parametrize(
        "kwargs, err, match",
        [
            (dict(center=(1.0, 2.0, 3.0)), ValueError, r"center must have shape \(2,\)"),
            (dict(center=np.zeros((2, 2, 2))), ValueError, "center must have shape"),
            (dict(angle=np.zeros((2, 1))), ValueError, r"angle must have shape \(\)"),
            (dict(scale=np.ones((1, 2))), ValueError, "scale must have shape"),
            (
                dict(center=np.zeros((3, 2)), angle=np.zeros(2)),
                ValueError,
                "center has 3, angle has 2",
            ),
            (dict(angle="30"), TypeError, "angle must be a number"),
            (
                dict(center=np.zeros(2, np.float32), scale=np.float64(1)),
                TypeError,
                "share one dtype",
            ),
        ],
    )
    def test_errors(self, kwargs, err, match):
        args = dict(center=(1.0, 2.0), angle=30.0)
        args.update(kwargs)
        with pytest.raises(err, match=match):
            stn.rotation_matrix(**args)


# ----------------------------------------------------------------------------
# warp_affine_pixels
# ----------------------------------------------------------------------------


class TestWarpAffinePixels:
    def test_batched_and_shared_matrices(self, rng):
        x = rng.standard_normal((2, 2, 5, 6))
        M = np.eye(2, 3) + 0.1 * rng.standard_normal((2, 2, 3))
        both = stn.warp_affine_pixels(x, M, (4, 7), convention="cv2")
        for n in range(2):
            one = stn.warp_affine_pixels(x[n : n + 1], M[n], (4, 7), convention="cv2")
            np.testing.assert_array_equal(both[n], one[0])
        shared = stn.warp_affine_pixels(x, M[0], (4, 7), convention="cv2")
        np.testing.assert_array_equal(shared[0], both[0])

    def test_float32_input_with_float64_matrix(self):
        img = smooth_image((5, 6))
        matrix, offset = np.array([[0.9, 0.1], [-0.2, 1.1]]), np.array([0.3, -0.4])
        got = stn.warp_affine_pixels(
            img[None, None].astype(np.float32), matrix, convention="scipy", offset=offset
        )
        assert got.dtype == np.float32
        ref = scipy_reference(img, matrix, offset, img.shape)
        np.testing.assert_allclose(got[0, 0], ref, **tol(np.float32))

    @pytest.mark.parametrize(
        "kwargs, err, match",
        [
            (dict(convention="opencv"), ValueError, "convention must be 'cv2' or 'scipy'"),
            (dict(convention="scipy", inverse_map=True), ValueError, "inverse_map is for"),
            (dict(convention="cv2", offset=1.0), ValueError, "offset is for"),
            (
                dict(convention="cv2", matrix=np.zeros((3, 2, 3)) + np.eye(2, 3)),
                ValueError,
                "batch 2",
            ),
            (dict(convention="cv2", input=np.zeros((1, 1, 2, 3, 4))), ValueError, "is 2-D"),
            (dict(convention="cv2", input=np.zeros((3, 4))), ValueError, "input must be 4-D"),
            (
                dict(convention="cv2", input=np.zeros((2, 1, 3, 4), int)),
                TypeError,
                "input must have dtype",
            ),
            (dict(convention="cv2", size=(3,)), ValueError, "size must have 2 entries"),
        ],
    )
    def test_errors(self, kwargs, err, match):
        args = dict(input=np.zeros((2, 1, 3, 4)), matrix=np.eye(2, 3))
        args.update(kwargs)
        with pytest.raises(err, match=match):
            stn.warp_affine_pixels(**args)

    def test_convention_is_required(self):
        with pytest.raises(TypeError, match="convention"):
            stn.warp_affine_pixels(np.zeros((1, 1, 3, 4)), np.eye(2, 3))

    def test_integer_images_and_output_dtype(self, rng):
        """uint8 images (cv2's) are warped in float32, and output_dtype rounds and clips
        the result back, as warp_affine does."""
        x = rng.integers(0, 256, (1, 2, 5, 6)).astype(np.uint8)
        M = np.array([[0.9, 0.2, 1.5], [-0.1, 1.1, -0.5]])
        kw = dict(convention="cv2", padding_mode="constant", fill_value=255)
        want = stn.warp_affine_pixels(x.astype(np.float32), M, **kw)
        got = stn.warp_affine_pixels(x, M, **kw)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        got8 = stn.warp_affine_pixels(x, M, output_dtype=np.uint8, **kw)
        assert got8.dtype == np.uint8
        np.testing.assert_array_equal(got8, np.clip(np.rint(want), 0, 255).astype(np.uint8))

    def test_scalar_matrix_is_a_type_error(self):
        with pytest.raises(TypeError, match="matrix must be an array"):
            stn.warp_affine_pixels(np.zeros((1, 1, 3, 4)), 0.5, convention="cv2")


def test_tiny_but_well_conditioned_matrix_is_invertible():
    """1e-300·I has determinant 1e-600, which underflows to 0; it is perfectly
    conditioned, so it is inverted. An ill-conditioned M with determinant 1 is not."""
    M = np.array([[1e-300, 0, 0], [0, 1e-300, 0]])
    theta = stn.theta_from_cv2(M, (3, 4))
    assert np.all(np.isfinite(theta)) and theta[0, 0] == pytest.approx(1e300)
    np.testing.assert_allclose(stn.theta_to_cv2(theta, (3, 4))[:, :2], M[:, :2], rtol=1e-12)
    with pytest.raises(ValueError, match="singular to working precision"):
        stn.theta_from_cv2(np.array([[1e7, 0, 0], [0, 1e-7, 0]]), (3, 4))


def test_docstring_examples():
    result = doctest.testmod(matrices, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 15 and result.failed == 0


def test_exported():
    for name in matrices.__all__:
        assert name in stn.__all__ and getattr(stn, name) is getattr(matrices, name)
