"""What the GPU test files (tests/test_cuda_*.py) share: ``numba.cuda`` where it is
usable, and the mark that skips a file where it is not. The ``small_launches`` fixture
they use is in conftest.py. (tests/test_cuda_ptx.py compiles without the simulator and
has its own checks.)"""

import pytest

try:
    from numba import cuda

    CUDA_OK = cuda.is_available()
except Exception:  # pragma: no cover
    cuda = None
    CUDA_OK = False


def needs_cuda(path):
    """Skip mark for a GPU test file where ``numba.cuda`` is not usable; the reason says
    how to run ``path`` (the file, relative to the repository root) under the simulator."""
    return pytest.mark.skipif(
        not CUDA_OK,
        reason="no usable numba.cuda: no GPU and NUMBA_ENABLE_CUDASIM is not set "
        f"(run: NUMBA_ENABLE_CUDASIM=1 python -m pytest {path})",
    )
