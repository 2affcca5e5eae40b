"""Lazy warps of ``dask.array`` stacks: the eager functions applied block by block.

``stn_numba.dask.warp_affine(input, theta)`` is :func:`stn_numba.warp_affine` on a stack
that need not fit in memory: ``input`` is a ``dask.array`` (N, C, H, W) or (N, C, D, H, W)
chunked along the batch axis only, and the result is a lazy ``dask.array`` whose block
``i`` is the eager function applied to block ``i`` of the input and the matching samples
of θ (or of the grid, or of the flow). Nothing runs until ``.compute()``, ``da.store`` or
``.to_zarr``; each block is computed by the compiled kernels, bit-identical to the eager
call on the whole stack (every operation is per sample).

Needs the optional extra: ``pip install 'stn_numba[dask]'``. ``import stn_numba`` does not
import this module or dask.

Chunking
    Only the batch axis (0) may have several chunks; the channel and spatial axes of
    ``input`` and the non-batch axes of θ / grid / flow must be single chunks (a warp reads
    anywhere in its sample). Otherwise a ``ValueError`` says how to rechunk, e.g.
    ``x.rechunk({1: -1, 2: -1, 3: -1})``: the spatial axes are never rechunked silently.
    θ, grid and flow may be NumPy or dask arrays; they are (re)chunked along their batch
    axis to the input's batch chunks (and θ's 2×3 / 3×4 matrix axes into one chunk). Large
    grids or flows should be dask arrays (a NumPy one is embedded in the task graph).

Threads (no oversubscription)
    Each block runs Numba's parallel kernel while dask may run several blocks at once. The
    ``numba_threads`` argument sets the Numba threads of each block; the default (None)
    picks, inside each task, ``max(1, NUMBA_NUM_THREADS // slots)`` where ``slots`` is the
    number of tasks the running scheduler executes at once in this process:

    =============================  ===============================================
    synchronous scheduler          1 (all of Numba's threads; the caller's
    (``scheduler="sync"``)         ``numba.set_num_threads`` is left as it is)
    local threaded scheduler       the size of its thread pool (dask's default:
    (the default for dask.array)   ``dask.system.CPU_COUNT``, i.e. 1 Numba thread
                                   per task; ``dask.config.set(num_workers=k)``
                                   gives ``NUMBA_NUM_THREADS // k``)
    local processes scheduler      ``dask.system.CPU_COUNT`` (1 Numba thread)
    ``dask.distributed`` worker    1 Numba thread per task, always: a task cannot
                                   see how many worker processes share its
                                   machine (dask's Nanny pins OpenMP/MKL/BLAS to
                                   1 thread for the same reason); the workers'
                                   threads supply the parallelism
    =============================  ===============================================

    So the product (dask tasks running at once) × (Numba threads per task) never exceeds
    the cores. With few, large chunks, run fewer dask threads and give each task more
    Numba threads, e.g. ``dask.config.set(num_workers=2)`` on the threaded scheduler, or
    ``LocalCluster(n_workers=2, threads_per_worker=1)`` with ``numba_threads=cores // 2``
    (keep ``n_workers × threads_per_worker × numba_threads <= cores``). An explicit
    ``numba_threads`` is used as given (capped at the worker's ``NUMBA_NUM_THREADS``).
    Numba's ``workqueue`` threading layer (the package's fork-safe default when TBB is not
    installed, see :mod:`stn_numba._threads`) cannot be entered from two threads at once:
    with it, blocks in the same process run one at a time (the others wait on a lock).
    ``numba.threading_layer()`` tells which you have; ``pip install tbb`` gives the TBB
    layer, and ``NUMBA_THREADING_LAYER=omp`` OpenMP (not fork-safe).

Validation
    The arguments are checked when the graph is built, by calling the eager function on an
    empty batch (this also compiles the kernel in the calling process, once; the compiled
    code is cached on disk, so workers on the same machine load it). The errors are the
    eager function's, plus a ``TypeError`` when ``input`` is not a dask array, a
    ``ValueError`` for a batch mismatch, unknown chunk sizes or a chunked non-batch axis.
"""

import functools
import multiprocessing
import sys
import threading

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised only without dask
    raise ImportError(
        "stn_numba.dask needs dask (dask.array); install it with: pip install 'stn_numba[dask]'"
    ) from exc

import numba

from . import functional as _f
from ._compat import DASK_BLOCK_LOCK, workqueue_may_run
from ._validate import check_bool

