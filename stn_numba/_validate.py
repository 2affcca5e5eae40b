"""Checks at the public boundary. Kernels never validate: what reaches them is
contiguous, native-endian float32/float64 of the right shapes."""

import numbers
import operator

import numpy as np

from ._compat import is_fake_cuda_array, readable_alias

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def describe(x):
    """Short description of a value for error messages."""
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:200]


def is_gpu_array(x):
    """True for objects exposing ``__cuda_array_interface__`` (Numba, CuPy, CUDA torch),
    and for the CUDA simulator's device arrays."""
    if isinstance(x, np.ndarray):
        return False
    return hasattr(x, "__cuda_array_interface__") or is_fake_cuda_array(x)


def _package_of(x):
    return (type(x).__module__ or "").split(".")[0]


def foreign_array(x, name):
    """``x`` with the array types NumPy would mishandle dealt with first.

    * dask arrays: TypeError (``np.asarray`` would compute the whole stack in memory);
    * torch tensors that require grad: TypeError suggesting ``.detach()``;
    * CPU torch tensors: their NumPy view (no copy), whatever their dtype.

    Everything else is returned unchanged (GPU tensors are read through
    ``__cuda_array_interface__`` later).
    """
    if isinstance(x, np.ndarray):
        return x
    package = _package_of(x)
    if package == "dask":
        raise TypeError(
            f"{name} is a dask array ({type(x).__name__} of shape {tuple(x.shape)}); the "
            f"functions of stn_numba compute in memory and would load all of it: use the "
            f"lazy, block-wise stn_numba.dask functions (stn_numba.dask.warp_affine, "
            f"grid_sample, warp_flow, warp_affine_backward), or pass {name}.compute()"
        )
    if package == "torch" and hasattr(x, "requires_grad"):
        if x.requires_grad:
            raise TypeError(
                f"{name} is a torch tensor that requires grad (shape {tuple(x.shape)}, "
                f"{x.dtype}); pass {name}.detach(): stn_numba computes its own gradients "
                f"(the *_backward functions)"
            )
        if getattr(getattr(x, "device", None), "type", None) == "cpu":
            return x.numpy()
    return x


def as_float_array(x, name):
    """Return ``x`` as a C-contiguous, native-endian float32/float64 ndarray (no copy if it is one).

    The caller's array is never modified: a copy is made whenever the layout needs changing.
    GPU arrays come back as zero-copy Numba device arrays; they must be C-contiguous.
    """
    x = foreign_array(x, name)
    if isinstance(x, (numbers.Number, np.generic)):
        raise TypeError(f"{name} must be an array; got {describe(x)}")
    if is_gpu_array(x):
        from numba import cuda

        # Numba device arrays and the simulator's (no __cuda_array_interface__, see
        # is_gpu_array) are used as they are; anything else goes through as_cuda_array.
        is_numba = cuda.devicearray.is_cuda_ndarray(x) if hasattr(cuda, "devicearray") else False
        arr = x if is_numba or is_fake_cuda_array(x) else cuda.as_cuda_array(x)
        if arr.dtype not in _FLOATS:
            raise TypeError(f"{name} must have dtype float32 or float64; got {arr.dtype}")
        if arr.size and not arr.is_c_contiguous():
            raise ValueError(
                f"{name} is a non-contiguous GPU array of shape {tuple(arr.shape)}; "
                "pass a C-contiguous copy (e.g. cupy.ascontiguousarray)"
            )
        return arr
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise TypeError(f"{name} must be a NumPy array; got {describe(x)}") from exc
    dt = x.dtype
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        hint = " (convert with .astype(np.float32))" if dt.kind in "fiub" else ""
        raise TypeError(f"{name} must have dtype float32 or float64; got {dt}{hint}")
    if not dt.isnative:
        dt = dt.newbyteorder("=")
    arr = np.asarray(x, dtype=dt, order="C")  # keeps 0-d arrays 0-d, for the messages
    if not arr.flags.writeable:
        arr = readable_alias(arr)  # see stn_numba._compat
    return arr


def same_dtype(ref_name, ref, **others):
    """All arrays must share ``ref``'s dtype."""
    for name, arr in others.items():
        if arr.dtype != ref.dtype:
            raise TypeError(
                f"{name} has dtype {arr.dtype} but {ref_name} has dtype {ref.dtype}; "
                f"all array arguments must share one dtype (use {name}.astype({ref_name}.dtype))"
            )


def check_ndim(x, name, allowed, what):
    if x.ndim not in allowed:
        want = " or ".join(str(a) for a in allowed)
        raise ValueError(f"{name} must be {want}-D {what}; got shape {x.shape} ({x.ndim}-D)")


def check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool; got {describe(value)}")
    return bool(value)


