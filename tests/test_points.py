"""stn_numba.matrices: affine θ and homographies from point correspondences, and their
gradients with respect to the points.

References: cv2.getAffineTransform, cv2.getPerspectiveTransform, cv2.findHomography(…, 0),
cv2.warpAffine and cv2.warpPerspective when OpenCV is installed; without it, a NumPy
least-squares fit, a NumPy DLT written out here, the points themselves, and float64
central differences for the gradients. Warps use float32 bilinear zeros padding only (one
compiled driver each).
"""

import numpy as np
import pytest
from conftest import tol

import stn_numba as stn

# ----------------------------------------------------------------------------
# helpers (independent of the module under test)
# ----------------------------------------------------------------------------


def pixel_to_norm(size, align_corners=False):
    """3×3 homogeneous map pixel (x, y, 1) → normalised (x, y, 1) for an (H, W) image."""
    h, w = size
    if align_corners:
        return np.array([[2 / (w - 1), 0, -1], [0, 2 / (h - 1), -1], [0, 0, 1.0]])
    return np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1.0]])


def cv2_matrix(H_norm, in_size, out_size, align_corners=False):
    """OpenCV's src → dst pixel matrix of an output → input normalised homography."""
    back = np.linalg.inv(pixel_to_norm(in_size, align_corners)) @ H_norm
    A = back @ pixel_to_norm(out_size, align_corners)  # output pixel → input pixel
    M = np.linalg.inv(A)
    return M / M[2, 2]


def apply(H, pts):
    """Homogeneous 3×3 (or 2×3) map applied to (K, 2) points."""
    r = np.c_[pts, np.ones(len(pts))] @ np.asarray(H).T
    return r[:, :2] / r[:, 2:] if r.shape[1] == 3 else r


def rms_error(M, src, dst):
    """Root-mean-square distance between M·src and dst (pixels)."""
    return np.sqrt(np.mean(np.sum((apply(M, src) - dst) ** 2, axis=1)))


def dlt_reference(p, q):
    """OpenCV's DLT (findHomography's first step): per-axis normalisation, SVD null vector."""

    def norm(a):
        c = a.mean(0)
        s = 1 / np.abs(a - c).mean(0)
        return (a - c) * s, np.array([[s[0], 0, -s[0] * c[0]], [0, s[1], -s[1] * c[1]], [0, 0, 1]])

    (P, Tp), (Q, Tq) = norm(p), norm(q)
    rows = []
    for (x, y), (u, v) in zip(P, Q):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    h = np.linalg.svd(np.array(rows + [[0] * 9] * max(0, 9 - len(rows))))[2][-1]
    H = np.linalg.inv(Tq) @ h.reshape(3, 3) @ Tp
    return H / H[2, 2]


def central_diff(f, x, eps=1e-6):
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def random_affine_pairs(rng, n, k, size, noise=0.0):
    """src spread over an (H, W) image, dst = a random affine image of it (+ noise), pixels."""
    h, w = size
    src = rng.uniform([4, 4], [w - 4, h - 4], (n, k, 2))
    A = np.eye(2) + 0.2 * rng.standard_normal((n, 2, 2))
    t = rng.uniform(-3, 3, (n, 1, 2))
    dst = src @ np.swapaxes(A, 1, 2) + t
    return src, dst + noise * rng.standard_normal(dst.shape)


def random_homography_pairs(rng, n, k, size, noise=0.0):
    """src spread over an (H, W) image, dst its image under a random mild homography."""
    h, w = size
    src = rng.uniform([4, 4], [w - 4, h - 4], (n, k, 2))
    dst = np.empty_like(src)
    for i in range(n):
        M = np.eye(3) + np.diag([0.1, 0.1, 0.0]) @ rng.standard_normal((3, 3))
        M[2, :2] = rng.uniform(-2e-3, 2e-3, 2)
        M[:2, 2] = rng.uniform(-3, 3, 2)
        dst[i] = apply(M, src[i])
    return src, dst + noise * rng.standard_normal(dst.shape)


def smooth_image(shape):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (np.sin(xx / 3.1) * np.cos(yy / 4.3) + 0.5 * np.sin((xx + yy) / 5.7)).astype(np.float32)


