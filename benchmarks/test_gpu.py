"""GPU benchmarks: forward and backward against torch CUDA, synchronised inside the timing.

Runs only where a real GPU exists (skipped under the simulator or without one):
``python -m pytest benchmarks/test_gpu.py --benchmark-only``.
"""

import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("GPU benchmarks need a real GPU, not the simulator", allow_module_level=True)
cuda = pytest.importorskip("numba.cuda", reason="numba.cuda (stn_numba[cuda]) not installed")
if not cuda.is_available():
    pytest.skip("no CUDA GPU available", allow_module_level=True)

import stn_numba as stn  # noqa: E402

WORKLOADS = {
    "64x3x128x128": (64, 3, 128, 128),
    "1x3x2048x2048": (1, 3, 2048, 2048),
    "2x1x96x96x96": (2, 1, 96, 96, 96),
}


def _theta(n, dims, rng):
    eye = np.eye(dims, dims + 1)
    return (eye[None] + 0.1 * rng.standard_normal((n, dims, dims + 1))).astype(np.float32)


def _inputs(shape):
    rng = np.random.default_rng(0)
    x = rng.random(shape, dtype=np.float32)
    theta = _theta(shape[0], len(shape) - 2, rng)
    go = rng.random(shape, dtype=np.float32)
    return cuda.to_device(x), cuda.to_device(theta), cuda.to_device(go), x, theta, go


def _timed(fn):
    def run():
        fn()
        cuda.synchronize()

    run()
    return run


@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("op", ["warp_affine", "backward_det", "backward_atomic"])
def test_stn_numba_gpu(benchmark, workload, op):
    dx, dth, dgo, *_ = _inputs(WORKLOADS[workload])
    benchmark.group = f"gpu {workload} {op.split('_')[0]}"
    fns = {
        "warp_affine": lambda: stn.warp_affine(dx, dth),
        "backward_det": lambda: stn.warp_affine_backward(dgo, dx, dth, deterministic=True),
        "backward_atomic": lambda: stn.warp_affine_backward(dgo, dx, dth, deterministic=False),
    }
    benchmark(_timed(fns[op]))


@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("op", ["warp_affine", "backward"])
def test_torch_cuda(benchmark, workload, op):
    torch = pytest.importorskip("torch", reason="torch not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    import torch.nn.functional as F

    _, _, _, x, theta, go = _inputs(WORKLOADS[workload])
    xt = torch.from_numpy(x).cuda().requires_grad_(op == "backward")
    tt = torch.from_numpy(theta).cuda().requires_grad_(op == "backward")
    gt = torch.from_numpy(go).cuda()
    benchmark.group = f"gpu {workload} {op}"

    def fwd():
        return F.grid_sample(
            xt, F.affine_grid(tt, xt.shape, align_corners=False), align_corners=False
        )

    def bwd():
        xt.grad = tt.grad = None
        fwd().backward(gt)

    fn = fwd if op == "warp_affine" else bwd

    def run():
        fn()
        torch.cuda.synchronize()

    run()
    benchmark(run)
