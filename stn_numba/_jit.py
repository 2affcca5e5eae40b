"""Every JIT option of the package, in one place.

* ``cache=True``: compiled machine code is kept on disk, so a new process does not
  pay for compilation again.
* ``fastmath=False``: gradients and the PyTorch parity need IEEE arithmetic
  (no reassociation, no flush-to-zero, NaN checks that work).
* ``error_model="numpy"``: a division by zero yields inf/NaN instead of raising
  from inside a kernel; the coordinate code guards non-finite values itself.
* ``boundscheck=False``: every index is bounds-checked by the math in
  :mod:`stn_numba._coords` before it is used.

Nothing is compiled at import time: the decorators are lazy, and each
specialisation (float32/float64, 2-D/3-D) compiles on first use.
"""

import numba
from numba.extending import overload

from . import _cache  # noqa: F401  (before any decorator: it picks the cache location)

JIT_OPTIONS = {
    "cache": True,
    "fastmath": False,
    "error_model": "numpy",
    "boundscheck": False,
    "nogil": True,
}

#: Scalar and per-pixel functions. They use only ``math`` and scalar/array
#: indexing, so the CUDA kernels can call them too (Numba compiles an ``njit``
#: function for the device when a CUDA kernel calls it).
kernel = numba.njit(**JIT_OPTIONS)

#: Scalar coordinate math (no array arguments), inlined into its callers by Numba
#: itself: LLVM declines to inline these into the large ``prange`` bodies, and a call
#: per pixel costs more than the math (profiled: ~2x on the bilinear forward).
scalar = numba.njit(inline="always", **JIT_OPTIONS)

#: CPU drivers: the ``prange`` loops over pixels that call the kernels.
driver = numba.njit(parallel=True, **JIT_OPTIONS)


def accumulate(arr, index, value, scale):
    """``arr[index] += value``: the one write of every gradient scatter.

    Compiled per target (the overloads below): plain ``+=`` on the CPU, where
    each task owns the rows it writes; an atomic add on the GPU, in float, or —
    into an int64 array — in fixed point, ``round(value * scale)``, whose sum does
    not depend on the order of the additions (the deterministic GPU backward).
    This Python body is what the CUDA simulator runs (see ``_cuda``).
    """
    arr[index] += value


@overload(accumulate, target="cpu", jit_options=JIT_OPTIONS)
def _accumulate_cpu(arr, index, value, scale):
    def impl(arr, index, value, scale):
        arr[index] += value

    return impl