def max_step(img):
    """Largest difference between horizontally and vertically adjacent pixels."""
    return np.abs(np.diff(img, axis=1)).max(), np.abs(np.diff(img, axis=0)).max()


SIZE, OUT = (24, 32), (20, 28)  # (H, W) of the input and the output images
GRID = np.stack(np.meshgrid(np.arange(0, 32, 3.0), np.arange(0, 24, 3.0)), -1).reshape(-1, 2)

# ----------------------------------------------------------------------------
# affine_from_points
# ----------------------------------------------------------------------------


class TestAffineFromPoints:
    def test_equals_get_affine_transform(self, rng):
        cv2 = pytest.importorskip("cv2", reason="OpenCV not installed: cv2 parity skipped")
        src, dst = random_affine_pairs(rng, 6, 3, SIZE)
        src, dst = src.astype(np.float32), dst.astype(np.float32)  # cv2's Point2f
        for ac in (False, True):
            theta = stn.affine_from_points(
                src.astype(np.float64), dst.astype(np.float64), SIZE, OUT, align_corners=ac
            )
            assert theta.shape == (6, 2, 3) and theta.dtype == np.float64
            got = stn.theta_to_cv2(theta, SIZE, OUT, align_corners=ac)
            for n in range(6):
                ref = cv2.getAffineTransform(src[n], dst[n])
                np.testing.assert_allclose(got[n], ref, rtol=1e-10, atol=1e-10)

    def test_maps_its_points_exactly(self, rng):
        src = rng.uniform(-1, 1, (4, 3, 2))
        dst = rng.uniform(-1, 1, (4, 3, 2))
        theta = stn.affine_from_points(src, dst)
        for n in range(4):
            np.testing.assert_allclose(apply(theta[n], dst[n]), src[n], atol=1e-12)
        one = stn.affine_from_points(src[1], dst[1])  # unbatched in, unbatched out
        assert one.shape == (2, 3)
        np.testing.assert_allclose(one, theta[1], rtol=1e-15, atol=1e-15)

    @pytest.mark.parametrize("k", [8, 13, 20])
    def test_least_squares(self, rng, k):
        """K > 3: the inverse of the least-squares map src → dst (residual at dst)."""
        src, dst = random_affine_pairs(rng, 3, k, SIZE, noise=0.5)
        theta = stn.affine_from_points(src, dst, SIZE, OUT)
        for n in range(3):
            X = np.c_[src[n], np.ones(k)]
            F = np.linalg.lstsq(X, dst[n], rcond=None)[0].T  # (2, 3): src → dst
            ref = np.linalg.inv(np.vstack([F, [0, 0, 1]]))
            want = pixel_to_norm(SIZE) @ ref @ np.linalg.inv(pixel_to_norm(OUT))
            np.testing.assert_allclose(theta[n], want[:2], rtol=1e-11, atol=1e-12)
        # the same fit in normalised units: least squares is equivariant
        ns = apply(pixel_to_norm(SIZE), src.reshape(-1, 2)).reshape(src.shape)
        nd = apply(pixel_to_norm(OUT), dst.reshape(-1, 2)).reshape(dst.shape)
        np.testing.assert_allclose(stn.affine_from_points(ns, nd), theta, rtol=1e-11, atol=1e-12)

    def test_warp_moves_src_to_dst_as_cv2_warp_affine(self, rng):
        """warp_affine with the θ equals cv2.warpAffine with getAffineTransform's M."""
        cv2 = pytest.importorskip("cv2", reason="OpenCV not installed: cv2 parity skipped")
        img = smooth_image(SIZE)
        src = np.array([[5.0, 4.0], [27.0, 6.0], [8.0, 20.0]], np.float32)
        dst = np.array([[3.5, 5.0], [25.0, 2.5], [9.0, 17.5]], np.float32)
        ref = cv2.warpAffine(img, cv2.getAffineTransform(src, dst), OUT[::-1])
        theta = stn.affine_from_points(src, dst, SIZE, OUT)
        assert theta.dtype == np.float32
        got = stn.warp_affine(img[None, None], theta[None], OUT)[0, 0]
        lx, ly = max_step(np.pad(img, 1))  # zeros outside
        bound = (lx + ly) * (1 / 64 + 1 / 1024) + 1e-5
        assert np.abs(got - ref).max() <= bound

    @pytest.mark.parametrize("k", [3, 7])
    @pytest.mark.parametrize("units", ["normalised", "pixels"])
    def test_gradients_finite_differences(self, rng, k, units):
        sizes = (SIZE, OUT) if units == "pixels" else (None, None)
        if units == "pixels":
            src, dst = random_affine_pairs(rng, 2, k, SIZE, noise=0.3)
        else:
            src = rng.uniform(-0.9, 0.9, (2, k, 2))
            dst = src + 0.2 * rng.standard_normal((2, k, 2))
        G = rng.standard_normal((2, 2, 3))
        grads = stn.affine_from_points_backward(G, src, dst, *sizes)
        assert isinstance(grads, stn.PointsGrads)

        def loss(s, d):
            return np.sum(G * stn.affine_from_points(s, d, *sizes))

        for got, ref in [
            (grads.src, central_diff(lambda s: loss(s, dst), src)),
            (grads.dst, central_diff(lambda d: loss(src, d), dst)),
        ]:
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())

    def test_shared_src_gets_summed_gradient(self, rng):
        src = rng.uniform(-0.9, 0.9, (4, 2))
        dst = src + 0.1 * rng.standard_normal((3, 4, 2))
        theta = stn.affine_from_points(src, dst)
        assert theta.shape == (3, 2, 3)
        G = rng.standard_normal((3, 2, 3))
        grads = stn.affine_from_points_backward(G, src, dst)
        assert grads.src.shape == (4, 2) and grads.dst.shape == (3, 4, 2)
        ref = central_diff(lambda s: np.sum(G * stn.affine_from_points(s, dst)), src)
        np.testing.assert_allclose(grads.src, ref, rtol=1e-6, atol=1e-8)

    def test_chained_through_warp_affine(self, rng):
        """∂L/∂dst of L = Σ w ⊙ warp_affine(x, affine_from_points(src, dst)) == finite
        differences (float64: the one warp_affine float64 driver)."""
        x = rng.standard_normal((1, 1, 6, 7))
        w = rng.standard_normal((1, 1, 5, 6))
        src = np.array([[[-0.6, -0.5], [0.7, -0.4], [0.1, 0.6], [-0.2, 0.1]]])
        dst = src + 0.05 * rng.standard_normal(src.shape)

        def loss(d):
            return np.sum(w * stn.warp_affine(x, stn.affine_from_points(src, d), (5, 6)))

        theta = stn.affine_from_points(src, dst)
        _, g = stn.warp_affine_backward(w, x, theta, (5, 6), input_grad=False)
        got = stn.affine_from_points_backward(g, src, dst).dst
        np.testing.assert_allclose(got, central_diff(loss, dst), rtol=1e-5, atol=1e-7)

    def test_float32(self, rng):
        src, dst = random_affine_pairs(rng, 2, 5, SIZE)
        t32 = stn.affine_from_points(src.astype(np.float32), dst.astype(np.float32), SIZE)
        assert t32.dtype == np.float32
        t64 = stn.affine_from_points(
            src.astype(np.float32).astype(np.float64),
            dst.astype(np.float32).astype(np.float64),
            SIZE,
        )
        np.testing.assert_array_equal(t32, t64.astype(np.float32))  # rounded once
        g = stn.affine_from_points_backward(
            np.ones((2, 2, 3), np.float32), src.astype(np.float32), dst.astype(np.float32), SIZE
        )
        assert g.src.dtype == g.dst.dtype == np.float32
        assert stn.affine_from_points([[0, 0], [1, 0], [0, 1]], [[0, 0], [1, 0], [0, 1]]).dtype == (
            np.float64
        )


