"""Non-finite and huge grid / θ values on the GPU (CUDA simulator): never a crash, the
GPU equals the CPU (whose rules tests/test_nonfinite.py checks), outputs and gradients
finite wherever the input is, for every mode × padding × align_corners."""

import numpy as np
import pytest
from conftest import MODES_2D, MODES_3D, PADDINGS
from cuda_helpers import needs_cuda

import stn_numba as stn

pytestmark = [needs_cuda("tests/test_cuda_nonfinite.py"), pytest.mark.usefixtures("small_launches")]

BAD = [np.nan, np.inf, -np.inf, 1e30, -1e30]


def _bad_grid(rng, shape):
    g = rng.uniform(-1.2, 1.2, shape)
    flat = g.reshape(-1)
    idx = rng.choice(flat.size, size=2 * len(BAD), replace=False)
    flat[idx] = BAD * 2
    return g


CASES = [
    (dims, mode, pad, ac)
    for dims, modes in ((2, MODES_2D), (3, MODES_3D))
    for mode in modes
    for pad in PADDINGS
    for ac in (True, False)
]


@pytest.mark.parametrize("dims,mode,pad,ac", CASES)
def test_bad_grid_values_gpu_equals_cpu(rng, dims, mode, pad, ac):
    x = rng.standard_normal((2, 2) + (3, 4, 5)[3 - dims :])
    grid = _bad_grid(rng, (2,) + (2, 3, 4)[3 - dims :] + (dims,))
    kw = dict(mode=mode, padding_mode=pad, align_corners=ac)
    out_c = stn.grid_sample(x, grid, **kw)
    out_g = stn.grid_sample(x, grid, device="cuda", **kw)
    assert np.all(np.isfinite(out_g))
    np.testing.assert_allclose(out_g, out_c, rtol=1e-12, atol=1e-12)
    go = rng.standard_normal(out_c.shape)
    cpu = stn.grid_sample_backward(go, x, grid, **kw)
    gpu = stn.grid_sample_backward(go, x, grid, device="cuda", **kw)
    for a, b in zip(gpu, cpu, strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


# The simulator runs the kernels as Python on NumPy scalars, which warn on inf · 0 (a
# compiled kernel computes the same NaN silently): only that warning is allowed here.
@pytest.mark.filterwarnings("ignore:.*invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("bad", BAD)
def test_bad_theta_h_and_flow_gpu_equals_cpu(rng, bad):
    x = rng.standard_normal((2, 1, 4, 5))
    theta = np.tile(np.eye(2, 3), (2, 1, 1))
    theta[0, 0, 1] = bad
    H = np.tile(np.eye(3), (2, 1, 1))
    H[0, 2, 0] = bad
    flow = rng.uniform(-1, 1, (2, 4, 5, 2))
    flow[0, 1, 2, 0] = bad
    go = rng.standard_normal(x.shape)
    for fwd, bwd, arg in (
        (stn.warp_affine, stn.warp_affine_backward, theta),
        (stn.warp_perspective, stn.warp_perspective_backward, H),
        (stn.warp_flow, stn.warp_flow_backward, flow),
    ):
        out_c = fwd(x, arg)
        out_g = fwd(x, arg, device="cuda")
        np.testing.assert_allclose(out_g, out_c, rtol=1e-12, atol=1e-12, equal_nan=True)
        assert np.all(np.isfinite(out_g[1]))  # the sample without a bad value
        for a, b in zip(bwd(go, x, arg, device="cuda"), bwd(go, x, arg), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, equal_nan=True)
