"""The grain size: a call with little work runs on fewer threads (down to one), a large
one on all of them; the thread count is restored afterwards, and results do not depend
on it."""

import numba
import numpy as np
import pytest

import stn_numba as stn
from stn_numba import _cpu

GRAIN = _cpu.GRAIN  # the library's (conftest sets 1 while each test runs)

needs_threads = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="NUMBA_NUM_THREADS=1: nothing to split"
)


@pytest.fixture
def library_grain(monkeypatch):
    """The library's own grain size (conftest sets 1 for every other test)."""
    monkeypatch.setattr(_cpu, "GRAIN", GRAIN)
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    yield GRAIN
    numba.set_num_threads(before)


@needs_threads
@pytest.mark.parametrize("work,expect", [(0, 1), (GRAIN - 1, 1), (2 * GRAIN, 2), (10**9, 2)])
def test_threads_for_work(library_grain, work, expect):
    with _cpu._threads_for(work):
        assert numba.get_num_threads() == expect
    assert numba.get_num_threads() == 2  # restored


@needs_threads
def test_small_call_runs_on_one_thread_large_on_two(library_grain, monkeypatch):
    seen = []
    factory = _cpu.sample_2d_cpu

    def spy(*constants):
        seen.append(numba.get_num_threads())
        return factory(*constants)

    monkeypatch.setattr(_cpu, "sample_2d_cpu", spy)
    theta = np.array([[[0.9, 0.1, 0.0], [-0.1, 1.0, 0.0]]], np.float32)
    small = np.ones((1, 1, 8, 8), np.float32)
    large = np.ones((1, 1, 512, 512), np.float32)  # 262,144 outputs
    a = stn.warp_affine(small, theta)
    b = stn.warp_affine(large, theta)
    assert seen == [1, 2]
    assert numba.get_num_threads() == 2
    # the same values as with every thread (the drivers do not depend on the count)
    monkeypatch.setattr(_cpu, "GRAIN", 1)
    np.testing.assert_array_equal(stn.warp_affine(small, theta), a)
    np.testing.assert_array_equal(stn.warp_affine(large, theta), b)


@needs_threads
def test_thread_count_restored_after_an_error(library_grain):
    with pytest.raises(RuntimeError), _cpu._threads_for(10):
        assert numba.get_num_threads() == 1
        raise RuntimeError("inside")
    assert numba.get_num_threads() == 2
