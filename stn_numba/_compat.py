"""Workarounds for Numba and numba-cuda, in one place.

Written against Numba 0.68.1, llvmlite 0.50.0 and numba-cuda 0.30.4. Each function or
constant below says which limitation it works around and which versions have it;
recheck them when upgrading (each is small enough to delete once the limitation is
gone). Importing this module imports neither ``numba.cuda`` nor the simulator.

Some workarounds stay where they are, because they are the body of the function they
work around, or because their module is itself the one place for them:

========================================  ==================================================
where                                     why it stays there
========================================  ==================================================
``_cache.py`` (the whole module)          the one place for Numba's caching internals: the
                                          cache directory per hash of the package's sources
                                          (Numba checks only the loaded function's file), a
                                          cache-less fallback when no location is writable
                                          (Numba 0.68.1 fails at decoration), and corrupt
                                          cache files recompiled (Numba lets their pickle
                                          error escape from every call)
``_jit.py:bind``                          the core of the specialisation factory: Numba's
                                          cache key pickles closure cells, and a dispatcher
                                          pickles differently in every process, so
                                          specialised helpers are bound as globals
``_jit.py:accumulate``,                   their Python bodies are what the CUDA simulator
``_coords.py:cast``                       runs (it cannot call the compiled overloads)
``_coords.py:floor``                      numba-cuda 0.30.4 has no ``np.floor`` in device
                                          code: ``math.floor`` cast back to the float type
``_cuda.py:_accumulate_sim``              the simulator's twin of the CUDA overload of
                                          ``accumulate``, kept beside that overload
``_threads.py:select``                    GNU OpenMP kills a child forked after a parallel
                                          call: the ``forksafe`` policy is selected at
                                          import unless the user chose a layer
========================================  ==================================================
"""

import ctypes
import functools
import os
import site
import sys
import threading
import types
from contextlib import nullcontext

# ----------------------------------------------------------------------------
# The CUDA simulator's device arrays (numba-cuda 0.30.4)
# ----------------------------------------------------------------------------


def is_fake_cuda_array(x):
    """True for the CUDA simulator's device array, ``FakeCUDAArray``.

    It has no ``__cuda_array_interface__`` (numba-cuda 0.30.4), so it is recognised by
    its class name: the simulator is never imported for the check. It wraps a NumPy
    array, and transposes as NumPy does.
    """
    return type(x).__name__ == "FakeCUDAArray"


def device_transpose(x, axes):
    """The view of the Numba device array ``x`` with its axes permuted (zero copy).

    ``DeviceNDArray.transpose()`` raises for ndim != 2 and copies for 2-D (numba-cuda
    0.30.4), so the strided view is built by hand on the same ``gpu_data``.
    """
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return DeviceNDArray(
        tuple(x.shape[a] for a in axes),
        tuple(x.strides[a] for a in axes),
        x.dtype,
        stream=x.stream,
        gpu_data=x.gpu_data,
    )


def python_twins(*modules, replace=None):
    """A namespace of pure-Python copies of every ``njit`` function in ``modules``,
    calling one another.

    The CUDA simulator (numba-cuda 0.30.4) runs kernels as Python and cannot pass its
    arrays to compiled ``njit`` code, so its kernels call these twins (same source).
    ``replace`` maps names to Python functions used instead of the module's ones (the
    simulator's twins of overloaded helpers).
    """
    from numba.core.dispatcher import Dispatcher

    replace = dict(replace or {})
    twins = {}
    globs = {}
    for mod in modules:
        g = dict(vars(mod))
        globs[mod.__name__] = g
        for name, obj in vars(mod).items():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == mod.__name__:
                f = obj.py_func
                twins[name] = types.FunctionType(f.__code__, g, f.__name__, f.__defaults__)
    for name, fn in replace.items():
        twins[name] = fn
    for g in globs.values():
        for name, obj in list(g.items()):
            if isinstance(obj, Dispatcher) and name in twins:
                g[name] = twins[name]
            elif name in replace:
                g[name] = replace[name]
    return types.SimpleNamespace(**twins)


# ----------------------------------------------------------------------------
# Read-only arrays (Numba 0.68.1)
# ----------------------------------------------------------------------------


def readable_alias(a):
    """A writeable-flagged alias of the read-only C-contiguous array ``a`` (no copy).

    Numba (0.68.1) types read-only arrays apart (``readonly array``) and would compile
    a second specialisation of every kernel for them (seconds of compilation per
    driver). The kernels only ever read their inputs, so they are handed this alias of
    the same memory instead; it holds a reference to ``a``, so the memory outlives it.
    Nothing is ever written through it (outputs and accumulators are separate arrays,
    and ``out=`` must not overlap an input).
    """
    if a.size == 0 or a.ndim == 0:
        return a.copy()
    import numpy as np

    buf = (ctypes.c_char * a.nbytes).from_address(a.ctypes.data)
    buf.owner = a  # keeps the memory alive as long as the alias
    return np.frombuffer(buf, dtype=a.dtype).reshape(a.shape)


# ----------------------------------------------------------------------------
# The workqueue threading layer (Numba 0.68.1)
# ----------------------------------------------------------------------------


def workqueue_may_run():
    """True when Numba's ``workqueue`` threading layer runs, or may (no parallel code
    has run yet, and the first launch picks the layer).

    ``workqueue`` (the package's fork-safe default without TBB, and Numba's fallback)
    aborts the whole process when two Python threads launch parallel code at once
    (Numba 0.68.1), so launches are serialised while this is true.
    """
    import numba

    try:
        return numba.threading_layer() == "workqueue"
    except ValueError:  # no parallel kernel has run yet
        return True


#: Serialises the CPU drivers' parallel launches under ``workqueue``
#: (:func:`launch_guard`); with ``omp`` or ``tbb`` calls from several threads run
#: concurrently.
LAUNCH_LOCK = threading.Lock()

#: Serialises the blocks that ``stn_numba.dask`` runs in one process under
#: ``workqueue`` (a block sets Numba's thread count, then launches). A lock of its own:
#: a block's launches take :data:`LAUNCH_LOCK` inside it, which is not reentrant.
DASK_BLOCK_LOCK = threading.Lock()


def launch_guard():
    """:data:`LAUNCH_LOCK` while :func:`workqueue_may_run`, else a no-op context."""
    return LAUNCH_LOCK if workqueue_may_run() else nullcontext()


def serialised(run):
    """Decorate a host entry point so that it launches under :func:`launch_guard`."""

    @functools.wraps(run)
    def guarded(*args, **kwargs):
        with launch_guard():
            return run(*args, **kwargs)

    return guarded


# ----------------------------------------------------------------------------
# A pip-installed TBB (Numba 0.68.1)
# ----------------------------------------------------------------------------

_TBB_NAMES = {"linux": "libtbb.so.12", "darwin": "libtbb.12.dylib"}


def preload_pip_tbb():
    """Load a pip-installed ``libtbb`` from ``<prefix>/lib`` so that Numba's TBB layer
    finds it (Numba 0.68.1 loads it by name only, and ``<prefix>/lib`` is not on the
    loader's path outside conda). Returns the path loaded, or None."""
    name = _TBB_NAMES.get(sys.platform.rstrip("0123456789"))
    if name is None:
        return None
    prefixes = [sys.prefix, sys.base_prefix, getattr(site, "USER_BASE", None)]
    for prefix in dict.fromkeys(p for p in prefixes if p):
        path = os.path.join(prefix, "lib", name)
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            return path
    return None
