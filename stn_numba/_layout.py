"""Channels-last images, at the public boundary.

The kernels index an image as ``img[n, c, (d,) h, w]`` and never assume strides. A
channels-last image, (N, H, W, C) or (N, D, H, W, C) in memory, is therefore handed to
them as its (N, C, H, W) / (N, C, D, H, W) *view* — the same memory with permuted
strides, no copy — and they read and write it natively: the channel loop of every
pixel walks contiguous memory. Arrays the backends make for an image (outputs,
gradients, accumulators) are allocated in the image's memory order (``empty_like``),
and the result is handed back as the C-contiguous channels-last array it is.

On the CPU Numba compiles a strided (layout ``A``) specialisation of each driver the
first time a channels-last image reaches it; on the GPU the kernels take the permuted
device-array views in the same way.
"""

import numpy as np

from ._compat import device_transpose, is_fake_cuda_array
from ._modes import layout_code
from ._validate import check_shape


def permute(x, axes):
    """``x.transpose(axes)`` for NumPy arrays and device arrays alike (zero copy)."""
    axes = tuple(axes)
    if x is None or axes == tuple(range(len(axes))):
        return x
    # The CUDA simulator's FakeCUDAArray wraps a NumPy array: its transpose is NumPy's.
    if isinstance(x, np.ndarray) or is_fake_cuda_array(x):
        return x.transpose(axes)
    return device_transpose(x, axes)


def memory_order(x):
    """x's axes from the outermost in memory to the innermost (ties: in axis order)."""
    return sorted(range(len(x.shape)), key=lambda a: -abs(x.strides[a]))


def inverse(axes):
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return tuple(inv)


def physical(x):
    """The view of ``x`` with its axes in memory order (C-contiguous when x's memory is
    a dense block, as every array the backends allocate is)."""
    return permute(x, memory_order(x))


class Layout:
    """A ``layout=`` argument: validated once, then used to view images both ways."""

    def __init__(self, layout):
        self.name = layout
        self.last, self.ndim = layout_code(layout)

    @property
    def channel_axis(self):
        """The channel axis of a caller's image: 1, or -1 when channels-last."""
        return -1 if self.last else 1

    def axes(self, ndim):
        """The caller's axis names, e.g. "(N, H, W, C)"."""
        spatial = "D, H, W" if ndim == 5 else "H, W"
        return f"(N, {spatial}, C)" if self.last else f"(N, C, {spatial})"

    def check(self, x, name):
        """A caller's image must have the ndim its layout names (before any view)."""
        shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
        nd = len(shape)
        if self.ndim is not None and nd != self.ndim:
            other = {4: "'NHWC'", 5: "'NDHWC'"} if self.last else {4: "'NCHW'", 5: "'NCDHW'"}
            hint = f" (use layout={other[nd]} for {nd}-D)" if nd in other else ""
            raise ValueError(
                f"{name} must be {self.ndim}-D {self.axes(self.ndim)} for "
                f"layout={self.name!r}; got shape {shape} ({nd}-D){hint}"
            )

    def to_kernel(self, x):
        """The caller's image -> the kernels' (N, C, ...) view (no copy)."""
        if not self.last or x is None:
            return x
        nd = len(x.shape)
        return permute(x, (0, nd - 1, *range(1, nd - 1)))

    def from_kernel(self, x):
        """The kernels' (N, C, ...) view -> the caller's layout (no copy)."""
        if not self.last or x is None:
            return x
        nd = len(x.shape)
        return permute(x, (0, *range(2, nd), 1))

    def shape(self, shape):
        """A kernel-order shape in the caller's layout."""
        shape = tuple(shape)
        return (shape[0], *shape[2:], shape[1]) if self.last else shape

    def kernel_shape(self, shape):
        """A shape in the caller's layout in kernel order, (N, C, ...)."""
        shape = tuple(shape)
        return (shape[0], shape[-1], *shape[1:-1]) if self.last else shape

    def check_shape(self, x, name, expected):
        """x (kernel view) must have the kernel-order shape ``expected``; the message
        speaks the caller's layout."""
        if not self.last:
            return check_shape(x, name, expected)
        if tuple(x.shape) != tuple(expected):
            raise ValueError(
                f"{name} must have shape {self.shape(expected)} (layout={self.name!r}); "
                f"got {self.shape(x.shape)}"
            )
