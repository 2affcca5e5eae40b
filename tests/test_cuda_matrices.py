"""stn_numba.matrices with GPU arrays: computed on the host, device arrays in -> device out.

Runs where ``numba.cuda`` is usable: on a real GPU, or under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda_matrices.py``).
"""

import numpy as np
import pytest
from cuda_helpers import cuda, needs_cuda

import stn_numba as stn

pytestmark = [needs_cuda("tests/test_cuda_matrices.py"), pytest.mark.usefixtures("small_launches")]


def _is_device(a):
    return not isinstance(a, np.ndarray) and hasattr(a, "copy_to_host")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_theta_and_backward(rng, dtype):
    angle = rng.uniform(-1, 1, 2).astype(dtype)
    scale = rng.uniform(0.5, 1.5, (2, 2)).astype(dtype)
    shear = rng.uniform(-0.3, 0.3, 2).astype(dtype)
    t = rng.uniform(-0.3, 0.3, (2, 2)).astype(dtype)
    ref = stn.affine_theta(angle, scale, shear, t)
    got = stn.affine_theta(cuda.to_device(angle), scale, shear, cuda.to_device(t))
    assert _is_device(got) and got.dtype == dtype
    np.testing.assert_array_equal(got.copy_to_host(), ref)
    # NumPy in with device="cuda" stays NumPy
    assert isinstance(stn.affine_theta(angle, device="cuda"), np.ndarray)

    G = rng.standard_normal((2, 2, 3)).astype(dtype)
    ref = stn.affine_theta_backward(G, angle, scale, shear, t)
    got = stn.affine_theta_backward(cuda.to_device(G), angle, scale, shear, t)
    for a, b in zip(got, ref):
        assert _is_device(a)
        np.testing.assert_array_equal(a.copy_to_host(), b)
    got = stn.attention_theta_backward(cuda.to_device(G), angle, t)
    assert _is_device(got.scale) and _is_device(got.translation)


def test_conversions(rng):
    M = np.eye(2, 3) + 0.1 * rng.standard_normal((2, 2, 3))
    ref = stn.theta_from_cv2(M, (5, 6), (4, 7))
    got = stn.theta_from_cv2(cuda.to_device(M), (5, 6), (4, 7))
    assert _is_device(got)
    np.testing.assert_array_equal(got.copy_to_host(), ref)
    m, o = stn.theta_to_scipy(cuda.to_device(ref), (5, 6), (4, 7))
    m_ref, o_ref = stn.theta_to_scipy(ref, (5, 6), (4, 7))
    assert _is_device(m) and _is_device(o)
    np.testing.assert_array_equal(m.copy_to_host(), m_ref)
    np.testing.assert_array_equal(o.copy_to_host(), o_ref)


def test_warp_affine_pixels_on_device(rng):
    x = rng.standard_normal((2, 1, 4, 5))
    M = np.array([[0.9, 0.2, 0.5], [-0.1, 1.1, -0.3]])
    ref = stn.warp_affine_pixels(x, M, (3, 4), convention="cv2")
    got = stn.warp_affine_pixels(cuda.to_device(x), M, (3, 4), convention="cv2")
    assert _is_device(got)
    np.testing.assert_allclose(got.copy_to_host(), ref, rtol=1e-12, atol=1e-12)
    host = stn.warp_affine_pixels(x, cuda.to_device(M), (3, 4), convention="cv2", device="cuda")
    assert isinstance(host, np.ndarray)
    np.testing.assert_allclose(host, ref, rtol=1e-12, atol=1e-12)