# ----------------------------------------------------------------------------
# perspective_from_points
# ----------------------------------------------------------------------------


class TestPerspectiveFromPoints:
    def test_equals_get_perspective_transform(self, rng):
        cv2 = pytest.importorskip("cv2", reason="OpenCV not installed: cv2 parity skipped")
        src, dst = random_homography_pairs(rng, 6, 4, SIZE)
        src, dst = src.astype(np.float32), dst.astype(np.float32)
        for ac in (False, True):
            H = stn.perspective_from_points(
                src.astype(np.float64), dst.astype(np.float64), SIZE, OUT, align_corners=ac
            )
            assert H.shape == (6, 3, 3)
            np.testing.assert_array_equal(H[:, 2, 2], 1.0)
            for n in range(6):
                ref = cv2.getPerspectiveTransform(src[n], dst[n])
                got = cv2_matrix(H[n], SIZE, OUT, ac)
                # OpenCV solves the 8×8 system in raw pixels, to ~1e-8 px at the points
                # (ours to ~1e-14): compare the maps over the image, to its precision
                np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-7)
                np.testing.assert_allclose(apply(got, GRID), apply(ref, GRID), atol=1e-4)
                s, d = src[n].astype(np.float64), dst[n].astype(np.float64)
                assert np.abs(apply(got, s) - d).max() < 1e-11

    def test_maps_its_points_exactly(self, rng):
        src, dst = random_homography_pairs(rng, 3, 4, SIZE)
        H = stn.perspective_from_points(src, dst, SIZE)  # output_size = input_size
        for n in range(3):
            back = apply(H[n], apply(pixel_to_norm(SIZE), dst[n]))
            np.testing.assert_allclose(back, apply(pixel_to_norm(SIZE), src[n]), atol=1e-12)
        # normalised points and an unbatched call give the same
        one = stn.perspective_from_points(
            apply(pixel_to_norm(SIZE), src[0]), apply(pixel_to_norm(SIZE), dst[0])
        )
        assert one.shape == (3, 3)
        np.testing.assert_allclose(one, H[0], rtol=1e-12, atol=1e-12)

    @pytest.mark.parametrize("k", [8, 14, 20])
    def test_least_squares_equals_find_homography(self, rng, k):
        """K > 4: OpenCV's DLT exactly; findHomography(…, 0) itself to a fraction of the
        noise (it refines the geometric error after the DLT)."""
        cv2 = pytest.importorskip("cv2", reason="OpenCV not installed: cv2 parity skipped")
        src, dst = random_homography_pairs(rng, 3, k, SIZE)
        noisy = dst + 0.25 * rng.standard_normal(dst.shape)
        src, dst, noisy = (a.astype(np.float32).astype(np.float64) for a in (src, dst, noisy))
        exact = stn.perspective_from_points(src, dst, SIZE, OUT)
        fit = stn.perspective_from_points(src, noisy, SIZE, OUT)
        for n in range(3):
            ref = cv2.findHomography(src[n], dst[n], 0)[0]
            got = cv2_matrix(exact[n], SIZE, OUT)
            np.testing.assert_allclose(apply(got, GRID), apply(ref, GRID), atol=1e-5)
            M = cv2_matrix(fit[n], SIZE, OUT)
            np.testing.assert_allclose(M, dlt_reference(src[n], noisy[n]), rtol=1e-9, atol=1e-11)
            ref = cv2.findHomography(src[n], noisy[n], 0)[0]
            # findHomography minimises the geometric error that the DLT only approximates:
            # its error is never above ours, ours only a few % above it, and the two maps
            # agree at the points to within the noise (σ = 0.25 px)
            assert np.abs(apply(M, src[n]) - apply(ref, src[n])).max() < 0.25
            ours, theirs = rms_error(M, src[n], noisy[n]), rms_error(ref, src[n], noisy[n])
            assert theirs <= ours * (1 + 1e-6) and ours < 1.05 * theirs

    def test_warp_equals_cv2_warp_perspective(self):
        """warp_perspective with H equals cv2.warpPerspective with getPerspectiveTransform's
        matrix, to OpenCV's 1/32-pixel precision, on the pixels whose taps are inside."""
        cv2 = pytest.importorskip("cv2", reason="OpenCV not installed: cv2 parity skipped")
        img = smooth_image(SIZE)
        src = np.array([[3.0, 2.0], [28.0, 4.0], [30.0, 21.0], [1.5, 19.0]], np.float32)
        dst = np.array([[2.0, 1.0], [26.0, 2.5], [24.0, 18.0], [3.0, 16.5]], np.float32)
        M = cv2.getPerspectiveTransform(src, dst)
        ref = cv2.warpPerspective(img, M, OUT[::-1])
        H = stn.perspective_from_points(src, dst, SIZE, OUT)
        assert H.dtype == np.float32
        got = stn.warp_perspective(img[None, None], H[None], OUT)[0, 0]
        # interior: the source point of the output pixel is >= 1 px inside the input
        yy, xx = np.mgrid[: OUT[0], : OUT[1]]
        sp = apply(np.linalg.inv(M), np.c_[xx.ravel(), yy.ravel()]).reshape(*OUT, 2)
        inside = (sp[..., 0] >= 1) & (sp[..., 0] <= SIZE[1] - 2)
        inside &= (sp[..., 1] >= 1) & (sp[..., 1] <= SIZE[0] - 2)
        assert inside.mean() > 0.5
        lx, ly = max_step(img)
        bound = (lx + ly) / 32 + 1e-5  # the point rounded to 1/32 px; float32 arithmetic
        assert np.abs(got - ref)[inside].max() <= bound

    @pytest.mark.parametrize("k", [4, 9])
    @pytest.mark.parametrize("units", ["normalised", "pixels"])
    def test_gradients_finite_differences(self, rng, k, units):
        src, dst = random_homography_pairs(rng, 2, k, SIZE, noise=0.2)
        sizes = (SIZE, OUT)
        if units == "normalised":
            to_n = lambda a: apply(pixel_to_norm(SIZE), a.reshape(-1, 2)).reshape(a.shape)  # noqa: E731
            src, dst, sizes = to_n(src), to_n(dst), (None, None)
        G = rng.standard_normal((2, 3, 3))
        grads = stn.perspective_from_points_backward(G, src, dst, *sizes)

        def loss(s, d):
            return np.sum(G * stn.perspective_from_points(s, d, *sizes))

        for got, ref in [
            (grads.src, central_diff(lambda s: loss(s, dst), src)),
            (grads.dst, central_diff(lambda d: loss(src, d), dst)),
        ]:
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())

    def test_chained_through_warp_perspective(self, rng):
        x = rng.standard_normal((1, 1, 6, 7))
        w = rng.standard_normal((1, 1, 5, 6))
        src = np.array([[[-0.7, -0.6], [0.8, -0.5], [0.6, 0.7], [-0.5, 0.6], [0.1, 0.0]]])
        dst = src + 0.05 * rng.standard_normal(src.shape)

        def loss(d):
            return np.sum(w * stn.warp_perspective(x, stn.perspective_from_points(src, d), (5, 6)))

        H = stn.perspective_from_points(src, dst)
        _, g = stn.warp_perspective_backward(w, x, H, (5, 6), input_grad=False)
        got = stn.perspective_from_points_backward(g, src, dst).dst
        np.testing.assert_allclose(got, central_diff(loss, dst), rtol=1e-5, atol=1e-7)

    def test_float32(self, rng):
        src, dst = random_homography_pairs(rng, 2, 6, SIZE)
        s32, d32 = src.astype(np.float32), dst.astype(np.float32)
        H32 = stn.perspective_from_points(s32, d32, SIZE)
        assert H32.dtype == np.float32
        H64 = stn.perspective_from_points(s32.astype(np.float64), d32.astype(np.float64), SIZE)
        np.testing.assert_array_equal(H32, H64.astype(np.float32))
        g = stn.perspective_from_points_backward(np.ones((2, 3, 3), np.float32), s32, d32, SIZE)
        assert g.src.dtype == g.dst.dtype == np.float32
        np.testing.assert_allclose(
            g.dst,
            stn.perspective_from_points_backward(np.ones((2, 3, 3)), s32, d32, SIZE).dst,
            **tol(np.float32),
        )


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------

