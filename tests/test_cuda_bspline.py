"""GPU twins of the B-spline modes equal the CPU (CUDA simulator, tiny shapes, small
launches): the device prefilter, its transpose and the per-pixel kernels."""

import numpy as np
import pytest
from conftest import tol
from cuda_helpers import needs_cuda

import stn_numba as stn

pytestmark = [needs_cuda("tests/test_cuda_bspline.py"), pytest.mark.usefixtures("small_launches")]


@pytest.mark.parametrize(
    "shape,out,mode,padding_mode",
    [
        ((2, 1, 4, 5), (2, 3), "bspline3", "zeros"),
        ((1, 1, 3, 4, 3), (2, 2, 1), "bspline3", "zeros"),
    ],
)
def test_gpu_equals_cpu(rng, shape, out, mode, padding_mode):
    # float64 and these modes: the CPU drivers that tests/test_bspline_modes.py compiles
    dims = len(shape) - 2
    x = rng.standard_normal(shape)
    grid = rng.uniform(-1.2, 1.2, (shape[0],) + out + (dims,))
    kw = dict(mode=mode, padding_mode=padding_mode, align_corners=False)
    y = stn.grid_sample(x, grid, **kw)
    np.testing.assert_allclose(stn.grid_sample(x, grid, device="cuda", **kw), y, **tol(np.float64))
    go = rng.standard_normal(y.shape)
    gi, gg = stn.grid_sample_backward(go, x, grid, **kw)
    gi_d, gg_d = stn.grid_sample_backward(go, x, grid, device="cuda", **kw)
    np.testing.assert_allclose(gi_d, gi, **tol(np.float64, "grad"))
    np.testing.assert_allclose(gg_d, gg, **tol(np.float64, "grad"))