def as_int_tuple(value, name, length, minimum):
    """``value`` as a tuple of ``length`` Python ints, each >= ``minimum``."""
    if not _is_sequence(value):
        raise TypeError(f"{name} must be a sequence of {length} ints; got {describe(value)}")
    if len(value) != length:
        raise ValueError(f"{name} must have {length} entries; got {len(value)}: {tuple(value)!r}")
    out = []
    for v in value:
        if isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name} must contain ints; got {tuple(value)!r}")
        try:
            out.append(operator.index(v))
        except TypeError:
            raise TypeError(f"{name} must contain ints; got {tuple(value)!r}") from None
    for v in out:
        if v < minimum:
            raise ValueError(f"{name} entries must be >= {minimum}; got {tuple(out)!r}")
    return tuple(out)


def _is_sequence(value):
    """An ordered sequence: list, tuple (torch.Size), 1-D array; not str, set, dict or 0-d."""
    if isinstance(value, np.ndarray):
        return value.ndim == 1
    if isinstance(value, (str, bytes, dict)):
        return False
    return hasattr(value, "__len__") and hasattr(value, "__getitem__")


def check_size(size, name, batch, spatial_dims, batch_name="theta"):
    """Validate the full ``size`` (N, C, H, W) / (N, C, D, H, W) against ``batch_name``'s batch."""
    if not _is_sequence(size):
        raise TypeError(f"{name} must be a sequence of ints; got {describe(size)}")
    length = spatial_dims + 2
    size = as_int_tuple(size, name, length, 0)
    if min(size[2:]) < 1:
        raise ValueError(f"{name}'s spatial entries must be >= 1; got {size!r}")
    if size[0] != batch:
        raise ValueError(
            f"{name}[0] (batch) must equal {batch_name}.shape[0] = {batch}; got {size!r}"
        )
    return size


def check_theta(theta, name="theta"):
    """θ must be (N, 2, 3) or (N, 3, 4); returns the number of spatial dims."""
    if theta.ndim != 3 or theta.shape[1:] not in ((2, 3), (3, 4)):
        raise ValueError(
            f"{name} must have shape (N, 2, 3) for 2-D or (N, 3, 4) for 3-D; got {theta.shape}"
        )
    return theta.shape[1]


def check_input(x, name="input"):
    """(N, C, H, W) or (N, C, D, H, W) with non-empty spatial axes; returns spatial dims."""
    check_ndim(x, name, (4, 5), "(N, C, H, W) or (N, C, D, H, W)")
    if min(x.shape[2:]) < 1:
        raise ValueError(f"{name}'s spatial axes must be non-empty; got shape {x.shape}")
    return x.ndim - 2


def check_batch(n, name, arr, ref_name, broadcast=False):
    """``arr``'s batch must be ``ref_name``'s; ``broadcast``: the message says that
    either may be 1 (the broadcasting warps call their drivers with equal batches)."""
    if arr.shape[0] != n:
        either = " (or either of them 1)" if broadcast else ""
        raise ValueError(
            f"{name}.shape[0] (batch) must equal {ref_name}.shape[0] = {n}{either}; got {arr.shape}"
        )


def check_shape(x, name, expected):
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}; got {tuple(x.shape)}")


def check_out(out, shape, dtype, args):
    """A preallocated ``out``: ndarray, C-contiguous, writeable, right shape and dtype,
    sharing no memory with any argument."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array or None; got {describe(out)}")
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(
            f"out must have shape {tuple(shape)} and dtype {dtype}; "
            f"got shape {out.shape} and dtype {out.dtype}"
        )
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a C-contiguous, writeable array")
    for name, a in args.items():
        if isinstance(a, np.ndarray) and np.may_share_memory(out, a):
            raise ValueError(f"out must not overlap {name}")
    return out


def check_device(device, arrays):
    """Resolve ``device`` (None, "cpu" or "cuda") against the array arguments."""
    gpu = [name for name, a in arrays.items() if is_gpu_array(a)]
    if device is None:
        device = "cuda" if gpu else "cpu"
    if device == "cpu":
        if gpu:
            raise TypeError(
                f"{gpu[0]} is a GPU array but device='cpu'; copy it to the host "
                "(e.g. .copy_to_host()) or use device='cuda'"
            )
        return "cpu"
    if device == "cuda":
        require_cuda()
        return "cuda"
    raise ValueError(f"device must be None, 'cpu' or 'cuda'; got {describe(device)}")


def require_cuda():
    """Raise a RuntimeError that says how to get a GPU backend, unless one is usable."""
    how = (
        "install the GPU extra (pip install 'stn_numba[cuda]') on a machine with an NVIDIA "
        "GPU and driver, or set NUMBA_ENABLE_CUDASIM=1 before starting Python to run the "
        "GPU code in Numba's (slow) CUDA simulator"
    )
    try:
        from numba import cuda
    except Exception as exc:  # pragma: no cover - numba without CUDA support
        raise RuntimeError(f"device='cuda' is not available ({exc}); {how}") from None
    if not cuda.is_available():
        raise RuntimeError(f"device='cuda' needs a usable CUDA GPU, and none was found; {how}")
