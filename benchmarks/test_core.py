"""Core CPU benchmarks (pytest-benchmark). Run: ``python -m pytest benchmarks/ --benchmark-only``.

Not part of the test suite (testpaths = tests). Compare the medians within one run:
``threads`` shows a single large image using every core, forward and backward;
``scipy`` is the single-threaded baseline (map_coordinates, order 1).
The full suite against torch, OpenCV and scipy is ``test_suite.py``.
"""

import numba
import numpy as np
import pytest
from scipy import ndimage

import stn_numba as stn

RNG = np.random.default_rng(0)
X = RNG.random((1, 1, 2048, 2048), dtype=np.float32)
THETA = np.array([[[0.9, -0.3, 0.1], [0.3, 0.9, 0.0]]], np.float32)
GO = RNG.random(X.shape, dtype=np.float32)
GRID = stn.affine_grid(THETA, X.shape)


@pytest.fixture(params=[1, numba.config.NUMBA_NUM_THREADS], ids=lambda t: f"threads={t}")
def threads(request):
    old = numba.get_num_threads()
    numba.set_num_threads(request.param)
    yield request.param
    numba.set_num_threads(old)


OPS = {
    "warp_affine": lambda: stn.warp_affine(X, THETA),
    "warp_affine_backward": lambda: stn.warp_affine_backward(GO, X, THETA),
    "grid_sample": lambda: stn.grid_sample(X, GRID),
    "grid_sample_backward": lambda: stn.grid_sample_backward(GO, X, GRID),
}


@pytest.mark.parametrize("op", list(OPS))
def test_single_2048_image(benchmark, threads, op):
    benchmark.group = f"1x1x2048x2048 {op}"
    fn = OPS[op]
    fn()  # compile outside the timing
    benchmark(fn)


def test_scipy_map_coordinates_2048(benchmark):
    benchmark.group = "1x1x2048x2048 grid_sample"
    coords = np.stack(
        [((GRID[0, ..., 1] + 1) * 2048 - 1) / 2, ((GRID[0, ..., 0] + 1) * 2048 - 1) / 2]
    )
    benchmark(
        lambda: ndimage.map_coordinates(
            X[0, 0], coords, order=1, mode="grid-constant", prefilter=False
        )
    )