__all__ = ["grid_sample", "warp_affine", "warp_affine_backward", "warp_flow"]

# ----------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------


def _distributed_worker():
    """The ``dask.distributed`` worker running this task, or None (never imports distributed)."""
    mod = sys.modules.get("distributed")
    if mod is None:
        return None
    try:
        return mod.get_worker()
    except ValueError:
        return None


def _local_pool_size():
    """Size of the local threaded scheduler's pool that runs the current thread, or None."""
    import dask.threaded as dt

    me = threading.current_thread()
    candidates = [dt.default_pool, dask.config.get("pool", None)]
    candidates += [p for per_thread in list(dt.pools.values()) for p in per_thread.values()]
    for pool in candidates:
        # a new pool thread starts running tasks before it is added to pool._threads, but
        # it is named after the pool from the start
        prefix = getattr(pool, "_thread_name_prefix", None)
        if me in getattr(pool, "_threads", ()) or (prefix and me.name.startswith(prefix + "_")):
            return pool._max_workers
    return None


def task_slots():
    """How many dask tasks can run at once beside this one, as the default threads see it.

    Returns None on a ``dask.distributed`` worker (the policy there is 1 Numba thread per
    task), 1 for the synchronous scheduler (a task on the main thread of the main
    process), else the local scheduler's pool size (``dask.system.CPU_COUNT`` when it
    cannot be found).
    """
    if _distributed_worker() is not None:
        return None
    in_child = multiprocessing.parent_process() is not None
    if threading.current_thread() is threading.main_thread() and not in_child:
        return 1
    size = _local_pool_size() if not in_child else None
    if size is None:
        size = dask.config.get("num_workers", None) or dask.system.CPU_COUNT
    return max(1, int(size))


