"""Shared test helpers: the dtype tolerance table, random data, and the torch switch."""

import importlib.util

import numpy as np
import pytest

#: One tolerance table for every comparison (kornia style): absolute and relative.
#: float32 is computed in float32 (as PyTorch) and compared with float64 references;
#: gradients w.r.t. the grid are scaled by the image size, hence the looser "grad"
#: entries.
TOL = {
    np.float64: {"value": dict(rtol=1e-12, atol=1e-12), "grad": dict(rtol=1e-10, atol=1e-10)},
    np.float32: {"value": dict(rtol=1e-5, atol=1e-5), "grad": dict(rtol=1e-4, atol=2e-4)},
}

DTYPES = [np.float32, np.float64]
MODES_2D = ["bilinear", "nearest", "bicubic"]
MODES_3D = ["bilinear", "nearest"]
PADDINGS = ["zeros", "border", "reflection"]

HAS_TORCH = importlib.util.find_spec("torch") is not None


def tol(dtype, kind="value"):
    return TOL[np.dtype(dtype).type][kind]


@pytest.fixture(autouse=True)
def every_thread(monkeypatch):
    """Every call runs on every thread, however small: the tests' arrays are tiny, and
    with the library's grain size they would all run on one thread (and so never test
    the banded, multi-threaded paths). tests/test_threads.py tests the grain size."""
    from stn_numba import _cpu

    monkeypatch.setattr(_cpu, "GRAIN", 1)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_theta(rng, n, dims, dtype=np.float64, strength=0.3):
    """Random affine θ near the identity: (n, 2, 3) or (n, 3, 4)."""
    eye = np.eye(dims, dims + 1)
    return (eye[None] + strength * rng.standard_normal((n, dims, dims + 1))).astype(dtype)
