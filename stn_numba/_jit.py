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
specialisation compiles on first use.

Specialisation: a CPU driver (or a CUDA kernel, in :mod:`stn_numba._cuda`) is made by a
factory (:func:`specialise`) whose arguments --
the interpolation mode, the padding, the point source (grid, θ, homography, flow) and
the memory layout -- are the constants of one use. They are free variables of the
jitted function, so Numba prunes every branch on them before typing and a call
compiles only its own path; the array types (dtype, dimensions) are its signature as
usual. ``align_corners`` and which gradients a backward computes stay arguments: they
change a few instructions, and as constants they would double the drivers a test
suite compiles. Each specialisation is cached on disk under a name of its own.
"""

import functools
import threading
import types

import numba
import numpy as np
from numba.extending import overload

from . import _cache  # noqa: F401  (before any decorator: it picks the cache location)

JIT_OPTIONS = {
    "cache": True,
    "fastmath": False,
    "error_model": "numpy",
    "boundscheck": False,
    "nogil": True,
}

#: Scalar and per-pixel functions, compiled once per signature and shared by every
#: specialisation that calls them; LLVM inlines the small ones (the coordinate math)
#: into their callers. They use only ``math`` and scalar/array indexing, so the CUDA
#: kernels can call them too (Numba compiles an ``njit`` function for the device when
#: a CUDA kernel calls it).
kernel = numba.njit(**JIT_OPTIONS)

#: The per-pixel helpers of the CPU row loops that read or write arrays, inlined by
#: Numba itself: LLVM does not inline them (their array arguments make them large),
#: and a call per pixel costs more than the work. Numba re-processes such a function
#: at each call site, so only small ones are marked so.
scalar = numba.njit(inline="always", **JIT_OPTIONS)

#: CPU drivers: the ``prange`` loops over pixels that call the kernels.
driver = numba.njit(parallel=True, **JIT_OPTIONS)

#: CPU drivers of :mod:`stn_numba.ndimage`: serial loops over part ``part`` of
#: ``parts`` of a call's output, which :mod:`stn_numba._pool` runs on threads
#: (``nogil``, in :data:`JIT_OPTIONS`, lets them run side by side).
pooled = numba.njit(**JIT_OPTIONS)


def specialise(jit):
    """Decorate a factory of specialised functions, compiled with ``jit``.

    ``factory(*constants)`` returns a Python function whose free variables (and names
    bound by :func:`bind`) are the constants of one use (ints and bools); it is made
    and jitted once per tuple of constants and kept, so a call compiles (or loads
    from the disk cache) only its own specialisation. Each specialisation gets its
    own name, ``<factory>__<c1>_<c2>...``, so its on-disk cache entry is separate
    from the others': Numba keys a cached function on its qualified name, bytecode
    and closure cells, which do not see the helpers that :func:`bind` selects.
    """

    def decorate(factory):
        made = {}
        lock = threading.Lock()

        @functools.wraps(factory)
        def get(*constants):
            key = tuple(bool(c) if isinstance(c, (bool, np.bool_)) else int(c) for c in constants)
            fn = made.get(key)
            if fn is None:
                with lock:
                    fn = made.get(key)
                    if fn is None:
                        py = factory(*key)
                        py.__qualname__ = (
                            f"{factory.__name__}__{'_'.join(str(int(c)) for c in key)}"
                        )
                        fn = made[key] = jit(py)
            return fn

        get.specialisations = made
        return get

    return decorate


def bind(fn, **specialised):
    """``fn`` with the globals named in ``specialised`` replaced (for its compilation only).

    How a specialised driver calls specialised helpers: its body calls the helper by the
    module-level factory's name, and the factory of the driver binds that name to the
    helper's specialisation. Not a closure cell on purpose (a Numba workaround, Numba
    0.68.1): Numba's cache key pickles a closure's cells, and a dispatcher pickles
    differently in every process. The driver's own constants (its cells) determine the
    helpers, so the key stays exact.
    """
    glb = dict(fn.__globals__)
    glb.update(specialised)
    new = types.FunctionType(fn.__code__, glb, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    new.__module__ = fn.__module__
    return new


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