SQUARE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
TRI = SQUARE[:3]
LINE4 = [[0, 0], [1, 0], [2, 0], [3, 0], [0, 1.0]]  # four of five collinear


@pytest.mark.parametrize(
    "fn, src, dst, kwargs, err, match",
    [
        (
            "affine",
            [[0, 0], [1, 1], [2, 2.0]],
            TRI,
            {},
            ValueError,
            "src is degenerate: .*collinear",
        ),
        ("affine", TRI, [[0, 0], [1, 1], [1, 1.0]], {}, ValueError, "dst is degenerate"),
        ("affine", TRI[:2], TRI[:2], {}, ValueError, r"at least 3 points .*K = 2"),
        ("affine", TRI, SQUARE, {}, ValueError, "the same number of points K"),
        (
            "affine",
            [[0, 0], [1, np.nan], [0, 1.0]],
            TRI,
            {},
            ValueError,
            r"src must be finite; got nan at index \(1, 1\)",
        ),
        (
            "affine",
            TRI,
            [[0, 0], [1, 0], [np.inf, 1.0]],
            {},
            ValueError,
            r"dst must be finite; got inf at index \(2, 0\)",
        ),
        (
            "affine",
            [TRI, [[0, 0], [2, 0], [4, 0.0]]],
            [TRI, TRI],
            {},
            ValueError,
            r"src \(sample 1\) is degenerate",
        ),
        ("affine", [TRI, TRI], [TRI, TRI, TRI], {}, ValueError, "src has 2, dst has 3"),
        (
            "affine",
            np.zeros((3, 3)),
            TRI,
            {},
            ValueError,
            r"src must have shape \(K, 2\) or \(N, K, 2\)",
        ),
        (
            "affine",
            np.float32(TRI),
            TRI,
            {},
            TypeError,
            "share one float dtype; src is float32, dst is float64",
        ),
        ("affine", "abc", TRI, {}, TypeError, "src must be a number or an array"),
        (
            "affine",
            TRI,
            TRI,
            dict(output_size=(3, 4)),
            ValueError,
            "output_size is used only with input_size",
        ),
        (
            "affine",
            TRI,
            TRI,
            dict(align_corners=True),
            ValueError,
            "align_corners is used only with input_size",
        ),
        ("affine", TRI, TRI, dict(input_size=(3,)), ValueError, r"input_size must be \(H, W\)"),
        (
            "affine",
            TRI,
            TRI,
            dict(input_size=(1, 4), align_corners=True),
            ValueError,
            "axis of size 1",
        ),
        ("perspective", TRI, TRI, {}, ValueError, r"at least 4 points .*K = 3"),
        (
            "perspective",
            [[0, 0], [1, 0], [2, 0], [0, 1.0]],
            SQUARE,
            {},
            ValueError,
            r"src is degenerate: its points \(0, 1, 2\) are collinear",
        ),
        (
            "perspective",
            SQUARE,
            [[0, 0], [1, 0], [1, 1], [1, 1.0]],
            {},
            ValueError,
            r"dst is degenerate: its points \(0, 2, 3\)",
        ),
        (
            "perspective",
            [SQUARE, SQUARE],
            [SQUARE, [[0, 0], [1, 1], [2, 2], [3, 3.0]]],
            {},
            ValueError,
            r"dst \(sample 1\) is degenerate: its points are collinear",
        ),
        (
            "perspective",
            LINE4,
            LINE4,
            {},
            ValueError,
            "src and dst do not determine a homography: .* rank < 8",
        ),
        (
            "perspective",
            SQUARE,
            [[0, 0], [1, 0], [1, np.nan], [0, 1]],
            {},
            ValueError,
            r"dst must be finite; got nan at index \(2, 1\)",
        ),
    ],
)
def test_bad_points(fn, src, dst, kwargs, err, match):
    forward = getattr(stn, f"{fn}_from_points")
    backward = getattr(stn, f"{fn}_from_points_backward")
    with pytest.raises(err, match=match):
        forward(np.asarray(src) if isinstance(src, list) else src, dst, **kwargs)
    shape = (2, 3) if fn == "affine" else (3, 3)
    with pytest.raises(err, match=match):
        backward(np.zeros(shape), src, dst, **kwargs)


def test_backward_grad_shape_must_match_the_forward():
    with pytest.raises(ValueError, match=r"grad_theta must have shape \(2, 3\)"):
        stn.affine_from_points_backward(np.zeros((1, 2, 3)), TRI, TRI)
    with pytest.raises(ValueError, match=r"grad_H must have shape \(2, 3, 3\)"):
        stn.perspective_from_points_backward(np.zeros((3, 3)), [SQUARE, SQUARE], SQUARE)


def test_exported():
    for name in ["PointsGrads", "affine_from_points", "affine_from_points_backward"] + [
        "perspective_from_points",
        "perspective_from_points_backward",
    ]:
        assert name in stn.__all__ and name in stn.matrices.__all__
