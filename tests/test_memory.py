"""Memory: the forward allocates no temporary larger than its output; the backward's
extra memory is what its docstring states. Measured with tracemalloc, which sees every
NumPy allocation (the kernels themselves allocate nothing)."""

import numba
import numpy as np
import pytest
from conftest import peak_extra

import stn_numba as stn

N, C, H, W = 2, 1, 24, 20  # C = 1: a grid would be twice the output


@pytest.fixture
def data(rng):
    x = rng.random((N, C, H, W))
    theta = np.tile(np.eye(2, 3), (N, 1, 1)) + 0.1 * rng.standard_normal((N, 2, 3))
    grid = stn.affine_grid(theta, x.shape)
    return x, theta, grid


def test_forward_temporaries_are_smaller_than_the_output(data):
    x, theta, grid = data
    H3 = np.concatenate([theta, np.tile([[[0.0, 0.0, 1.0]]], (N, 1, 1))], axis=1)
    flow = np.zeros((N, H, W, 2))
    cases = {
        "grid_sample": lambda: stn.grid_sample(x, grid),
        "warp_affine": lambda: stn.warp_affine(x, theta),
        "affine_grid": lambda: stn.affine_grid(theta, x.shape),
        "warp_perspective": lambda: stn.warp_perspective(x, H3),
        "warp_flow": lambda: stn.warp_flow(x, flow),
        "splat": lambda: stn.splat(x, grid),
    }
    for name, fn in cases.items():
        out, extra = peak_extra(fn)
        assert extra <= out.nbytes, f"{name}: {extra} B of temporaries for a {out.nbytes} B output"
    # the sampler and the fused warps allocate (almost) nothing besides the output: the
    # bilinear forward's scratch rows, 80 B per output column per running task (taps
    # and weights 64 B, the row's source points 16 B)
    scratch = 80 * W * numba.get_num_threads()
    for name in ("grid_sample", "warp_affine", "affine_grid", "warp_perspective", "warp_flow"):
        _, extra = peak_extra(cases[name])
        assert extra < 4096 + scratch, f"{name}: {extra} B"


def test_backward_extra_memory_is_bounded(data):
    x, theta, grid = data
    gout = np.ones_like(x)
    # grid_sample_backward / warp_affine_backward: 16 B per output row (input-row spans)
    # and, for θ, 48 B per output row (float64 partial sums) besides the gradients; and
    # per running task one output row's points, 72 B per output column
    rows = N * H
    scratch = 72 * W * numba.get_num_threads()
    for name, fn in {
        "grid_sample_backward": lambda: stn.grid_sample_backward(gout, x, grid),
        "warp_affine_backward": lambda: stn.warp_affine_backward(gout, x, theta),
    }.items():
        _, extra = peak_extra(fn)
        assert extra <= 64 * rows + scratch + 4096, f"{name}: {extra} B for {rows} output rows"