def default_numba_threads():
    """Numba threads a block gets with ``numba_threads=None``, in the current task.

    None means "leave Numba's setting alone" (synchronous scheduler). See the module
    docstring for the policy.
    """
    slots = task_slots()
    if slots is None:
        return 1
    if slots == 1:
        return None
    return max(1, numba.config.NUMBA_NUM_THREADS // slots)


def _run_block(*blocks, fn, kwargs, threads, pick):
    """One task: the eager ``fn`` on one batch block, with the chosen Numba thread count."""
    n = default_numba_threads() if threads is None else threads
    lock = DASK_BLOCK_LOCK if workqueue_may_run() else None
    if lock is not None:
        lock.acquire()
    try:
        if n is None:
            result = fn(*blocks, **kwargs)
        else:
            before = numba.get_num_threads()
            numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
            try:
                result = fn(*blocks, **kwargs)
            finally:
                numba.set_num_threads(before)
    finally:
        if lock is not None:
            lock.release()
    return result if pick is None else result[pick]


# ----------------------------------------------------------------------------
# Graph building
# ----------------------------------------------------------------------------


def _check_threads(numba_threads):
    if numba_threads is None:
        return None
    if isinstance(numba_threads, bool) or not isinstance(numba_threads, (int, np.integer)):
        raise TypeError(f"numba_threads must be None or an int >= 1; got {numba_threads!r}")
    if numba_threads < 1:
        raise ValueError(f"numba_threads must be None or an int >= 1; got {numba_threads}")
    return int(numba_threads)


def _check_kwargs(kwargs, fn_name):
    if "out" in kwargs:
        raise TypeError(
            f"stn_numba.dask.{fn_name} takes no out=; write the lazy result with "
            "da.store(result, target) or result.to_zarr(...)"
        )


def _rechunk_hint(arr):
    axes = ", ".join(f"{a}: -1" for a in range(1, arr.ndim))
    return f".rechunk({{{axes}}})"


def _single_chunks(arr, name):
    """Every non-batch axis of a dask array must be one chunk."""
    for axis in range(1, arr.ndim):
        if len(arr.chunks[axis]) != 1:
            raise ValueError(
                f"{name} must be chunked along the batch axis (0) only; axis {axis} has "
                f"{len(arr.chunks[axis])} chunks {arr.chunks[axis]} (shape {arr.shape}). "
                f"Rechunk it with {name} = {name}{_rechunk_hint(arr)} (one chunk per sample "
                "block: a warp reads anywhere in its sample)"
            )


def _known_batch(arr, name):
    if np.isnan(arr.shape[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes along the batch axis; call "
            f"{name}.compute_chunk_sizes() first"
        )


def _as_batched(arr, name, input):
    """NumPy or dask ``arr`` as a dask array with ``input``'s batch chunks.

    θ's small matrix axes are merged into one chunk; the other arguments' non-batch axes
    (spatial) must already be single chunks.
    """
    batch_chunks = input.chunks[0]
    if isinstance(arr, da.Array):
        if arr.ndim < 1:
            raise ValueError(f"{name} must have a batch axis; got shape {arr.shape}")
        _known_batch(arr, name)
        if arr.shape[0] != input.shape[0]:
            raise ValueError(
                f"{name}.shape[0] (batch) must equal input.shape[0] = {input.shape[0]}; "
                f"got {arr.shape}"
            )
        if name != "theta":
            _single_chunks(arr, name)
        want = (batch_chunks, *((s,) for s in arr.shape[1:]))
        if arr.chunks != want:
            arr = arr.rechunk(want)
        return arr
    arr = np.asarray(arr)
    if arr.ndim < 1 or arr.shape[0] != input.shape[0]:
        raise ValueError(
            f"{name}.shape[0] (batch) must equal input.shape[0] = {input.shape[0]}; got {arr.shape}"
        )
    return da.from_array(arr, chunks=(batch_chunks, *arr.shape[1:]))


def _check_input(input):
    if not isinstance(input, da.Array):
        raise TypeError(
            "input must be a dask.array.Array chunked along the batch axis, e.g. "
            "da.from_array(x, chunks=(8, -1, -1, -1)); got "
            f"{type(input).__module__}.{type(input).__name__} (use stn_numba.* for NumPy arrays)"
        )
    if input.ndim < 1:
        raise ValueError(f"input must have a batch axis; got shape {input.shape}")
    _known_batch(input, "input")
    for axis in range(1, input.ndim):
        if np.isnan(input.shape[axis]):
            raise ValueError(f"input has an unknown size on axis {axis}: {input.shape}")


def _empty_like_batch(arr):
    """An empty batch with ``arr``'s other axes and dtype: what the probe call gets."""
    return np.empty((0, *arr.shape[1:]), dtype=arr.dtype)


def _blockwise(fn, fn_name, arrays, kwargs, numba_threads, picks):
    """Apply ``fn`` to matching batch blocks of ``arrays`` (dask, rechunked alike).

    ``picks``: None for a function returning one array, else the indices of the tuple
    entries to return, one lazy array each. The eager ``fn`` is called first on an empty
    batch: it validates every argument and tells the output shapes and dtypes.
    """
    probe = fn(*(_empty_like_batch(a) for a in arrays), **kwargs)
    outs = [probe] if picks is None else [probe[i] for i in picks]
    letters = iter("abcdefghijklmopqrstuvwxyzABCDEFGHIJKLMOPQRSTUVWXYZ")  # "n" is the batch
    args = []
    for arr in arrays:
        args += [arr, "n" + "".join(next(letters) for _ in range(arr.ndim - 1))]
    results = []
    for pick, out in zip([None] if picks is None else picks, outs, strict=True):
        out_axes = "".join(next(letters) for _ in range(out.ndim - 1))
        results.append(
            da.blockwise(
                functools.partial(
                    _run_block, fn=fn, kwargs=kwargs, threads=numba_threads, pick=pick
                ),
                "n" + out_axes,
                *args,
                new_axes=dict(zip(out_axes, out.shape[1:], strict=True)),
                dtype=out.dtype,
                meta=np.empty((0,) * out.ndim, dtype=out.dtype),
                concatenate=True,
                token=f"stn-{fn_name}",
            )
        )
    return results[0] if picks is None else tuple(results)


def _apply(fn, fn_name, input, others, kwargs, numba_threads, picks=None):
    _check_input(input)
    _check_kwargs(kwargs, fn_name)
    threads = _check_threads(numba_threads)
    batched = [_as_batched(arr, name, input) for name, arr in others]
    _single_chunks(input, "input")
    return _blockwise(fn, fn_name, [input, *batched], kwargs, threads, picks)


# ----------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------


def warp_affine(
    input,
    theta,
    size=None,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    numba_threads=None,
    **kwargs,
):
    """Lazy :func:`stn_numba.warp_affine` of a dask stack, block by block along the batch.

    Parameters
    ----------
    input : dask.array.Array, (N, C, H_in, W_in) or (N, C, D_in, H_in, W_in)
        float32 or float64, chunked along axis 0 only (channel and spatial axes one chunk).
    theta : ndarray or dask.array.Array, (N, 2, 3) or (N, 3, 4)
        As in :func:`stn_numba.warp_affine`; rechunked to input's batch chunks (and one
        chunk on the matrix axes).
    size, mode, padding_mode, align_corners
        As in :func:`stn_numba.warp_affine`.
    numba_threads : int, optional
        Numba threads per block; None picks them per task so that the dask scheduler's
        concurrent tasks do not oversubscribe the cores (see :mod:`stn_numba.dask`).
    **kwargs
        Passed on to :func:`stn_numba.warp_affine` in every task (``out`` is refused).

    Returns
    -------
    output : dask.array.Array, ``(N, C, *size)``
        Lazy; input's batch chunks, one chunk on the other axes, input's dtype. Equal,
        bit for bit, to ``stn_numba.warp_affine(input.compute(), theta, ...)``.

    Raises
    ------
    TypeError
        input is not a dask array; ``out=`` given; as :func:`stn_numba.warp_affine`.
    ValueError
        A chunked channel/spatial axis (the message says how to rechunk), a batch
        mismatch, unknown chunk sizes; as :func:`stn_numba.warp_affine`.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import stn_numba.dask as stnd
    >>> x = da.from_array(np.arange(12.0).reshape(2, 1, 2, 3), chunks=(1, 1, 2, 3))
    >>> flip = np.tile([[-1.0, 0, 0], [0, 1, 0]], (2, 1, 1))      # mirror left-right
    >>> y = stnd.warp_affine(x, flip)
    >>> y.chunks
    ((1, 1), (1,), (2,), (3,))
    >>> y.compute()[1, 0]
    array([[ 8.,  7.,  6.],
           [11., 10.,  9.]])
    """
    kwargs = dict(kwargs, size=size, mode=mode, padding_mode=padding_mode)
    kwargs["align_corners"] = align_corners
    return _apply(_f.warp_affine, "warp_affine", input, [("theta", theta)], kwargs, numba_threads)


def grid_sample(
    input,
    grid,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    numba_threads=None,
    **kwargs,
):
    """Lazy :func:`stn_numba.grid_sample` of a dask stack, block by block along the batch.

    Parameters
    ----------
    input : dask.array.Array, (N, C, H_in, W_in) or (N, C, D_in, H_in, W_in)
        float32 or float64, chunked along axis 0 only.
    grid : ndarray or dask.array.Array, (N, H, W, 2) or (N, D, H, W, 3)
        As in :func:`stn_numba.grid_sample`; rechunked along its batch axis to input's
        batch chunks (its other axes must be one chunk).
    mode, padding_mode, align_corners
        As in :func:`stn_numba.grid_sample`.
    numba_threads : int, optional
        Numba threads per block; None: see :mod:`stn_numba.dask`.
    **kwargs
        Passed on to :func:`stn_numba.grid_sample` (``out`` is refused).

    Returns
    -------
    output : dask.array.Array, (N, C, H, W) or (N, C, D, H, W)
        Lazy; input's batch chunks and dtype; equal to the eager call.

    Raises
    ------
    TypeError, ValueError
        As :func:`warp_affine` (this module's) and :func:`stn_numba.grid_sample`.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import stn_numba.dask as stnd
    >>> x = da.from_array(np.arange(8.0).reshape(2, 1, 2, 2), chunks=(1, 1, 2, 2))
    >>> grid = np.zeros((2, 1, 1, 2))                      # the centre of each image
    >>> stnd.grid_sample(x, grid, align_corners=True).compute().ravel()
    array([1.5, 5.5])
    """
    kwargs = dict(kwargs, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    return _apply(_f.grid_sample, "grid_sample", input, [("grid", grid)], kwargs, numba_threads)


def warp_flow(
    input,
    flow,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    numba_threads=None,
    **kwargs,
):
    """Lazy :func:`stn_numba.warp_flow` of a dask stack, block by block along the batch.

    Parameters
    ----------
    input : dask.array.Array, (N, C, H_in, W_in) or (N, C, D_in, H_in, W_in)
        float32 or float64, chunked along axis 0 only.
    flow : ndarray or dask.array.Array, (N, H, W, 2) or (N, D, H, W, 3)
        Displacements in input pixels (:func:`stn_numba.warp_flow`); rechunked along its
        batch axis to input's batch chunks (its other axes must be one chunk).
    mode, padding_mode, align_corners
        As in :func:`stn_numba.warp_flow`.
    numba_threads : int, optional
        Numba threads per block; None: see :mod:`stn_numba.dask`.
    **kwargs
        Passed on to :func:`stn_numba.warp_flow` (``out`` is refused).

    Returns
    -------
    output : dask.array.Array, (N, C, H, W) (flow's spatial shape)
        Lazy; input's batch chunks and dtype; equal to the eager call.

    Raises
    ------
    TypeError, ValueError
        As :func:`warp_affine` (this module's) and :func:`stn_numba.warp_flow`.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import stn_numba.dask as stnd
    >>> x = da.from_array(np.arange(8.0).reshape(2, 1, 1, 4), chunks=(1, -1, -1, -1))
    >>> flow = np.zeros((2, 1, 4, 2)); flow[..., 0] = 1.0         # one pixel to the right
    >>> stnd.warp_flow(x, flow, padding_mode="border").compute()[:, 0, 0]
    array([[1., 2., 3., 3.],
           [5., 6., 7., 7.]])
    """
    kwargs = dict(kwargs, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    return _apply(_f.warp_flow, "warp_flow", input, [("flow", flow)], kwargs, numba_threads)


def warp_affine_backward(
    grad_output,
    input,
    theta,
    size=None,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    input_grad=True,
    theta_grad=True,
    *,
    numba_threads=None,
    **kwargs,
):
    """Lazy :func:`stn_numba.warp_affine_backward` of a dask stack, block by block.

    Both gradients are per sample (dL/dθ of sample n depends on sample n only), so each
    batch block is independent. The two results are separate tasks that each compute only
    their own gradient (the eager call with the other one switched off); they share the
    tasks that load input and grad_output.

    Parameters
    ----------
    grad_output : dask.array.Array or ndarray, ``(N, C, *size)``
        dL/doutput; rechunked along its batch axis to input's batch chunks (its other
        axes must be one chunk).
    input : dask.array.Array, (N, C, H_in, W_in) or (N, C, D_in, H_in, W_in)
        Chunked along axis 0 only.
    theta, size, mode, padding_mode, align_corners
        As given to :func:`warp_affine`.
    input_grad, theta_grad : bool, default True
        Which gradients to build; one not asked for comes back as None.
    numba_threads : int, optional
        Numba threads per block; None: see :mod:`stn_numba.dask`.
    **kwargs
        Passed on to :func:`stn_numba.warp_affine_backward` (e.g. ``device``).

    Returns
    -------
    grad_input : dask.array.Array or None
        Lazy dL/dinput, input's shape, batch chunks and dtype.
    grad_theta : dask.array.Array or None
        Lazy dL/dθ, (N, 2, 3) or (N, 3, 4), input's batch chunks.

    Raises
    ------
    TypeError, ValueError
        As :func:`warp_affine` (this module's) and :func:`stn_numba.warp_affine_backward`.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> import stn_numba.dask as stnd
    >>> x = da.random.default_rng(0).random((4, 1, 4, 4), chunks=(2, 1, 4, 4))
    >>> theta = np.tile(np.eye(2, 3), (4, 1, 1))
    >>> gi, gt = stnd.warp_affine_backward(da.ones_like(x), x, theta)
    >>> gi.chunks[0], gt.shape
    ((2, 2), (4, 2, 3))
    """
    input_grad = check_bool(input_grad, "input_grad")
    theta_grad = check_bool(theta_grad, "theta_grad")
    kwargs = dict(kwargs, size=size, mode=mode, padding_mode=padding_mode)
    kwargs["align_corners"] = align_corners
    fn = _backward_input_first
    results = [None, None]
    _check_input(input)
    for i, wanted in enumerate((input_grad, theta_grad)):
        if not wanted:
            continue
        flags = dict(kwargs, input_grad=i == 0, theta_grad=i == 1)
        results[i] = _apply(
            fn,
            "warp_affine_backward",
            input,
            [("grad_output", grad_output), ("theta", theta)],
            flags,
            numba_threads,
            picks=(i,),
        )[0]
    return tuple(results)


def _backward_input_first(input, grad_output, theta, **kwargs):
    """:func:`stn_numba.warp_affine_backward` with input first (the block that sets the
    batch chunks comes first in :func:`_apply`)."""
    return _f.warp_affine_backward(grad_output, input, theta, **kwargs)
