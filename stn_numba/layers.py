"""Layer objects for NumPy training loops.

:class:`SpatialTransformer` wraps a grid generator and the sampler of
:mod:`stn_numba.functional` into a ``forward`` / ``backward`` pair that caches what the
backward needs, the way a layer of a hand-written NumPy network does.
"""

import numbers

import numpy as np

from . import _tps
from . import functional as F
from ._layout import Layout
from ._modes import _lookup, mode_code, sampling_padding
from ._validate import _is_sequence, as_float_array, check_bool, describe, is_gpu_array

__all__ = ["SpatialTransformer"]

_TRANSFORMS = ("affine", "perspective", "tps")


class SpatialTransformer:
    """A spatial transformer layer: warp ``x`` by per-sample parameters θ, with gradients.

    The grid generator and sampler of a Spatial Transformer (Jaderberg et al., 2015)
    without the localisation net: ``forward(x, theta)`` warps the batch ``x`` by the
    transforms θ (regressed by your localisation net) and keeps references to its
    arguments; ``backward(grad_out)`` returns ``(grad_x, grad_theta)``, the gradients
    of the loss with respect to both, which your training loop then passes on to the
    layer before (``grad_x``) and to the localisation net (``grad_theta``).

    Parameters
    ----------
    transform : {"affine", "perspective", "tps"}, default "affine"
        The family of θ:

        - ``"affine"``: θ (N, 2, 3) for images (N, C, H, W), or (N, 3, 4) for volumes
          (N, C, D, H, W); forward is :func:`~stn_numba.warp_affine` (fused, no grid
          array).
        - ``"perspective"``: homographies θ (N, 3, 3) on normalised (x, y, 1);
          forward is :func:`~stn_numba.warp_perspective`.
        - ``"tps"``: θ is the thin-plate spline's target points (N, K, 2) for the
          fixed ``source_points``; forward is :func:`~stn_numba.tps_grid` followed by
          :func:`~stn_numba.grid_sample`.
    size : sequence of int, optional
        Output spatial shape, (H, W) (or (D, H, W) for affine volumes); None keeps the
        input's spatial shape.
    source_points : array_like, (K, 2) or (N, K, 2), optional
        TPS control points in the output image, normalised (x, y); required for
        ``"tps"`` and refused for the other families. They are cast to θ's dtype.
    mode : {"bilinear", "nearest", "bicubic", "bspline2", ..., "bspline5"}, default "bilinear"
        Interpolation, as in :func:`~stn_numba.grid_sample`.
    padding_mode : {"zeros", "border", "reflection", "wrap", "constant"}, default "zeros"
        As in :func:`~stn_numba.grid_sample`; "constant" reads ``fill_value`` outside.
    align_corners : bool, default False
        As in :func:`~stn_numba.affine_grid` (PyTorch's convention; the tutorial's
        ``F.affine_grid``/``F.grid_sample`` use False).
    regularization : float, default 0.0
        TPS smoothing λ >= 0 (see :func:`~stn_numba.tps_grid`); only for ``"tps"``.
    fill_value : float or sequence of float, optional
        The value outside the input with ``padding_mode="constant"`` (None: 0), one per
        channel or one for all, as in :func:`~stn_numba.grid_sample`; the backward has
        no gradient with respect to it.
    device : {None, "cpu", "cuda"}, default None
        Passed to every call: None runs on the GPU when an array argument is a GPU
        array, ``"cuda"`` runs NumPy arrays on the GPU and returns NumPy arrays.
    layout : {"NCHW", "NHWC", "NCDHW", "NDHWC"}, default "NCHW"
        Memory layout of x, the output and their gradients (channels-last: (N, H, W, C)),
        as in :func:`~stn_numba.grid_sample`; θ is the same in every layout.

    Attributes
    ----------
    transform, size, source_points, mode, padding_mode, align_corners, regularization,
    fill_value, device, layout
        The constructor's arguments (``size`` as a tuple or None, ``source_points`` as a
        private NumPy copy).

    Raises
    ------
    ValueError
        Unknown transform, mode, padding_mode or layout (with "did you mean"), device not None,
        "cpu" or "cuda"; size of the wrong length (2, or 2 or 3 for ``"affine"``) or with
        entries < 1; source_points missing for ``"tps"`` or given for another family,
        of the wrong shape, fewer than 3, non-finite, duplicated (with regularization 0)
        or collinear; regularization negative or not finite, or given for a family other
        than ``"tps"``; fill_value non-finite or without ``padding_mode="constant"``.
    TypeError
        size not a sequence of ints; transform, mode, padding_mode or layout not a str;
        align_corners not a bool; regularization or fill_value not a real number.

    Notes
    -----
    Conventions are the library's (PyTorch's): θ maps *output* normalised coordinates to
    *input* normalised coordinates (−1 left/top, +1 right/bottom, last axis (x, y)), so
    the identity transform returns the input unchanged. :meth:`identity` gives the
    identity parameters of the chosen family, e.g. to initialise the bias of a
    localisation net's last layer.

    ``forward`` keeps private copies of ``x`` and ``theta`` (on their device), so
    ``backward`` returns the gradients at the values the forward saw even if the caller
    modifies its arrays in place in between (NumPy has no version counter to detect
    that, as PyTorch does, and copying is cheaper than checksumming x). The
    copy of x costs one x-sized array until the next forward. The cache holds the latest
    forward only: call ``backward`` once per ``forward``.
    The dtype (float32 or float64) of x and θ must agree; outputs and gradients have it.

    Examples
    --------
    >>> import numpy as np
    >>> from stn_numba import SpatialTransformer
    >>> st = SpatialTransformer("affine")
    >>> x = np.random.default_rng(0).random((2, 1, 8, 8))
    >>> theta = st.identity(2, x.dtype)
    >>> theta[:, :, 2] = 0.25                     # shift: read a quarter to the right/down
    >>> y = st.forward(x, theta)
    >>> loss = (y**2).sum()
    >>> grad_x, grad_theta = st.backward(2 * y)  # dloss/dy = 2y
    >>> grad_x.shape, grad_theta.shape
    ((2, 1, 8, 8), (2, 2, 3))

    Thin-plate spline with 9 control points on a 3×3 lattice:

    >>> g = np.linspace(-0.8, 0.8, 3)
    >>> src = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    >>> tps = SpatialTransformer("tps", source_points=src)
    >>> tgt = tps.identity(2, x.dtype)
    >>> np.allclose(tps.forward(x, tgt), x)        # identity targets: no warp
    True
    >>> tps.backward(np.ones_like(x), input_grad=False)[1].shape
    (2, 9, 2)
    """

    def __init__(
        self,
        transform="affine",
        size=None,
        *,
        source_points=None,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
        regularization=None,
        fill_value=None,
        device=None,
        layout="NCHW",
    ):
        _lookup({t: t for t in _TRANSFORMS}, transform, "transform")
        if size is not None:
            if isinstance(size, (str, bytes)) or not hasattr(size, "__len__"):
                raise TypeError(f"size must be None or a sequence of ints; got {size!r}")
            if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size):
                raise TypeError(f"size must be None or a sequence of ints; got {size!r}")
            size = tuple(int(s) for s in size)
            lengths = (2, 3) if transform == "affine" else (2,)
            if len(size) not in lengths:
                want = "(H, W) or (D, H, W)" if transform == "affine" else "(H, W)"
                raise ValueError(
                    f"size must be None or the output's spatial shape {want} for "
                    f"transform={transform!r}; got {size!r}"
                )
            if min(size) < 1:
                raise ValueError(f"size entries must be >= 1; got {size!r}")
        if transform == "tps":
            if source_points is None:
                raise ValueError(
                    'source_points (K, 2) or (N, K, 2) is required for transform="tps"; got None'
                )
            source_points = np.array(source_points)  # a copy: later edits of the caller's
            if source_points.ndim not in (2, 3) or source_points.shape[-1] != 2:
                raise ValueError(
                    f"source_points must have shape (K, 2) or (N, K, 2); got {source_points.shape}"
                )
            if source_points.dtype.kind not in "fiu":
                raise TypeError(
                    f"source_points must hold real numbers; got dtype {source_points.dtype}"
                )
            if source_points.shape[-2] < 3:
                raise ValueError(
                    f"a thin-plate spline needs K >= 3 control points (not all on one line); "
                    f"got source_points of shape {source_points.shape}"
                )
            lam = 0.0 if regularization is None else regularization
            lam = _tps.check_regularization(lam)
            _tps.source_array(source_points, lam)  # non-finite, duplicated, collinear
        else:
            if source_points is not None:
                raise ValueError(
                    f'source_points is only for transform="tps"; got it with {transform!r}'
                )
            if regularization is not None:
                raise ValueError(
                    f'regularization is only for transform="tps"; got it with {transform!r}'
                )
        mode_code(mode, 2)  # names checked here; bicubic on volumes is refused at forward
        _, constant = sampling_padding(padding_mode)
        if fill_value is not None:
            if not constant:
                raise ValueError(
                    f"fill_value is used only with padding_mode='constant'; got "
                    f"padding_mode={padding_mode!r} and fill_value={describe(fill_value)}"
                )
            _check_fill(fill_value)
        check_bool(align_corners, "align_corners")
        if not (device is None or (isinstance(device, str) and device in ("cpu", "cuda"))):
            raise ValueError(f"device must be None, 'cpu' or 'cuda'; got {describe(device)}")
        self.transform = transform
        self.size = size
        self.source_points = source_points
        self.mode = mode
        self.padding_mode = padding_mode
        self.align_corners = align_corners
        self.regularization = 0.0 if regularization is None else float(regularization)
        self.fill_value = fill_value
        self.device = device
        self.layout = layout
        self._layout = Layout(layout)  # the name is checked here
        self._cache = None

    def __repr__(self):
        extra = f", source_points={self.source_points.shape}" if self.transform == "tps" else ""
        return (
            f"SpatialTransformer({self.transform!r}, size={self.size}{extra}, "
            f"mode={self.mode!r}, padding_mode={self.padding_mode!r}, "
            f"align_corners={self.align_corners}, device={self.device!r})"
        )

    def identity(self, batch, dtype=np.float32):
        """Parameters θ of the identity transform for ``batch`` samples (NumPy, writable).

        Parameters
        ----------
        batch : int
            Number of samples N (0 gives an empty batch, as the functions take).
        dtype : numpy dtype, default float32
            float32 or float64.

        Returns
        -------
        theta : ndarray
            ``"affine"``: (N, 2, 3) ``[[1, 0, 0], [0, 1, 0]]`` (2-D; build (N, 3, 4) with
            ``np.eye(3, 4)`` for volumes); ``"perspective"``: (N, 3, 3) identity;
            ``"tps"``: the source points, (N, K, 2).

        Examples
        --------
        >>> from stn_numba import SpatialTransformer
        >>> SpatialTransformer("perspective").identity(1, "float64")[0]
        array([[1., 0., 0.],
               [0., 1., 0.],
               [0., 0., 1.]])
        """
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 0:
            raise ValueError(f"batch must be an int >= 0; got {batch!r}")
        dtype = np.dtype(dtype)
        if self.transform == "affine":
            one = np.eye(2, 3)
        elif self.transform == "perspective":
            one = np.eye(3)
        else:
            src = self.source_points
            return np.array(np.broadcast_to(src, (batch,) + src.shape[-2:]), dtype=dtype, order="C")
        return np.array(np.broadcast_to(one, (batch,) + one.shape), dtype=dtype, order="C")

    def _full(self, x):
        """(N, C, *output size) of x, kernel order whatever the layout."""
        shape = self._layout.kernel_shape(x.shape)
        return shape[:2] + (self.size if self.size is not None else shape[2:])

    def _kw(self):
        kw = dict(
            mode=self.mode,
            padding_mode=self.padding_mode,
            align_corners=self.align_corners,
            device=self.device,
            layout=self.layout,
        )
        if self.fill_value is not None:
            kw["fill_value"] = self.fill_value
        return kw

    def _source(self, theta):
        src = self.source_points
        dtype = theta.dtype if hasattr(theta, "dtype") else np.asarray(theta).dtype
        return src.astype(dtype, copy=False)

    def forward(self, x, theta):
        """Warp ``x`` by θ and remember both for :meth:`backward`.

        Parameters
        ----------
        x : ndarray, (N, C, H_in, W_in) (or (N, C, D, H, W) for 3-D affine)
            Input batch, float32 or float64; NumPy or a GPU array.
        theta : ndarray
            (N, 2, 3) / (N, 3, 4) affine, (N, 3, 3) homographies, or (N, K, 2) TPS
            target points, in x's dtype.

        Returns
        -------
        output : ndarray, ``(N, C, *size)``
            The warped batch, x's dtype (a GPU array for GPU arrays in).

        Raises
        ------
        TypeError, ValueError
            As the underlying functions (:func:`~stn_numba.warp_affine`,
            :func:`~stn_numba.warp_perspective`, :func:`~stn_numba.tps_grid` and
            :func:`~stn_numba.grid_sample`), before anything is cached.
        """
        kw = self._kw()
        grid = None
        if self.transform == "affine":
            out = F.warp_affine(x, theta, self.size, **kw)
        elif self.transform == "perspective":
            out = F.warp_perspective(x, theta, self.size, **kw)
        else:
            if len(x.shape) != 4:
                raise ValueError(
                    f"x must be 4-D (N, C, H, W) for transform='tps'; got shape {tuple(x.shape)}"
                )
            full = self._full(x)
            grid = F.tps_grid(
                self._source(theta),
                theta,
                full,
                self.align_corners,
                self.regularization,
                device=self.device,
            )
            out = F.grid_sample(x, grid, **kw)
        self._cache = (_private_copy(x, "x"), _private_copy(theta, "theta"), grid)
        return out

    __call__ = forward

    def backward(self, grad_out, input_grad=True):
        """Gradients of the loss with respect to the last :meth:`forward`'s x and θ.

        Parameters
        ----------
        grad_out : ndarray, ``(N, C, *size)``
            dL/doutput, in the output's dtype (and on its device).
        input_grad : bool, default True
            Whether to compute dL/dx; False skips that work (e.g. when x is the raw
            input of the network) and returns None in its place.

        Returns
        -------
        grad_x : ndarray or None
            dL/dx, x's shape.
        grad_theta : ndarray
            dL/dθ, θ's shape (for ``"tps"``: with respect to the target points).

        The gradients are those at the x and θ of the last forward, even if the caller's
        arrays were modified in place since (the layer keeps copies).

        Raises
        ------
        RuntimeError
            No forward has been run.
        TypeError, ValueError
            grad_out of the wrong shape or dtype; input_grad not a bool.
        """
        if self._cache is None:
            raise RuntimeError("SpatialTransformer.backward called before forward")
        input_grad = check_bool(input_grad, "input_grad")
        x, theta, grid = self._cache
        kw = self._kw()
        if self.transform == "affine":
            return F.warp_affine_backward(
                grad_out, x, theta, self.size, input_grad=input_grad, theta_grad=True, **kw
            )
        if self.transform == "perspective":
            return F.warp_perspective_backward(
                grad_out, x, theta, self.size, input_grad=input_grad, H_grad=True, **kw
            )
        grad_x, grad_grid = F.grid_sample_backward(
            grad_out, x, grid, input_grad=input_grad, grid_grad=True, **kw
        )
        full = self._full(x)
        grad_theta = F.tps_grid_backward(
            grad_grid,
            self._source(theta),
            theta,
            full,
            self.align_corners,
            self.regularization,
            device=self.device,
        )
        return grad_x, grad_theta


def _private_copy(a, name):
    """A copy of the array ``a`` that the caller cannot modify (C-contiguous, same device)."""
    if is_gpu_array(a):
        from numba import cuda

        src = as_float_array(a, name)  # a Numba device array over the same memory
        copy = cuda.device_array(src.shape, src.dtype)
        copy.copy_to_device(src)
        return copy
    return np.array(a, order="C", copy=True)


def _check_fill(fill_value):
    """Real, finite numbers (the channel count is checked at forward, where it is known)."""
    values = list(fill_value) if _is_sequence(fill_value) else [fill_value]
    for v in values:
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = v[()]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(
                f"fill_value must be a real number or a sequence of real numbers (one per "
                f"channel); got {describe(fill_value)}"
            )
        if not np.isfinite(v):
            raise ValueError(f"fill_value must be finite; got {describe(fill_value)}")
