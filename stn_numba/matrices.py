"""Transformation matrices: θ from interpretable parameters, and θ ↔ pixel-space matrices.

Two groups of small host-side (NumPy) computations on batches of matrices; no kernels.

**Parameterised affine** (2-D): :func:`affine_theta` builds θ (N, 2, 3) from a rotation
angle, scale, shear and translation per sample, :func:`attention_theta` the STN paper's
attention θ (isotropic scale + translation); their ``*_backward`` map ∂L/∂θ (from
:func:`~stn_numba.warp_affine_backward` or :func:`~stn_numba.affine_grid_backward`) to the
gradients of the parameters.

**Pixel-space matrices**: :func:`theta_from_cv2` / :func:`theta_to_cv2` convert between θ
and OpenCV's 2×3 ``cv2.warpAffine`` matrices, :func:`theta_from_scipy` /
:func:`theta_to_scipy` between θ and ``scipy.ndimage.affine_transform``'s (matrix, offset),
2-D and 3-D; :func:`warp_affine_pixels` warps with such a matrix directly.

Conventions
-----------
θ maps *output* normalised coordinates (x, y[, z]) to *input* normalised coordinates, as
in :func:`~stn_numba.affine_grid` (x runs along W, y along H and points down, z along D).
Sizes here are *spatial* shapes in array order, (H, W) or (D, H, W), never OpenCV's
(W, H) ``dsize``. A pixel index i on an axis of size S is the centre of pixel i in both
OpenCV and scipy; it relates to the normalised coordinate g:
``g = (2 i + 1) / S - 1`` (align_corners=False) or ``g = 2 i / (S - 1) - 1``
(align_corners=True). An output axis of size 1 has g = 0 at its only pixel, as
``affine_grid``'s base grid does.
"""

import numbers
from collections import namedtuple

import numpy as np

from ._layout import Layout
from ._validate import (
    as_float_array,
    as_int_tuple,
    check_bool,
    check_device,
    describe,
    foreign_array,
    is_gpu_array,
)

__all__ = [
    "AffineThetaGrads",
    "AttentionThetaGrads",
    "PointsGrads",
    "affine_from_points",
    "affine_from_points_backward",
    "affine_theta",
    "affine_theta_backward",
    "attention_theta",
    "attention_theta_backward",
    "perspective_from_points",
    "perspective_from_points_backward",
    "rotation_matrix",
    "theta_from_cv2",
    "theta_from_scipy",
    "theta_to_cv2",
    "theta_to_scipy",
    "warp_affine_pixels",
]

AffineThetaGrads = namedtuple("AffineThetaGrads", ["angle", "scale", "shear", "translation"])
AffineThetaGrads.__doc__ = """Gradients returned by :func:`affine_theta_backward`: one field per
parameter, each of the shape the parameter was given in, or None where it was not given."""

AttentionThetaGrads = namedtuple("AttentionThetaGrads", ["scale", "translation"])
AttentionThetaGrads.__doc__ = """Gradients returned by :func:`attention_theta_backward`."""

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# ----------------------------------------------------------------------------
# Shared helpers: host copies, dtypes, device results
# ----------------------------------------------------------------------------


def _host(value, name):
    """``value`` as a NumPy array on the host, and the dtype it fixes (None if it is weak).

    GPU arrays are copied to the host; Python numbers and integer arrays are "weak"
    (they take the dtype of the float arrays beside them, float64 when there are none).
    """
    value = foreign_array(value, name)
    if is_gpu_array(value):
        arr = as_float_array(value, name)
        return np.asarray(arr.copy_to_host(), dtype=np.float64), np.dtype(arr.dtype)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number or an array of numbers; got {describe(value)}")
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise TypeError(
            f"{name} must be a number or an array of numbers; got {describe(value)}"
        ) from exc
    kind = arr.dtype.kind
    if kind == "f" and arr.dtype.itemsize in (4, 8):
        return arr.astype(np.float64), arr.dtype.newbyteorder("=")
    if kind in "iu" and not isinstance(value, (bool, np.bool_)):
        return arr.astype(np.float64), None
    raise TypeError(
        f"{name} must be float32/float64 (or integer) numbers; got {describe(value)}"
        + (" (convert with .astype(np.float64))" if kind in "fc" else "")
    )


def _result_dtype(dtype, fixed):
    """The dtype of the results: ``dtype`` if given, else the one float dtype in ``fixed``."""
    if dtype is not None:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32, float64 or None; got {dtype!r}") from None
        if dt not in _FLOATS:
            raise TypeError(f"dtype must be float32, float64 or None; got {dt}")
        return dt
    dts = {name: dt for name, dt in fixed.items() if dt is not None}
    if len(set(dts.values())) > 1:
        listed = ", ".join(f"{k} is {v}" for k, v in dts.items())
        raise TypeError(
            f"array arguments must share one dtype; {listed} (cast them, or pass dtype=)"
        )
    return next(iter(dts.values()), np.dtype(np.float64))


def _device_of(device, values):
    """(device string, True when the results go back to the GPU)."""
    gpu = {k: v for k, v in values.items() if v is not None}
    dev = check_device(device, gpu)
    return dev, any(is_gpu_array(v) for v in gpu.values())


def _ship(result, to_gpu):
    if not to_gpu:
        return result
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(result))


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, down to ``shape``."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return np.asarray(grad).reshape(shape)


# ----------------------------------------------------------------------------
# Parameterised affine
# ----------------------------------------------------------------------------

# name -> (allowed ndims, whether the last axis must be 2, what it is)
_PARAM_SHAPES = {
    "angle": ((0, 1), False, "() or (N,)"),
    "scale": ((0, 1, 2), None, "() or (N,) (isotropic) or (N, 2) (sx, sy)"),
    "shear": ((0, 1), False, "() or (N,)"),
    "translation": ((1, 2), True, "(2,) or (N, 2) (tx, ty)"),
}


def _params(values, batch, batch_label="batch"):
    """Validate the given parameters; return ({name: float64 array}, N, {name: dtype})."""
    arrays, fixed, batches = {}, {}, {}
    for name, value in values.items():
        if value is None:
            continue
        arr, dt = _host(value, name)
        ndims, last2, what = _PARAM_SHAPES[name]
        if arr.ndim not in ndims or ((last2 or arr.ndim == 2) and arr.shape[-1] != 2):
            raise ValueError(f"{name} must have shape {what}; got {arr.shape}")
        batched = arr.ndim == 2 or (arr.ndim == 1 and name != "translation")
        if batched and arr.shape[0] != 1:
            batches[name] = arr.shape[0]
        arrays[name], fixed[name] = arr, dt
    if batch is not None:
        if isinstance(batch, (bool, np.bool_)) or not isinstance(batch, (int, np.integer)):
            raise TypeError(f"batch must be an int or None; got {describe(batch)}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1; got {batch}")
    sizes = set(batches.values()) | ({int(batch)} if batch is not None else set())
    if len(sizes) > 1:
        listed = ", ".join(f"{k} has {v}" for k, v in batches.items())
        listed += f", {batch_label}={batch}" if batch is not None else ""
        raise ValueError(f"the parameters' batch sizes (leading axes) disagree: {listed}")
    n = sizes.pop() if sizes else 1
    return arrays, n, fixed


def _factors(arrays, n):
    """R, S, H (each (n, 2, 2), float64) and t (n, 2) of the given parameters."""
    eye = np.broadcast_to(np.eye(2), (n, 2, 2))
    R = S = H = eye
    if "angle" in arrays:
        a = np.broadcast_to(arrays["angle"], (n,))
        c, s = np.cos(a), np.sin(a)
        R = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    if "scale" in arrays:
        sc = arrays["scale"]
        sxy = np.broadcast_to(sc[..., None] if sc.ndim < 2 else sc, (n, 2))
        S = sxy[:, :, None] * np.eye(2)
    if "shear" in arrays:
        H = np.zeros((n, 2, 2))
        H[:, 0, 0] = H[:, 1, 1] = 1.0
        H[:, 0, 1] = np.broadcast_to(arrays["shear"], (n,))
    t = np.zeros((n, 2))
    if "translation" in arrays:
        t = np.broadcast_to(arrays["translation"], (n, 2))
    return R, S, H, t


def affine_theta(
    angle=None,
    scale=None,
    shear=None,
    translation=None,
    *,
    batch=None,
    dtype=None,
    device=None,
    size=None,
    align_corners=False,
):
    """θ (N, 2, 3) from a rotation angle, scale, shear and translation per sample.

    ``θ = [R(angle) · S(scale) · H(shear) | translation]`` with::

        R = [[cos a, -sin a],    S = [[sx, 0 ],    H = [[1, k],
             [sin a,  cos a]]         [0,  sy]]         [0, 1]]

    applied to the *output* normalised point p = (x, y): the input point read is
    ``R · S · H · p + t`` (shear first, then scale, then rotation, then translation).

    What the warped image (``stn.warp_affine(x, θ)``) shows, with y pointing down:

    - **angle** a > 0 turns the image content *counter-clockwise* on screen by a
      radians about the centre (like ``cv2.getRotationMatrix2D`` and torchvision's
      ``rotate`` with a positive angle). Without ``size`` the rotation is in normalised
      coordinates, where x and y both run over [-1, 1] whatever the image's shape: on a
      non-square image it is a rotation of the [-1, 1]² square, which the pixels see as
      a rotation combined with a shear and a stretch (a 90° turn of a 48×64 image
      stretches its content by 4/3 along one axis and squeezes it along the other).
      Pass ``size=(H, W)`` for a rigid rotation of the pixels, or use
      :func:`rotation_matrix` (OpenCV's ``getRotationMatrix2D``) with
      :func:`theta_from_cv2`.
    - **scale** is the size of the sampled input window relative to the output: s < 1
      zooms in (s = 0.5 shows the central half, enlarged), s > 1 zooms out.
    - **shear** k: the input x read is ``x + k·y``; k > 0 slants vertical lines of the
      content so that their lower ends lean left.
    - **translation** (tx, ty): the output's centre shows the input point (tx, ty), i.e.
      the content moves by (-tx, -ty) in normalised units (1 = half the image's
      width / height), with or without ``size``.

    With ``size=(H, W)`` the angle, scale and shear act in pixel units about the image
    centre: ``θ = [D⁻¹ · R · S · H · D | t]`` with ``D = diag(W, H)``
    (``diag(W - 1, H - 1)`` for align_corners=True), the normalised → pixel scaling up to
    a common factor. A rotation then turns the pixels rigidly, a scale s enlarges both
    axes by the same number of pixels per pixel, and ``warp_affine(x, θ)`` equals
    ``cv2.warpAffine`` with ``cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2),
    degrees(angle), 1 / s)``. θ is then for input and output images of that size (only
    their aspect ratio matters for align_corners=False).

    Parameters
    ----------
    angle : float or array_like, () or (N,), optional
        Rotation in radians; omitted = 0.
    scale : float or array_like, () or (N,) or (N, 2), optional
        Isotropic scale s, or (sx, sy) per sample; omitted = 1. A 1-D ``scale`` is
        always isotropic (one value per sample): for one (sx, sy) shared by all samples
        pass shape (1, 2).
    shear : float or array_like, () or (N,), optional
        The x-shear factor k; omitted = 0.
    translation : array_like, (2,) or (N, 2), optional
        (tx, ty) in normalised units; omitted = 0.
    batch : int, optional
        N, when no parameter fixes it. A parameter's batch axis of size 1, or a 0-d
        parameter, or a (2,) translation broadcasts to N (NumPy rules); all others
        must agree. Without batch or a batched parameter, N = 1.
    dtype : {None, float32, float64}, optional
        Result dtype. None: the dtype of the float32/float64 array parameters (which
        must agree; a TypeError otherwise), float64 when all are Python numbers or
        integers. Computed in float64 and rounded once.
    device : {None, "cpu", "cuda"}
        Where the result lives: computed on the host, returned as a Numba device array
        when a parameter is a GPU array, else as a NumPy array (also for "cuda").
    size : sequence of int, (H, W), optional
        The images' spatial shape (array order): angle, scale and shear then describe
        the map in pixel units about the image centre (see above). None (the default):
        in normalised units.
    align_corners : bool, default False
        Only with ``size``: the convention θ is made for (the one given to
        ``warp_affine``), which fixes the pixel scaling D.

    Returns
    -------
    theta : ndarray, (N, 2, 3)
        ``theta[n] = [R S H | t]`` (``[D⁻¹ R S H D | t]`` with size), ready for
        :func:`~stn_numba.warp_affine` and :func:`~stn_numba.affine_grid`.

    Raises
    ------
    TypeError
        A parameter that is not numeric, mixed float dtypes, a bad ``dtype``, size not
        a sequence of ints, align_corners not a bool.
    ValueError
        A parameter of the wrong shape, batch sizes that disagree; size not (H, W) of
        entries >= 1, an axis of size 1 with align_corners=True, align_corners=True
        without size.

    See Also
    --------
    affine_theta_backward, attention_theta, rotation_matrix

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> stn.affine_theta(angle=np.pi / 2).round(12)          # 90°, counter-clockwise
    array([[[ 0., -1.,  0.],
            [ 1.,  0.,  0.]]])
    >>> stn.affine_theta(scale=[0.5, 2.0], translation=[0.1, 0.0])  # two samples
    array([[[0.5, 0. , 0.1],
            [0. , 0.5, 0. ]],
    <BLANKLINE>
           [[2. , 0. , 0.1],
            [0. , 2. , 0. ]]])
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> stn.warp_affine(x, stn.affine_theta(angle=np.pi / 2), align_corners=True)[0, 0].round(9)
    array([[2., 5., 8.],
           [1., 4., 7.],
           [0., 3., 6.]])

    On a non-square image the plain θ rotates the [-1, 1]² square (the 3×5 image's
    middle row is squeezed into 3 rows and smeared over the middle 3 columns); with
    ``size`` the pixels turn rigidly (the middle row's central three pixels make the
    middle column):

    >>> x = np.zeros((1, 1, 3, 5))
    >>> x[0, 0, 1] = [1, 2, 3, 4, 5]
    >>> stn.warp_affine(x, stn.affine_theta(angle=np.pi / 2), align_corners=True)[0, 0].round(9)
    array([[0. , 2.5, 5. , 2.5, 0. ],
           [0. , 1.5, 3. , 1.5, 0. ],
           [0. , 0.5, 1. , 0.5, 0. ]])
    >>> theta = stn.affine_theta(angle=np.pi / 2, size=(3, 5), align_corners=True)
    >>> stn.warp_affine(x, theta, align_corners=True)[0, 0].round(9)
    array([[0., 0., 4., 0., 0.],
           [0., 0., 3., 0., 0.],
           [0., 0., 2., 0., 0.]])
    """
    values = {"angle": angle, "scale": scale, "shear": shear, "translation": translation}
    _, to_gpu = _device_of(device, values)
    arrays, n, fixed = _params(values, batch)
    dt = _result_dtype(dtype, fixed)
    d = _aspect(size, align_corners)
    R, S, H, t = _factors(arrays, n)
    theta = np.empty((n, 2, 3))
    theta[:, :, :2] = R @ S @ H
    if d is not None:
        theta[:, :, :2] *= d[None, :] / d[:, None]  # D⁻¹ · M · D
    theta[:, :, 2] = t
    return _ship(theta.astype(dt), to_gpu)


def _aspect(size, align_corners):
    """diag(D) of affine_theta's pixel frame, (x, y) order, or None without ``size``."""
    align_corners = check_bool(align_corners, "align_corners")
    if size is None:
        if align_corners:
            raise ValueError(
                "align_corners is used only with size=(H, W) (it fixes the pixel frame); "
                "without size, affine_theta works in normalised units for either convention"
            )
        return None
    h, w = as_int_tuple(size, "size", 2, 1)
    d = np.array([w - 1.0, h - 1.0]) if align_corners else np.array([float(w), float(h)])
    if align_corners and min(h, w) == 1:
        raise ValueError(
            f"size {(h, w)!r} has an axis of size 1: with align_corners=True its pixels "
            "have no extent along it, so no pixel frame exists; use align_corners=False"
        )
    return d


def affine_theta_backward(
    grad_theta,
    angle=None,
    scale=None,
    shear=None,
    translation=None,
    *,
    device=None,
    size=None,
    align_corners=False,
):
    """Gradients of :func:`affine_theta` with respect to the parameters it was given.

    Parameters
    ----------
    grad_theta : array_like, (N, 2, 3)
        ∂L/∂θ, e.g. the second result of :func:`~stn_numba.warp_affine_backward`.
    angle, scale, shear, translation : optional
        The values given to the forward (the gradients depend on them); pass exactly the
        parameters the forward was given. A parameter left out is taken as absent from
        the forward (identity factor) and gets no gradient.
    device : {None, "cpu", "cuda"}
        As in :func:`affine_theta`.
    size, align_corners : optional
        As given to the forward: with ``size``, θ's linear part is ``D⁻¹ M D`` and the
        formulas below apply to ``G ⊙ (D⁻¹ 1 1ᵀ D)``, i.e. ``G[i, j] · D[j] / D[i]``, in
        place of G.

    Returns
    -------
    grads : AffineThetaGrads
        Named tuple ``(angle, scale, shear, translation)``: ∂L/∂parameter, each of the
        shape and (float) dtype the parameter was given in (a broadcast parameter's
        gradient is summed over the samples it was broadcast to), in grad_theta's dtype;
        None for a parameter not given. With ``G = grad_theta[:, :, :2]`` and
        ``M = R S H``::

            ∂L/∂a  = Σ G ⊙ (∂R/∂a · S · H)          ∂R/∂a = [[-sin a, -cos a], [cos a, -sin a]]
            ∂L/∂sx = (Rᵀ G Hᵀ)[0, 0],  ∂L/∂sy = (Rᵀ G Hᵀ)[1, 1]   (isotropic: their sum)
            ∂L/∂k  = ((R S)ᵀ G)[0, 1]
            ∂L/∂t  = grad_theta[:, :, 2]

    Raises
    ------
    TypeError, ValueError
        As :func:`affine_theta` (size and align_corners included); grad_theta not of
        shape (N, 2, 3), or parameters whose batch disagrees with it.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> g = np.array([[[1.0, 0, 0.5], [0, 1.0, -0.5]]])   # ∂L/∂θ
    >>> stn.affine_theta_backward(g, scale=2.0, translation=[0.0, 0.0])
    AffineThetaGrads(angle=None, scale=array(2.), shear=None, translation=array([ 0.5, -0.5]))
    """
    values = {"angle": angle, "scale": scale, "shear": shear, "translation": translation}
    _, to_gpu = _device_of(device, {"grad_theta": grad_theta, **values})
    g, gdt = _host(grad_theta, "grad_theta")
    gdt = gdt if gdt is not None else np.dtype(np.float64)
    if g.ndim != 3 or g.shape[1:] != (2, 3):
        raise ValueError(f"grad_theta must have shape (N, 2, 3); got {g.shape}")
    n = g.shape[0]
    arrays, _, _ = _params(values, n, "grad_theta.shape[0]")
    d = _aspect(size, align_corners)
    R, S, H, _ = _factors(arrays, n)
    G = g[:, :, :2]
    if d is not None:
        G = G * (d[None, :] / d[:, None])  # ∂L/∂M of θ = D⁻¹ M D
    out = {}
    if "angle" in arrays:
        a = np.broadcast_to(arrays["angle"], (n,))
        c, s = np.cos(a), np.sin(a)
        dR = np.stack([np.stack([-s, -c], -1), np.stack([c, -s], -1)], -2)
        out["angle"] = np.sum(G * (dR @ S @ H), axis=(1, 2))
    if "scale" in arrays:
        gS = np.swapaxes(R, 1, 2) @ G @ np.swapaxes(H, 1, 2)
        gxy = np.stack([gS[:, 0, 0], gS[:, 1, 1]], -1)
        out["scale"] = gxy if arrays["scale"].ndim == 2 else gxy.sum(-1)
    if "shear" in arrays:
        out["shear"] = (np.swapaxes(R @ S, 1, 2) @ G)[:, 0, 1]
    if "translation" in arrays:
        out["translation"] = g[:, :, 2]
    grads = {k: _ship(_unbroadcast(v, arrays[k].shape).astype(gdt), to_gpu) for k, v in out.items()}
    return AffineThetaGrads(**{k: grads.get(k) for k in AffineThetaGrads._fields})


def attention_theta(scale, translation, *, batch=None, dtype=None, device=None):
    """The STN paper's attention θ: isotropic scale and translation.

    ``θ = [[s, 0, tx], [0, s, ty]]``: the output shows the window of half-size s
    (normalised) centred at (tx, ty) of the input, i.e. a glimpse; ``affine_theta(
    scale=s, translation=t)`` with s isotropic.

    Parameters
    ----------
    scale : float or array_like, () or (N,)
        s; s < 1 zooms in.
    translation : array_like, (2,) or (N, 2)
        The window centre (tx, ty), normalised.
    batch, dtype, device
        As in :func:`affine_theta`.

    Returns
    -------
    theta : ndarray, (N, 2, 3)

    Raises
    ------
    TypeError, ValueError
        As :func:`affine_theta`; a scale that is not () or (N,).

    Examples
    --------
    >>> import stn_numba as stn
    >>> stn.attention_theta(0.5, [0.25, -0.5])
    array([[[ 0.5 ,  0.  ,  0.25],
            [ 0.  ,  0.5 , -0.5 ]]])
    """
    _check_isotropic(scale)
    return affine_theta(
        scale=scale, translation=translation, batch=batch, dtype=dtype, device=device
    )


def _check_isotropic(scale):
    shape = np.shape(scale) if not is_gpu_array(scale) else tuple(scale.shape)
    if len(shape) > 1:
        raise ValueError(f"scale must have shape () or (N,) (isotropic); got {shape}")


def attention_theta_backward(grad_theta, scale, translation, *, device=None):
    """Gradients of :func:`attention_theta`.

    Parameters
    ----------
    grad_theta : array_like, (N, 2, 3)
        ∂L/∂θ.
    scale, translation
        As given to the forward (only their shapes matter: θ is linear in them).
    device : {None, "cpu", "cuda"}
        As in :func:`affine_theta`.

    Returns
    -------
    grads : AttentionThetaGrads
        Named tuple ``(scale, translation)`` of the given shapes, grad_theta's dtype:
        ``∂L/∂s = grad_theta[:, 0, 0] + grad_theta[:, 1, 1]``,
        ``∂L/∂t = grad_theta[:, :, 2]`` (summed over samples a parameter was broadcast to).

    Raises
    ------
    TypeError, ValueError
        As :func:`affine_theta_backward`.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> g = np.array([[[1.0, 3, 0.5], [4, 2.0, -0.5]]])
    >>> stn.attention_theta_backward(g, np.array([0.5]), np.array([[0.0, 0.0]]))
    AttentionThetaGrads(scale=array([3.]), translation=array([[ 0.5, -0.5]]))
    """
    _check_isotropic(scale)
    grads = affine_theta_backward(grad_theta, scale=scale, translation=translation, device=device)
    return AttentionThetaGrads(grads.scale, grads.translation)


# ----------------------------------------------------------------------------
# Pixel-space matrices
# ----------------------------------------------------------------------------


def _matrix(value, name, scalar_ok=False):
    """A float64 host copy of a matrix argument, and the dtype of the result."""
    if not scalar_ok and isinstance(value, (numbers.Number, np.generic)):
        raise TypeError(f"{name} must be an array (a matrix); got {describe(value)}")
    arr, dt = _host(value, name)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {arr!r}"[:300])
    return arr, dt if dt is not None else np.dtype(np.float64)


def _sizes(input_size, output_size, dims_allowed):
    """Validated (input_size, output_size) tuples of spatial sizes in array order."""
    what = " or ".join({2: "(H, W)", 3: "(D, H, W)"}[d] for d in dims_allowed)
    if input_size is None or np.ndim(input_size) != 1:
        raise TypeError(f"input_size must be a sequence {what}; got {describe(input_size)}")
    if len(input_size) not in dims_allowed:
        raise ValueError(f"input_size must be {what}; got {tuple(input_size)!r}")
    ins = as_int_tuple(input_size, "input_size", len(input_size), 1)
    if output_size is None:
        return ins, ins
    if np.ndim(output_size) != 1:
        raise TypeError(f"output_size must be a sequence {what}; got {describe(output_size)}")
    return ins, as_int_tuple(output_size, "output_size", len(ins), 1)


def _to_norm(sizes, align_corners):
    """Homogeneous map pixel index → normalised coordinate, (x, y[, z]) order.

    ``sizes`` in array order. An axis of size 1 gets g = 2 i (index 0 ↔ 0, affine_grid's
    base grid), for either align_corners.
    """
    d = len(sizes)
    N = np.eye(d + 1)
    for k in range(d):  # coordinate k (x, y, z) runs along array axis d - 1 - k
        s = sizes[d - 1 - k]
        if s == 1:
            a, b = 2.0, 0.0
        elif align_corners:
            a, b = 2.0 / (s - 1), -1.0
        else:
            a, b = 2.0 / s, 1.0 / s - 1.0
        N[k, k], N[k, d] = a, b
    return N


def _to_pixels(sizes, align_corners):
    """Homogeneous map normalised coordinate → pixel index of the sampler.

    With align_corners=True an axis of size 1 maps every coordinate to 0 (singular).
    """
    d = len(sizes)
    U = np.eye(d + 1)
    for k in range(d):
        s = sizes[d - 1 - k]
        if align_corners:
            a = b = (s - 1) / 2.0
        else:
            a, b = s / 2.0, (s - 1) / 2.0
        U[k, k], U[k, d] = a, b
    return U


def _homogeneous(m):
    """(..., d, d+1) → (..., d+1, d+1) with bottom row (0, ..., 0, 1)."""
    d = m.shape[-2]
    h = np.zeros((*m.shape[:-2], d + 1, d + 1))
    h[..., :d, :] = m
    h[..., d, d] = 1.0
    return h


def _inverse(h, name):
    """Inverses of homogeneous affine matrices; ValueError naming ``name`` if singular."""
    d = h.shape[-1] - 1
    lin = h[..., :d, :d]
    # conditioning, not the determinant: det(1e-300·I) underflows to 0 although the
    # matrix is perfectly invertible, and det(diag(1e6, 1e-6)) = 1 although it is not
    sv = np.linalg.svd(lin, compute_uv=False)
    bad = ~(sv[..., -1] > 1e-12 * sv[..., 0])
    if np.any(bad):
        where = np.flatnonzero(bad)[0] if np.ndim(bad) else 0
        sample = f" (sample {where})" if h.ndim == 3 else ""
        big, small = sv.reshape(-1, d)[where, 0], sv.reshape(-1, d)[where, -1]
        raise ValueError(
            f"{name}{sample} is singular to working precision (the singular values of its "
            f"{d}x{d} linear part range from {big:.3g} down to {small:.3g}, a ratio below "
            f"1e-12), so the map cannot be inverted"
        )
    return np.linalg.inv(h)


def _theta_from_pixel_map(A, in_sizes, out_sizes, align_corners, name):
    """θ = N_in · A · U_out for A (..., d+1, d+1) mapping output to input pixels (x, y[, z])."""
    if align_corners and min(in_sizes) == 1:
        raise ValueError(
            f"input_size {in_sizes!r} has an axis of size 1: with align_corners=True every "
            "normalised coordinate samples its only pixel, so a pixel map that moves along that "
            f"axis has no θ; use align_corners=False for {name}"
        )
    U_out = np.linalg.inv(_to_norm(out_sizes, align_corners))
    theta = _to_norm(in_sizes, align_corners) @ A @ U_out
    return theta[..., :-1, :]


def _pixel_map_from_theta(theta, in_sizes, out_sizes, align_corners):
    """A = U_in · θ · N_out (..., d+1, d+1): output pixel → input pixel (x, y[, z])."""
    return (
        _to_pixels(in_sizes, align_corners)
        @ _homogeneous(theta)
        @ _to_norm(out_sizes, align_corners)
    )


def _theta_arg(theta, name="theta"):
    t, dt = _matrix(theta, name)
    if t.ndim not in (2, 3) or t.shape[-2:] not in ((2, 3), (3, 4)):
        raise ValueError(
            f"{name} must have shape (2, 3), (N, 2, 3), (3, 4) or (N, 3, 4); got {t.shape}"
        )
    return t, dt


_SIZES_DOC = """input_size : sequence of int, (H, W){3d}
        The input image's spatial shape, in array order (not OpenCV's (W, H)).
    output_size : sequence of int, optional
        The output's spatial shape; None = input_size."""


def _batched_arg(value, name, shapes, what):
    """A float64 host copy of a batchable argument, its dtype, and its batch (None if unbatched).

    ``shapes``: (the unbatched ndim, the trailing shape) of the argument.
    """
    arr, dt = _host(value, name)
    ndim, tail = shapes
    if arr.ndim not in (ndim, ndim + 1) or arr.shape[arr.ndim - ndim :] != tail:
        raise ValueError(f"{name} must have shape {what}; got {arr.shape}")
    return arr, dt, (arr.shape[0] if arr.ndim > ndim else None)


def _common_batch(batches):
    """The one batch size of the batched arguments ({name: N or None}), None if none is."""
    given = {k: v for k, v in batches.items() if v is not None}
    if len(set(given.values())) > 1:
        listed = ", ".join(f"{k} has {v}" for k, v in given.items())
        raise ValueError(f"the arguments' batch sizes (leading axes) disagree: {listed}")
    return next(iter(given.values()), None)


def rotation_matrix(center, angle, scale=None, *, dtype=None, device=None):
    """OpenCV's rotation matrix, ``cv2.getRotationMatrix2D(center, angle, scale)``, batched.

    ``M = [[a, b, (1 - a)·cx - b·cy], [-b, a, b·cx + (1 - a)·cy]]`` with
    ``a = scale·cos(angle)``, ``b = scale·sin(angle)`` (angle in degrees), the matrix
    OpenCV returns: in pixel coordinates (x, y) = (column, row), y down, it maps each
    *input* pixel to the *output* pixel it lands on, turning the content
    counter-clockwise on screen by ``angle`` degrees about ``center`` and enlarging it by
    ``scale``. ``cv2.warpAffine`` inverts it (unless ``WARP_INVERSE_MAP``), and so does
    :func:`theta_from_cv2`: ``stn.warp_affine(x, theta_from_cv2(M, (H, W))[None])`` is
    ``cv2.warpAffine(img, M, (W, H))``, a rigid rotation of the pixels on any image
    shape. About the image centre, ``center = ((W - 1) / 2, (H - 1) / 2)``, this is
    ``affine_theta(angle=radians(angle), scale=1 / scale, size=(H, W))``.

    Parameters
    ----------
    center : array_like, (2,) or (N, 2)
        The centre of rotation (cx, cy) in pixels, OpenCV's (x, y) order.
    angle : float or array_like, () or (N,)
        Degrees; positive turns the content counter-clockwise on screen.
    scale : float or array_like, () or (N,), optional
        Isotropic enlargement of the content (OpenCV's; the inverse of
        :func:`affine_theta`'s scale, which is the size of the window read); omitted = 1
        (which, unlike a Python float 1.0, leaves the dtype to the other arguments).
    dtype : {None, float32, float64}, optional
        As in :func:`affine_theta`: None takes the dtype of the float32/float64 array
        arguments, float64 for Python numbers and integers; computed in float64.
    device : {None, "cpu", "cuda"}
        As in :func:`affine_theta`.

    Returns
    -------
    M : ndarray, (2, 3) or (N, 2, 3)
        (2, 3) when no argument has a batch axis (as ``cv2.getRotationMatrix2D``),
        (N, 2, 3) otherwise (the unbatched arguments apply to every sample): the shapes
        :func:`theta_from_cv2` takes and returns.

    Raises
    ------
    TypeError
        An argument that is not numeric, mixed float dtypes, a bad ``dtype``.
    ValueError
        An argument of the wrong shape, batch sizes that disagree.

    See Also
    --------
    theta_from_cv2, affine_theta, warp_affine_pixels

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> stn.rotation_matrix((2.0, 1.0), 90.0).round(12)     # cv2.getRotationMatrix2D
    array([[ 0.,  1.,  1.],
           [-1.,  0.,  3.]])
    >>> stn.rotation_matrix([[1.0, 1.0], [2.0, 0.0]], [90.0, 0.0], 2.0).shape
    (2, 2, 3)

    A 90° turn of a 3×5 image about its centre, as ``cv2.warpAffine`` does it: the
    middle row's central three pixels make the middle column.

    >>> x = np.zeros((1, 1, 3, 5))
    >>> x[0, 0, 1] = [1, 2, 3, 4, 5]
    >>> M = stn.rotation_matrix((2.0, 1.0), 90.0)               # about the centre
    >>> stn.warp_affine(x, stn.theta_from_cv2(M, (3, 5))[None])[0, 0].round(9)
    array([[0., 0., 4., 0., 0.],
           [0., 0., 3., 0., 0.],
           [0., 0., 2., 0., 0.]])
    """
    values = {"center": center, "angle": angle, "scale": scale}
    _, to_gpu = _device_of(device, values)
    c, c_dt, c_n = _batched_arg(center, "center", (1, (2,)), "(2,) or (N, 2) (cx, cy)")
    a, a_dt, a_n = _batched_arg(angle, "angle", (0, ()), "() or (N,)")
    scale = 1 if scale is None else scale
    s, s_dt, s_n = _batched_arg(scale, "scale", (0, ()), "() or (N,) (isotropic)")
    n = _common_batch({"center": c_n, "angle": a_n, "scale": s_n})
    dt = _result_dtype(dtype, {"center": c_dt, "angle": a_dt, "scale": s_dt})
    shape = (n,) if n is not None else ()
    c = np.broadcast_to(c, (*shape, 2))
    rad = np.deg2rad(np.broadcast_to(a, shape))
    s = np.broadcast_to(s, shape)
    alpha, beta = s * np.cos(rad), s * np.sin(rad)
    cx, cy = c[..., 0], c[..., 1]
    M = np.empty((*shape, 2, 3))
    M[..., 0, 0], M[..., 0, 1] = alpha, beta
    M[..., 0, 2] = (1.0 - alpha) * cx - beta * cy
    M[..., 1, 0], M[..., 1, 1] = -beta, alpha
    M[..., 1, 2] = beta * cx + (1.0 - alpha) * cy
    return _ship(M.astype(dt), to_gpu)


def theta_from_cv2(
    M, input_size, output_size=None, *, inverse_map=False, align_corners=False, device=None
):
    """θ that makes :func:`~stn_numba.warp_affine` do what ``cv2.warpAffine`` does with M.

    ``cv2.warpAffine(img, M, (W_out, H_out), flags=cv2.INTER_LINEAR)`` equals
    ``stn.warp_affine(x, θ, (H_out, W_out), align_corners=ac)`` with
    ``θ = theta_from_cv2(M, (H_in, W_in), (H_out, W_out), align_corners=ac)[None]``
    and ``x = img.transpose(2, 0, 1)[None]`` (img (H, W, C)) or ``img[None, None]``,
    for either ``ac`` (the pixel map is the same; only reflection padding depends on it).
    OpenCV's default border (``BORDER_CONSTANT``, value 0) is ``padding_mode="zeros"``,
    ``BORDER_REPLICATE`` is "border", ``BORDER_REFLECT_101`` is "reflection" with
    align_corners=True and ``BORDER_REFLECT`` "reflection" with align_corners=False.
    OpenCV's bilinear may round the source point to 1/32 pixel (fixed point, as
    OpenCV 4's ``warpAffine`` does), so results agree to that precision, not to
    float rounding. :func:`warp_affine_pixels` does all this in one call.

    OpenCV's pixel coordinates are (x, y) = (column, row), integers at pixel centres.
    Without ``WARP_INVERSE_MAP``, M maps an input pixel to the output pixel it lands on
    (cv2 inverts it); with it, M maps each output pixel to the input point it reads.

    Parameters
    ----------
    M : array_like, (2, 3) or (N, 2, 3)
        OpenCV affine matrices (e.g. from ``cv2.getRotationMatrix2D`` or
        ``cv2.getAffineTransform``), acting on (x, y, 1).
    input_size : sequence of int, (H, W)
        The input image's spatial shape, in array order (OpenCV's ``dsize`` is (W, H)!).
    output_size : sequence of int, (H, W), optional
        The output's spatial shape (``dsize`` reversed); None = input_size.
    inverse_map : bool, default False
        True when the cv2 call has ``flags=... | cv2.WARP_INVERSE_MAP``.
    align_corners : bool, default False
        The convention of the θ produced (as given to ``warp_affine``).
    device : {None, "cpu", "cuda"}
        As in :func:`affine_theta`.

    Returns
    -------
    theta : ndarray, (2, 3) or (N, 2, 3)
        Batched like M. M's dtype if float32/float64, else float64; computed in float64.

    Raises
    ------
    TypeError
        M not numeric, sizes not sequences of ints, flags not bools.
    ValueError
        M of the wrong shape, non-finite, or singular (when inverse_map is False);
        sizes of the wrong length or < 1; align_corners=True with an input axis of
        size 1 (every coordinate samples that pixel: no θ can move along it).

    See Also
    --------
    theta_to_cv2, warp_affine_pixels

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> M = np.array([[1.0, 0, 2], [0, 1, 0]])           # move the content 2 px right
    >>> stn.theta_from_cv2(M, (4, 4))                    # reads 2 px (1 unit) to the left
    array([[ 1.,  0., -1.],
           [ 0.,  1.,  0.]])
    """
    _, to_gpu = _device_of(device, {"M": M})
    m, dt = _matrix(M, "M")
    if m.ndim not in (2, 3) or m.shape[-2:] != (2, 3):
        raise ValueError(f"M must have shape (2, 3) or (N, 2, 3); got {m.shape}")
    ins, outs = _sizes(input_size, output_size, (2,))
    inverse_map = check_bool(inverse_map, "inverse_map")
    align_corners = check_bool(align_corners, "align_corners")
    A = _homogeneous(m)
    if not inverse_map:
        A = _inverse(A, "M")
    theta = _theta_from_pixel_map(A, ins, outs, align_corners, "theta_from_cv2")
    return _ship((theta + 0.0).astype(dt), to_gpu)


def theta_to_cv2(
    theta, input_size, output_size=None, *, inverse_map=False, align_corners=False, device=None
):
    """OpenCV matrix M for which ``cv2.warpAffine`` does what ``warp_affine`` does with θ.

    The inverse of :func:`theta_from_cv2`: ``stn.warp_affine(x, θ[None], (H_out, W_out),
    align_corners=ac)`` ≈ ``cv2.warpAffine(img, M, (W_out, H_out))`` with
    ``M = theta_to_cv2(θ, (H_in, W_in), (H_out, W_out), align_corners=ac)``
    (zeros padding; add ``flags=cv2.WARP_INVERSE_MAP`` when inverse_map=True).

    Parameters
    ----------
    theta : array_like, (2, 3) or (N, 2, 3)
        Normalised affine maps, output → input.
    input_size, output_size : sequence of int, (H, W)
        Spatial shapes in array order; output_size None = input_size.
    inverse_map : bool, default False
        False: M maps input pixels to output pixels (cv2's default); True: M maps output
        pixels to input pixels (for ``cv2.WARP_INVERSE_MAP``).
    align_corners : bool, default False
        The convention θ was made for.
    device : {None, "cpu", "cuda"}
        As in :func:`affine_theta`.

    Returns
    -------
    M : ndarray, (2, 3) or (N, 2, 3)
        Batched like θ, θ's dtype (float64 for integer input).

    Raises
    ------
    TypeError, ValueError
        As :func:`theta_from_cv2`; θ singular when inverse_map is False (including
        align_corners=True with an input axis of size 1).

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> theta = np.array([[1.0, 0, -1], [0, 1, 0]])
    >>> stn.theta_to_cv2(theta, (4, 4))
    array([[1., 0., 2.],
           [0., 1., 0.]])
    """
    _, to_gpu = _device_of(device, {"theta": theta})
    t, dt = _theta_arg(theta)
    if t.shape[-2:] != (2, 3):
        raise ValueError(f"theta must have shape (2, 3) or (N, 2, 3) for OpenCV; got {t.shape}")
    ins, outs = _sizes(input_size, output_size, (2,))
    inverse_map = check_bool(inverse_map, "inverse_map")
    align_corners = check_bool(align_corners, "align_corners")
    A = _pixel_map_from_theta(t, ins, outs, align_corners)
    if not inverse_map:
        A = _inverse(A, "theta (as a pixel map)")
    return _ship((A[..., :2, :] + 0.0).astype(dt), to_gpu)


def _swap_axes_order(h):
    """Conjugate homogeneous matrices by P (reverse the coordinate order, keep the 1)."""
    d = h.shape[-1] - 1
    p = list(range(d))[::-1] + [d]
    return h[..., p, :][..., :, p]


def theta_from_scipy(
    matrix, input_size, output_size=None, *, offset=0.0, align_corners=False, device=None
):
    """θ that makes :func:`~stn_numba.warp_affine` do what ``scipy.ndimage.affine_transform`` does.

    ``scipy.ndimage.affine_transform(img, matrix, offset, output_shape=out_shape, order=1,
    mode="grid-constant", prefilter=False)`` equals ``stn.warp_affine(img[None, None], θ,
    out_shape, align_corners=ac)[0, 0]`` with ``θ = theta_from_scipy(matrix, img.shape,
    out_shape, offset=offset, align_corners=ac)[None]``, to float rounding, 2-D and 3-D,
    for either ``ac``. scipy's ``mode="nearest"`` is ``padding_mode="border"``,
    ``"mirror"`` is "reflection" with align_corners=True and ``"reflect"`` is
    "reflection" with align_corners=False; ``"grid-wrap"`` is "wrap" (scipy's ``"wrap"``
    differs: its period is one pixel short); ``"grid-constant"`` (cval 0) is "zeros"
    (scipy's ``"constant"`` differs: it does not blend the half-pixel band outside).
    :func:`warp_affine_pixels` does all this in one call.

    scipy's coordinates are array indices in axis order, (row, col) = (y, x) or
    (plane, row, col) = (z, y, x), and the matrix maps *output* indices to *input*
    indices: ``in = matrix @ out + offset``.

    The argument order follows :func:`theta_from_cv2` (matrix, sizes), with ``offset``
    a keyword as it usually is in scipy calls.

    Parameters
    ----------
    matrix : array_like
        As ``affine_transform`` takes it, with d = len(input_size): (d,) a diagonal,
        (d, d) linear with ``offset``, (d, d + 1) or homogeneous (d + 1, d + 1) whose
        last column is the offset (``offset`` is then ignored, as scipy does; the
        bottom row must be (0, ..., 0, 1)); or a batch (N, d, d), (N, d, d + 1),
        (N, d + 1, d + 1).
    input_size : sequence of int, (H, W) or (D, H, W)
        The input's spatial shape (``img.shape``).
    output_size : sequence of int, optional
        ``output_shape``; None = input_size.
    offset : float or array_like, () or (d,) or (N, d), default 0.0
        As in scipy (index units, axis order).
    align_corners : bool, default False
        The convention of the θ produced.
    device : {None, "cpu", "cuda"}
        As in :func:`affine_theta`.

    Returns
    -------
    theta : ndarray, (2, 3) / (3, 4), or (N, 2, 3) / (N, 3, 4) for a batched matrix
        matrix's dtype if float32/float64, else float64 (offset's dtype is not used).

    Raises
    ------
    TypeError, ValueError
        Non-numeric or non-finite arguments, shapes that do not fit d, a homogeneous
        matrix with a wrong bottom row, sizes < 1, align_corners=True with an input axis
        of size 1.

    See Also
    --------
    theta_to_scipy, warp_affine_pixels

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> stn.theta_from_scipy(np.eye(2), (4, 4), offset=[0.0, 2.0])   # read 2 columns right
    array([[1., 0., 1.],
           [0., 1., 0.]])
    """
    _, to_gpu = _device_of(device, {"matrix": matrix, "offset": offset})
    mat, dt = _matrix(matrix, "matrix")
    ins, outs = _sizes(input_size, output_size, (2, 3))
    d = len(ins)
    align_corners = check_bool(align_corners, "align_corners")
    shapes = ((d, d), (d, d + 1), (d + 1, d + 1))
    if not (mat.shape == (d,) or (mat.ndim in (2, 3) and mat.shape[-2:] in shapes)):
        raise ValueError(
            f"matrix must have shape ({d},), ({d}, {d}), ({d}, {d + 1}) or ({d + 1}, {d + 1}), "
            f"or a batch of those 2-D shapes, for {d}-D input_size {ins!r}; got {mat.shape}"
        )
    if mat.ndim == 1:
        mat = np.diag(mat)
    if mat.shape[-1] == d + 1:
        if mat.shape[-2] == d + 1:
            bottom = np.zeros(d + 1)
            bottom[d] = 1.0
            if not np.all(mat[..., d, :] == bottom):
                raise ValueError(
                    f"matrix of shape {mat.shape} is homogeneous, so its bottom row must be "
                    f"{bottom.tolist()}; got {mat[..., d, :].tolist()}"
                )
        h = _homogeneous(mat[..., :d, :])
    else:
        off, _ = _matrix(offset, "offset", scalar_ok=True)
        if off.ndim > 2 or (off.ndim >= 1 and off.shape[-1] != d):
            raise ValueError(f"offset must be a number, ({d},) or (N, {d}); got {off.shape}")
        if off.ndim == 2 and (mat.ndim != 3 or off.shape[0] not in (1, mat.shape[0])):
            raise ValueError(
                f"offset of shape {off.shape} needs a batched matrix of the same batch; "
                f"matrix has shape {mat.shape}"
            )
        batch = mat.shape[:-2]
        h = np.zeros((*batch, d + 1, d + 1))
        h[..., :d, :d] = mat
        h[..., :d, d] = np.broadcast_to(off, (*batch, d)) if off.ndim else off
        h[..., d, d] = 1.0
    theta = _theta_from_pixel_map(_swap_axes_order(h), ins, outs, align_corners, "theta_from_scipy")
    return _ship((theta + 0.0).astype(dt), to_gpu)


def theta_to_scipy(theta, input_size, output_size=None, *, align_corners=False, device=None):
    """scipy's (matrix, offset) for which ``affine_transform`` does what ``warp_affine`` does.

    The inverse of :func:`theta_from_scipy`: ``stn.warp_affine(img[None, None], θ[None],
    out_shape, align_corners=ac)[0, 0]`` equals ``scipy.ndimage.affine_transform(img,
    matrix, offset, output_shape=out_shape, order=1, mode="grid-constant",
    prefilter=False)`` with ``matrix, offset = theta_to_scipy(θ, img.shape, out_shape,
    align_corners=ac)``; this is the ``P · U_in · θ · N_out · P``.

    Parameters
    ----------
    theta : array_like, (2, 3), (3, 4), (N, 2, 3) or (N, 3, 4)
        Normalised affine maps, output → input.
    input_size : sequence of int, (H, W) or (D, H, W)
        The input's spatial shape; its length must match θ.
    output_size : sequence of int, optional
        The output's spatial shape; None = input_size.
    align_corners : bool, default False
        The convention θ was made for.
    device : {None, "cpu", "cuda"}
        As in :func:`affine_theta`.

    Returns
    -------
    matrix : ndarray, (d, d) or (N, d, d)
        In axis order ((row, col) or (plane, row, col)), output index → input index.
    offset : ndarray, (d,) or (N, d)
        Both in θ's dtype (float64 for integer input).

    Raises
    ------
    TypeError, ValueError
        θ of a wrong shape or non-finite, sizes that do not match it.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> matrix, offset = stn.theta_to_scipy(np.array([[1.0, 0, 1], [0, 1, 0]]), (4, 4))
    >>> matrix, offset
    (array([[1., 0.],
           [0., 1.]]), array([0., 2.]))
    """
    _, to_gpu = _device_of(device, {"theta": theta})
    t, dt = _theta_arg(theta)
    d = t.shape[-2]
    ins, outs = _sizes(input_size, output_size, (2, 3))
    if len(ins) != d:
        raise ValueError(
            f"input_size must have {d} entries for theta of shape {t.shape}; got {ins!r}"
        )
    align_corners = check_bool(align_corners, "align_corners")
    h = _swap_axes_order(_pixel_map_from_theta(t, ins, outs, align_corners))
    matrix = (h[..., :d, :d] + 0.0).astype(dt)
    offset = (h[..., :d, d] + 0.0).astype(dt)
    return _ship(matrix, to_gpu), _ship(offset, to_gpu)


def warp_affine_pixels(
    input,
    matrix,
    size=None,
    mode="bilinear",
    padding_mode="zeros",
    align_corners=False,
    *,
    convention,
    inverse_map=False,
    offset=None,
    out=None,
    device=None,
    layout="NCHW",
    fill_value=None,
    output_dtype=None,
):
    """:func:`~stn_numba.warp_affine` with an OpenCV or scipy matrix in pixel units.

    One-line ports (``img`` (H, W) float, ``x = img[None, None]``; an (H, W, C) OpenCV
    image is ``img[None]`` with ``layout="NHWC"``, read in place)::

        cv2.warpAffine(img, M, (W, H))
            == stn.warp_affine_pixels(x, M, (H, W), convention="cv2")[0, 0]
        cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
            == stn.warp_affine_pixels(x, M, (H, W), convention="cv2", inverse_map=True)[0, 0]
        cv2.warpAffine(img_u8, M, (W, H), borderValue=255)  # uint8 in, uint8 out
            ~= stn.warp_affine_pixels(x_u8, M, (H, W), convention="cv2",
                                      padding_mode="constant", fill_value=255,
                                      output_dtype=np.uint8)[0, 0]
        scipy.ndimage.affine_transform(img, matrix, offset, output_shape=(H, W), order=1,
                                       mode="grid-constant", prefilter=False)
            == stn.warp_affine_pixels(x, matrix, (H, W), convention="scipy",
                                      offset=offset)[0, 0]

    Borders: OpenCV's default (``BORDER_CONSTANT``, value 0) and scipy's
    ``"grid-constant"`` are ``padding_mode="zeros"`` (the default); OpenCV's
    ``BORDER_REPLICATE`` / scipy's ``"nearest"`` are "border"; OpenCV's
    ``BORDER_REFLECT_101`` / scipy's ``"mirror"`` are "reflection" with
    align_corners=True; ``BORDER_REFLECT`` / ``"reflect"`` are "reflection" with
    align_corners=False; ``BORDER_WRAP`` / ``"grid-wrap"`` are "wrap". Interpolation:
    ``INTER_LINEAR`` / ``order=1`` are "bilinear" (trilinear in 3-D); scipy's
    ``order=0`` is "nearest" except at exact .5 ties (scipy rounds up, we to even);
    "bicubic" is PyTorch's (Keys, A = -0.75), which neither ``INTER_CUBIC`` nor scipy's
    spline ``order=3`` is.

    Precision: scipy's result is matched to float rounding. OpenCV's bilinear may round
    the source point to 1/32 pixel and use fixed-point weights (OpenCV 4's
    ``warpAffine``; OpenCV 5.0 was measured to agree to float32 rounding): the two then
    differ by up to
    ``(Lx + Ly) · (1/64 + 1/1024)``, Lx and Ly the largest differences between
    horizontally and vertically adjacent pixels (zeros outside).

    Parameters
    ----------
    input : ndarray, (N, C, H_in, W_in) or (N, C, D_in, H_in, W_in)
        float32 or float64, or uint8, uint16, int16 images (computed in float32, as
        :func:`~stn_numba.warp_affine` computes integer images in θ's dtype); 5-D only
        with convention="scipy".
    matrix : array_like
        convention="cv2": M (2, 3) or (N, 2, 3), (x, y) pixel coordinates, input →
        output (output → input with inverse_map=True). convention="scipy": any form
        :func:`theta_from_scipy` takes, (row, col[, plane]) indices, output → input.
        An unbatched matrix applies to every image; a batched one must have N matrices.
        Any float or integer dtype; θ is computed in float64 and cast to input's float
        dtype (float32 for integer images).
    size : sequence of int, optional
        Output spatial shape (H, W) or (D, H, W), array order (cv2's dsize reversed);
        None keeps the input's.
    mode, padding_mode : str
        As in :func:`~stn_numba.warp_affine`.
    align_corners : bool, default False
        Does not change the pixel map (it is fixed by the matrix); it only picks which
        "reflection" padding applies (see Borders above).
    convention : {"cv2", "scipy"}
        Required: the two conventions differ in axis order and map direction, so a
        default would silently give wrong results for the other.
    inverse_map : bool, default False
        cv2 only: the call had ``cv2.WARP_INVERSE_MAP``.
    offset : float or array_like, optional
        scipy only: ``affine_transform``'s offset (None = 0).
    out : ndarray, optional
        As in :func:`~stn_numba.warp_affine`.
    device : {None, "cpu", "cuda"}
        As in :func:`~stn_numba.warp_affine` (the matrix is converted on the host).
    layout : {"NCHW", "NHWC", "NCDHW", "NDHWC"}, default "NCHW"
        As in :func:`~stn_numba.warp_affine`: with "NHWC", input and output are
        (N, H, W, C), e.g. OpenCV's H×W×C images as ``img[None]``.
    fill_value, output_dtype : optional
        As in :func:`~stn_numba.warp_affine`: the value outside with
        ``padding_mode="constant"`` (OpenCV's ``borderValue``), and the result's dtype
        (e.g. ``np.uint8``: rounded to nearest and clipped, as OpenCV's).

    Returns
    -------
    output : ndarray, ``(N, C, *size)`` (or ``(N, *size, C)`` channels-last)
        input's dtype for float input, float32 for integer images, or output_dtype.

    Raises
    ------
    TypeError, ValueError
        As :func:`theta_from_cv2` / :func:`theta_from_scipy` and
        :func:`~stn_numba.warp_affine`; an unknown convention, inverse_map with scipy,
        offset with cv2, a batched matrix whose batch is not input's.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> x = np.arange(12.0).reshape(1, 1, 3, 4)
    >>> M = np.array([[1.0, 0, 1], [0, 1, 0]])        # cv2: move the content 1 px right
    >>> stn.warp_affine_pixels(x, M, convention="cv2")[0, 0]
    array([[ 0.,  0.,  1.,  2.],
           [ 0.,  4.,  5.,  6.],
           [ 0.,  8.,  9., 10.]])
    >>> stn.warp_affine_pixels(x, np.eye(2), convention="scipy", offset=[0, 1])[0, 0]
    array([[ 1.,  2.,  3.,  0.],
           [ 5.,  6.,  7.,  0.],
           [ 9., 10., 11.,  0.]])
    """
    from .functional import warp_affine

    device = check_device(device, {"input": input, "matrix": matrix, "offset": offset})
    if not isinstance(convention, str) or convention not in ("cv2", "scipy"):
        raise ValueError(f"convention must be 'cv2' or 'scipy'; got {describe(convention)}")
    inverse_map = check_bool(inverse_map, "inverse_map")
    lay = Layout(layout)
    input = foreign_array(input, "input")
    lay.check(input, "input")
    dt = input.dtype if isinstance(input, np.ndarray) else None
    integer = dt is not None and dt.kind != "f"
    if not integer:
        input = as_float_array(input, "input")
    # other dtypes go to warp_affine as they are: it converts integer images (computed in
    # θ's float32) and refuses the rest with the list of the accepted dtypes
    ndim = len(input.shape)
    if ndim not in (4, 5):
        raise ValueError(
            f"input must be 4-D (N, C, H, W) or 5-D (N, C, D, H, W); got {describe(input)}"
        )
    in_sizes = tuple(int(s) for s in lay.to_kernel(input).shape[2:])
    out_sizes = in_sizes if size is None else as_int_tuple(size, "size", len(in_sizes), 1)
    if convention == "cv2":
        if offset is not None:
            raise ValueError("offset is for convention='scipy'; cv2's M holds the translation")
        if ndim != 4:
            raise ValueError(f"convention='cv2' is 2-D: input must be 4-D; got {describe(input)}")
        m, _ = _matrix(matrix, "matrix")  # checked here so that the messages name `matrix`
        if m.ndim not in (2, 3) or m.shape[-2:] != (2, 3):
            raise ValueError(
                f"matrix must have shape (2, 3) or (N, 2, 3) for convention='cv2'; got {m.shape}"
            )
        theta = theta_from_cv2(
            matrix,
            in_sizes,
            out_sizes,
            inverse_map=inverse_map,
            align_corners=align_corners,
        )
    else:
        if inverse_map:
            raise ValueError(
                "inverse_map is for convention='cv2'; scipy's matrix maps output to input already"
            )
        theta = theta_from_scipy(
            matrix,
            in_sizes,
            out_sizes,
            offset=0.0 if offset is None else offset,
            align_corners=align_corners,
        )
    if is_gpu_array(theta):
        theta = theta.copy_to_host()
    n = int(input.shape[0])
    if theta.ndim == 2:
        theta = theta[None]
    if theta.shape[0] not in (1, n):
        raise ValueError(
            f"matrix holds {theta.shape[0]} matrices but input has batch {n}; pass one "
            "matrix or one per image"
        )
    compute = np.float32 if integer else input.dtype
    theta = np.ascontiguousarray(np.broadcast_to(theta, (n, *theta.shape[1:])), dtype=compute)
    return warp_affine(
        input, theta, out_sizes, mode, padding_mode, align_corners, out=out, device=device,
        layout=layout, fill_value=fill_value, output_dtype=output_dtype,
    )  # fmt: skip


# ----------------------------------------------------------------------------
# Transforms from point correspondences
# ----------------------------------------------------------------------------

PointsGrads = namedtuple("PointsGrads", ["src", "dst"])
PointsGrads.__doc__ = """Gradients returned by :func:`affine_from_points_backward` and
:func:`perspective_from_points_backward`: ∂L/∂src and ∂L/∂dst, each of the shape its points
were given in (summed over the samples an unbatched set was shared by)."""

#: Smallest ratio of singular values a fit accepts, per dtype of the points: below it the
#: points are degenerate to the precision they were given in.
_RCOND = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}


def _points(value, name, kmin, what):
    arr, dt = _host(value, name)
    if arr.ndim not in (2, 3) or arr.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (K, 2) or (N, K, 2) (x, y); got {arr.shape}")
    if arr.shape[-2] < kmin:
        raise ValueError(
            f"{name} must hold at least {kmin} points per sample ({what}); got K = "
            f"{arr.shape[-2]} in shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite; got {float(arr[bad])!r} at index {bad}")
    return arr, dt


def _point_args(src, dst, input_size, output_size, align_corners, kmin, what):
    """Validated correspondences in normalised coordinates.

    Returns (p, q, a_in, a_out, shapes, batched, dtype): p, q (n, K, 2) float64 normalised;
    a_in / a_out the (x, y) factors of the pixel → normalised maps (ones without sizes),
    for the backward's chain rule.
    """
    p, p_dt = _points(src, "src", kmin, what)
    q, q_dt = _points(dst, "dst", kmin, what)
    if p.shape[-2] != q.shape[-2]:
        raise ValueError(
            f"src and dst must hold the same number of points K; got src of shape {p.shape} "
            f"and dst of shape {q.shape}"
        )
    batches = {
        "src": p.shape[0] if p.ndim == 3 else None,
        "dst": q.shape[0] if q.ndim == 3 else None,
    }
    n = _common_batch(batches)
    if p_dt is not None and q_dt is not None and p_dt != q_dt:
        raise TypeError(
            f"src and dst must share one float dtype; src is {p_dt}, dst is {q_dt} (cast one "
            "of them: the result takes their dtype)"
        )
    dt = _result_dtype(None, {"src": p_dt, "dst": q_dt})
    align_corners = check_bool(align_corners, "align_corners")
    a_in = a_out = np.ones(2)
    if input_size is None:
        if output_size is not None:
            raise ValueError(
                "output_size is used only with input_size (points in pixels); without them "
                "src and dst are normalised coordinates"
            )
        if align_corners:
            raise ValueError(
                "align_corners is used only with input_size (points in pixels); normalised "
                "points need no convention"
            )
    else:
        ins, outs = _sizes(input_size, output_size, (2,))
        if align_corners and min(ins) == 1:
            raise ValueError(
                f"input_size {ins!r} has an axis of size 1: with align_corners=True every "
                "normalised coordinate samples its only pixel, so points along that axis "
                "have no normalised coordinate; use align_corners=False"
            )
        n_in, n_out = _to_norm(ins, align_corners), _to_norm(outs, align_corners)
        a_in, a_out = np.diag(n_in)[:2], np.diag(n_out)[:2]
        p = p * a_in + n_in[:2, 2]
        q = q * a_out + n_out[:2, 2]
    size = 1 if n is None else n
    p = np.broadcast_to(p, (size, *p.shape[-2:]))
    q = np.broadcast_to(q, (size, *q.shape[-2:]))
    shapes = {"src": _shape_of(src), "dst": _shape_of(dst)}
    return p, q, a_in, a_out, shapes, n is not None, dt


def _shape_of(value):
    return tuple(value.shape) if hasattr(value, "shape") else np.shape(value)


def _sample_label(i, batched):
    return f" (sample {i})" if batched else ""


def _check_spread(pts, name, rcond, batched, what):
    """ValueError if a sample's points are collinear or coincide (rank < 2 once centred)."""
    centred = pts - pts.mean(axis=1, keepdims=True)
    sv = np.linalg.svd(centred, compute_uv=False)
    bad = ~(sv[:, 1] > rcond * sv[:, 0])
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}{_sample_label(i, batched)} is degenerate: its points are collinear or "
            f"coincide (the singular values of the centred points are {sv[i, 0]:.3g} and "
            f"{sv[i, 1]:.3g}, a ratio below {rcond:g}), so they do not determine {what}"
        )


def _affine_fit(p, q, rcond, batched):
    """θ (n, 2, 3) = the inverse of the least-squares affine map p → q, and its cache."""
    _check_spread(p, "src", rcond, batched, "an affine map")
    c, d = p.mean(axis=1), q.mean(axis=1)
    P, Qc = p - c[:, None], q - d[:, None]
    Cxx = np.swapaxes(P, 1, 2) @ P
    Cxy = np.swapaxes(P, 1, 2) @ Qc
    W = np.linalg.solve(Cxx, Cxy)  # Aᵀ: Qc ≈ P · Aᵀ
    A = np.swapaxes(W, 1, 2)
    sv = np.linalg.svd(A, compute_uv=False)
    bad = ~(sv[:, 1] > rcond * sv[:, 0])
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"dst{_sample_label(i, batched)} is degenerate: the affine map from src onto it is "
            f"singular (singular values {sv[i, 0]:.3g} and {sv[i, 1]:.3g}; its points are "
            "collinear or coincide), so it has no inverse θ"
        )
    B = np.linalg.inv(A)  # θ's linear part
    theta = np.empty((p.shape[0], 2, 3))
    theta[:, :, :2] = B
    theta[:, :, 2] = c - (B @ d[:, :, None])[:, :, 0]
    return theta, (P, Qc, d, Cxx, W, B)


def _affine_fit_backward(g, cache):
    """(∂L/∂p, ∂L/∂q) of _affine_fit, given ∂L/∂θ (n, 2, 3)."""
    P, Qc, d, Cxx, W, B = cache
    k = P.shape[1]
    T = lambda m: np.swapaxes(m, 1, 2)  # noqa: E731
    gc, gt = g[:, :, 2], g[:, :, 2:]
    gB = g[:, :, :2] - gt @ d[:, None, :]  # θ_t = c - B d
    gd = -(T(B) @ gt)[:, :, 0]
    gW = T(-T(B) @ gB @ T(B))  # B = A⁻¹, W = Aᵀ
    Z = np.linalg.solve(Cxx, gW)  # W = Cxx⁻¹ Cxy
    gCxx = -Z @ T(W)
    gP = P @ (gCxx + T(gCxx)) + Qc @ T(Z)
    gQ = P @ Z
    gp = gP + (gc - gP.sum(axis=1))[:, None] / k
    gq = gQ + (gd - gQ.sum(axis=1))[:, None] / k
    return gp, gq


def _collinear_triple(pts, rcond):
    """For K = 4: (n,) index of a collinear triple of each sample's points, or -1."""
    triples = [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
    scale = np.max(np.sum((pts[:, :, None] - pts[:, None]) ** 2, axis=-1), axis=(1, 2))
    out = np.full(pts.shape[0], -1)
    for t, (i, j, k) in enumerate(triples):
        u, v = pts[:, j] - pts[:, i], pts[:, k] - pts[:, i]
        area = np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
        out = np.where((out < 0) & ~(area > rcond * scale), t, out)
    return out, triples


def _normaliser(pts):
    """OpenCV's normalisation of a point set: centroid c and mean absolute deviation m."""
    c = pts.mean(axis=1)
    D = pts - c[:, None]
    m = np.abs(D).mean(axis=1)
    return c, D, m, D / m[:, None]


def _dlt_rows(P, Q):
    """The DLT system L (n, 2K, 9) of normalised points: L · vec(H) = 0 for Q ~ H P."""
    n, k = P.shape[:2]
    X, Y, u, v = P[..., 0], P[..., 1], Q[..., 0], Q[..., 1]
    one, zero = np.ones((n, k)), np.zeros((n, k))
    L = np.empty((n, 2 * k, 9))
    L[:, 0::2] = np.stack([X, Y, one, zero, zero, zero, -u * X, -u * Y, -u], -1)
    L[:, 1::2] = np.stack([zero, zero, zero, X, Y, one, -v * X, -v * Y, -v], -1)
    if 2 * k < 9:  # K = 4: one zero row, so that the SVD has the null vector
        L = np.concatenate([L, np.zeros((n, 9 - 2 * k, 9))], axis=1)
    return L


def _perspective_fit(p, q, rcond, batched):
    """H (n, 3, 3), H[2, 2] = 1: the inverse of the DLT homography p → q, and its cache."""
    what = "a homography"
    _check_spread(p, "src", rcond, batched, what)
    _check_spread(q, "dst", rcond, batched, what)
    if p.shape[1] == 4:
        for name, pts in (("src", p), ("dst", q)):
            t, triples = _collinear_triple(pts, rcond)
            if np.any(t >= 0):
                i = int(np.flatnonzero(t >= 0)[0])
                raise ValueError(
                    f"{name}{_sample_label(i, batched)} is degenerate: its points "
                    f"{triples[t[i]]} are collinear (or two coincide), so four of them do "
                    "not determine a homography"
                )
    cp, Dp, mp, P = _normaliser(p)
    cq, Dq, mq, Q = _normaliser(q)
    L = _dlt_rows(P, Q)
    _, sv, Vt = np.linalg.svd(L, full_matrices=False)
    bad = ~(sv[:, 7] > rcond * sv[:, 0])
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"src and dst{_sample_label(i, batched)} do not determine a homography: the "
            f"normalised DLT system has rank < 8 (its 8th singular value is {sv[i, 7]:.3g}, "
            f"{sv[i, 0]:.3g} the largest); too few distinct points in general position"
        )
    Hh = Vt[:, 8].reshape(-1, 3, 3)
    hs = np.linalg.svd(Hh, compute_uv=False)
    bad = ~(hs[:, 2] > rcond * hs[:, 0])
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"src and dst{_sample_label(i, batched)} give a singular homography (singular "
            f"values {hs[i, 0]:.3g} to {hs[i, 2]:.3g}), which has no inverse H"
        )
    n = p.shape[0]
    Tpi = np.zeros((n, 3, 3))
    Tpi[:, 0, 0], Tpi[:, 1, 1], Tpi[:, :2, 2], Tpi[:, 2, 2] = mp[:, 0], mp[:, 1], cp, 1.0
    Tq = np.zeros((n, 3, 3))
    Tq[:, 0, 0], Tq[:, 1, 1], Tq[:, 2, 2] = 1 / mq[:, 0], 1 / mq[:, 1], 1.0
    Tq[:, :2, 2] = -cq / mq
    J = np.linalg.inv(Hh)
    G = Tpi @ J @ Tq
    g22 = G[:, 2, 2]
    bad = ~(np.abs(g22) > rcond * np.abs(G).max(axis=(1, 2)))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"dst{_sample_label(i, batched)}: the fitted homography sends the output's centre "
            "(normalised (0, 0)) to infinity, so it cannot be scaled to H[2, 2] = 1"
        )
    H = G / g22[:, None, None]
    return H, (Dp, mp, P, Dq, mq, cq, Q, L, sv, Vt, Tpi, Tq, J, G)


def _perspective_fit_backward(gH, cache):
    """(∂L/∂p, ∂L/∂q) of _perspective_fit, given ∂L/∂H (n, 3, 3)."""
    Dp, mp, P, Dq, mq, cq, Q, L, sv, Vt, Tpi, Tq, J, G = cache
    n, k = P.shape[:2]
    T = lambda m: np.swapaxes(m, 1, 2)  # noqa: E731
    g22 = G[:, 2, 2]
    gG = gH / g22[:, None, None]
    gG[:, 2, 2] -= np.sum(gH * G, axis=(1, 2)) / g22**2
    gTpi = gG @ T(J @ Tq)
    gTq = T(Tpi @ J) @ gG
    gJ = T(Tpi) @ gG @ T(Tq)
    gv = (-T(J) @ gJ @ T(J)).reshape(n, 9)
    # v: the unit null (least) right-singular vector of L, i.e. eigenvector of S = LᵀL
    # for λ = σ₉²: dv = -(S - λI)⁺ dS v
    v = Vt[:, 8]
    w = np.zeros((n, 9))
    w[:, :8] = 1.0 / (sv[:, :8] ** 2 - sv[:, 8:9] ** 2)
    y = np.einsum("nji,nj,njk,nk->ni", Vt, w, Vt, gv)  # (S - λI)⁺ · gv
    gS = -y[:, :, None] * v[:, None, :]
    gL = (L @ (gS + T(gS)))[:, : 2 * k]
    ge, go = gL[:, 0::2], gL[:, 1::2]  # rows of x (u) and of y (v)
    X, Y, u, vv = P[..., 0], P[..., 1], Q[..., 0], Q[..., 1]
    gP = np.stack(
        [
            ge[..., 0] - u * ge[..., 6] + go[..., 3] - vv * go[..., 6],
            ge[..., 1] - u * ge[..., 7] + go[..., 4] - vv * go[..., 7],
        ],
        -1,
    )
    gQ = np.stack(
        [
            -X * ge[..., 6] - Y * ge[..., 7] - ge[..., 8],
            -X * go[..., 6] - Y * go[..., 7] - go[..., 8],
        ],
        -1,
    )
    idx = np.arange(2)
    # src: P = Dp / mp, and Tpi = [[mp, cp], [0, 1]]
    gmp = gTpi[:, idx, idx] - np.sum(gP * Dp, axis=1) / mp**2
    gcp = gTpi[:, :2, 2]
    # dst: Q = Dq / mq, and Tq = [[1 / mq, -cq / mq], [0, 1]]
    gmq = -gTq[:, idx, idx] / mq**2 + gTq[:, :2, 2] * cq / mq**2 - np.sum(gQ * Dq, axis=1) / mq**2
    gcq = -gTq[:, :2, 2] / mq
    out = []
    for gX, D, m, gm, gc in ((gP, Dp, mp, gmp, gcp), (gQ, Dq, mq, gmq, gcq)):
        gD = gX / m[:, None] + gm[:, None] * np.sign(D) / k  # m = mean |D|
        out.append(gD + (gc - gD.sum(axis=1))[:, None] / k)  # D = x - mean x
    return out[0], out[1]


_POINTS_UNITS = """Units: without sizes, src and dst are normalised coordinates (x, y), as
    :func:`~stn_numba.affine_grid`'s (-1 = left/top, +1 = right/bottom), src in the input
    image and dst in the output. With ``input_size`` they are pixel coordinates as
    OpenCV's, (x, y) = (column, row) with integers at pixel centres, src in the input
    image of ``input_size`` and dst in the output image of ``output_size``; the result is
    still for the normalised warps, made for ``align_corners``."""


def _fit_call(fit, src, dst, input_size, output_size, align_corners, kmin, what):
    p, q, a_in, a_out, shapes, batched, dt = _point_args(
        src, dst, input_size, output_size, align_corners, kmin, what
    )
    result, cache = fit(p, q, _RCOND[dt], batched)
    return result, cache, (a_in, a_out, shapes, batched, dt)


def _fit_grads(grad, name, shape, backward, cache, meta, to_gpu):
    a_in, a_out, shapes, batched, _ = meta
    g, gdt = _host(grad, name)
    gdt = gdt if gdt is not None else np.dtype(np.float64)
    want = shape if batched else shape[1:]
    if g.shape != want:
        raise ValueError(
            f"{name} must have shape {want} (the forward's result for these points); got {g.shape}"
        )
    gp, gq = backward(np.broadcast_to(g, shape).astype(np.float64), cache)
    gp, gq = gp * a_in, gq * a_out  # pixel → normalised factors (ones without sizes)
    out = {}
    for key, val in (("src", gp), ("dst", gq)):
        val = val if len(shapes[key]) == 3 else val.sum(axis=0)
        out[key] = _ship(val.reshape(shapes[key]).astype(gdt), to_gpu)
    return PointsGrads(**out)


def affine_from_points(
    src, dst, input_size=None, output_size=None, *, align_corners=False, device=None
):
    """θ that moves the content at the points src to the points dst (≥ 3 pairs).

    The port of ``cv2.warpAffine(img, cv2.getAffineTransform(src, dst), (W, H))``: the
    warp ``stn.warp_affine(x, θ)`` with ``θ = affine_from_points(src, dst, (H, W))``
    shows at each dst point what the input has at the matching src point. θ maps output
    to input, so it maps each dst point to its src point: it is the *inverse* of the
    affine map src → dst that OpenCV returns (``theta_to_cv2(θ, (H, W))`` is
    ``cv2.getAffineTransform(src, dst)``), returned ready to warp with.

    With K = 3 pairs the map is exact. With K > 3 it is the least-squares affine map
    src → dst, the A, t minimising ``Σ_k |A·src_k + t - dst_k|²`` (the residual is
    measured at dst, as OpenCV's and scikit-image's estimators do; the same map in pixel
    or normalised units, since both fits are equivariant), then inverted.

    {units}

    Parameters
    ----------
    src, dst : array_like, (K, 2) or (N, K, 2)
        Corresponding points (x, y), K ≥ 3 per sample. An unbatched set is shared by
        every sample of a batched one. float32/float64 (one dtype for both) or integers.
    input_size : sequence of int, (H, W), optional
        The input's spatial shape, for points in pixels; None: normalised points.
    output_size : sequence of int, (H, W), optional
        The output's spatial shape (dst's image); None = input_size.
    align_corners : bool, default False
        With sizes: the convention of the θ produced (as given to ``warp_affine``).
    device : {{None, "cpu", "cuda"}}
        As in :func:`affine_theta`.

    Returns
    -------
    theta : ndarray, (2, 3) or (N, 2, 3)
        Output → input normalised θ; (2, 3) when neither src nor dst has a batch axis
        (add one with ``θ[None]`` for :func:`~stn_numba.warp_affine`), as
        :func:`theta_from_cv2`. The points' dtype (float64 for integers), computed in
        float64.

    Raises
    ------
    TypeError
        Points that are not numeric, src and dst of different float dtypes, sizes not
        sequences of ints, align_corners not a bool.
    ValueError
        Points not (K, 2) / (N, K, 2), K < 3, K or N differing between src and dst,
        non-finite points (naming the index); src of a sample collinear or with
        coinciding points, or dst such that the fitted map is singular (naming the
        sample); sizes of the wrong length or < 1; output_size or align_corners=True
        without input_size.

    See Also
    --------
    affine_from_points_backward, perspective_from_points, theta_from_cv2

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> src = np.array([[1.0, 1], [3, 1], [1, 3]])       # pixels (x, y)
    >>> dst = src + [2, 1]                               # 2 px right, 1 px down
    >>> theta = stn.affine_from_points(src, dst, (4, 5))
    >>> stn.theta_to_cv2(theta, (4, 5)).round(12) + 0.0  # cv2.getAffineTransform(src, dst)
    array([[1., 0., 2.],
           [0., 1., 1.]])
    >>> x = np.zeros((1, 1, 4, 5))
    >>> x[0, 0, 1, 1] = 1.0                              # a dot at src[0] = (1, 1)
    >>> stn.warp_affine(x, theta[None])[0, 0]            # is at dst[0] = (3, 2)
    array([[0., 0., 0., 0., 0.],
           [0., 0., 0., 0., 0.],
           [0., 0., 0., 1., 0.],
           [0., 0., 0., 0., 0.]])
    """
    _, to_gpu = _device_of(device, {"src": src, "dst": dst})
    theta, _, meta = _fit_call(
        _affine_fit, src, dst, input_size, output_size, align_corners, 3, "K >= 3"
    )
    theta = theta if meta[3] else theta[0]
    return _ship((theta + 0.0).astype(meta[4]), to_gpu)


def affine_from_points_backward(
    grad_theta, src, dst, input_size=None, output_size=None, *, align_corners=False, device=None
):
    """Gradients of :func:`affine_from_points` with respect to the points.

    Differentiates the fit exactly, the least-squares solution included: with centred
    points P = src - mean(src), Q = dst - mean(dst), the forward solves the normal
    equations ``(PᵀP) Aᵀ = PᵀQ`` and inverts ``[A | t]``; the backward runs those steps in
    reverse (implicit differentiation of the normal equations, ``d(B⁻¹) = -B⁻¹ dB B⁻¹``
    for the inverse, the chain rule through the centring and the pixel scaling).

    Parameters
    ----------
    grad_theta : array_like, (2, 3) or (N, 2, 3)
        ∂L/∂θ, of the forward's result shape (e.g. from
        :func:`~stn_numba.warp_affine_backward`, ``[0]`` for an unbatched forward).
    src, dst, input_size, output_size, align_corners
        As given to the forward.
    device : {None, "cpu", "cuda"}
        As in :func:`affine_theta`.

    Returns
    -------
    grads : PointsGrads
        Named tuple ``(src, dst)``: ∂L/∂src and ∂L/∂dst, each of the shape its points
        were given in (an unbatched set's gradient summed over the samples), in
        grad_theta's dtype, in the points' units.

    Raises
    ------
    TypeError, ValueError
        As :func:`affine_from_points`; grad_theta not of the forward's result shape.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> src = np.array([[0.0, 0], [1, 0], [0, 1]])
    >>> g = np.array([[0.0, 0, 1], [0, 0, 0]])               # L = θ[0, 2]
    >>> stn.affine_from_points_backward(g, src, src).dst + 0.0  # dst[0] sets θ's x-shift
    array([[-1.,  0.],
           [ 0.,  0.],
           [ 0.,  0.]])
    """
    _, to_gpu = _device_of(device, {"grad_theta": grad_theta, "src": src, "dst": dst})
    theta, cache, meta = _fit_call(
        _affine_fit, src, dst, input_size, output_size, align_corners, 3, "K >= 3"
    )
    return _fit_grads(
        grad_theta, "grad_theta", theta.shape, _affine_fit_backward, cache, meta, to_gpu
    )


def perspective_from_points(
    src, dst, input_size=None, output_size=None, *, align_corners=False, device=None
):
    """Homography H that moves the content at the points src to the points dst (≥ 4 pairs).

    The port of ``cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (W, H))``
    (and of kornia's ``get_perspective_transform`` + ``warp_perspective``): the warp
    ``stn.warp_perspective(x, H)`` with ``H = perspective_from_points(src, dst, (H, W))``
    shows at each dst point what the input has at the matching src point. Like
    :func:`~stn_numba.warp_perspective`'s H, it maps output to input, so it maps each dst
    point to its src point: it is the *inverse* of OpenCV's src → dst matrix, in
    normalised units, scaled to ``H[2, 2] = 1``.

    With K = 4 pairs (no three collinear) the map is exact, as
    ``cv2.getPerspectiveTransform``. With K > 4 it is the direct linear transform (DLT)
    of ``cv2.findHomography(src, dst, 0)``: the homography src → dst minimising the
    algebraic error ``|L h|`` over ``|h| = 1`` after normalising each point set (shift
    to the centroid, scale each axis by the mean absolute deviation: Hartley's
    normalisation, per axis as OpenCV's, so the fit is the same in pixel and normalised
    units), then inverted. ``findHomography`` then refines the geometric error at dst
    with a few Levenberg–Marquardt steps, which this does not: with noisy points the two
    differ by a small fraction of the noise.

    {units}

    Parameters
    ----------
    src, dst : array_like, (K, 2) or (N, K, 2)
        Corresponding points (x, y), K ≥ 4 per sample. An unbatched set is shared by
        every sample of a batched one. float32/float64 (one dtype for both) or integers.
    input_size, output_size, align_corners
        As in :func:`affine_from_points`.
    device : {{None, "cpu", "cuda"}}
        As in :func:`affine_theta`.

    Returns
    -------
    H : ndarray, (3, 3) or (N, 3, 3)
        Output → input normalised homography with ``H[..., 2, 2] = 1`` (so the output's
        centre is in front of the camera, Z > 0); (3, 3) when neither src nor dst has a
        batch axis (add one with ``H[None]`` for :func:`~stn_numba.warp_perspective`).
        The points' dtype (float64 for integers), computed in float64.

    Raises
    ------
    TypeError, ValueError
        As :func:`affine_from_points`, with K ≥ 4; degenerate points, naming the
        argument and the sample: a set that is collinear or has coinciding points, three
        collinear points of four, a system of rank < 8 or a singular homography.

    See Also
    --------
    perspective_from_points_backward, affine_from_points

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> src = np.array([[-1.0, -1], [1, -1], [1, 1], [-1, 1]])     # normalised corners
    >>> dst = np.array([[-0.5, -1], [0.5, -1], [1, 1], [-1, 1]])   # a trapezoid
    >>> H = stn.perspective_from_points(src, dst)
    >>> p = H @ [0.5, -1.0, 1.0]                                    # dst[1] ...
    >>> (p[:2] / p[2]).round(12)                                    # ... maps to src[1]
    array([ 1., -1.])
    """
    _, to_gpu = _device_of(device, {"src": src, "dst": dst})
    H, _, meta = _fit_call(
        _perspective_fit, src, dst, input_size, output_size, align_corners, 4, "K >= 4"
    )
    H = H if meta[3] else H[0]
    return _ship((H + 0.0).astype(meta[4]), to_gpu)


def perspective_from_points_backward(
    grad_H, src, dst, input_size=None, output_size=None, *, align_corners=False, device=None
):
    """Gradients of :func:`perspective_from_points` with respect to the points.

    Differentiates the function computed, exactly: the DLT solution h is the unit
    eigenvector of ``S = LᵀL`` for its least eigenvalue λ (the null vector for K = 4),
    whose derivative is ``dh = -(S - λI)⁺ dS h`` (λ is simple for non-degenerate
    points); the chain rule then runs through the rows of L, the per-axis normalisation
    (centroids and mean absolute deviations), the inverse and the scaling to
    ``H[2, 2] = 1``.

    Parameters
    ----------
    grad_H : array_like, (3, 3) or (N, 3, 3)
        ∂L/∂H, of the forward's result shape (e.g. from
        :func:`~stn_numba.warp_perspective_backward`).
    src, dst, input_size, output_size, align_corners
        As given to the forward.
    device : {None, "cpu", "cuda"}
        As in :func:`affine_theta`.

    Returns
    -------
    grads : PointsGrads
        As :func:`affine_from_points_backward` (``grad_H[..., 2, 2]`` has no effect:
        that entry is fixed to 1).

    Raises
    ------
    TypeError, ValueError
        As :func:`perspective_from_points`; grad_H not of the forward's result shape.

    Examples
    --------
    >>> import numpy as np, stn_numba as stn
    >>> src = np.array([[-1.0, -1], [1, -1], [1, 1], [-1, 1]])
    >>> g = np.zeros((3, 3))
    >>> g[0, 2] = 1.0                                    # L = H[0, 2], the x-shift
    >>> grads = stn.perspective_from_points_backward(g, src, src)
    >>> grads.dst.round(12) + 0.0
    array([[-0.25,  0.25],
           [-0.25, -0.25],
           [-0.25,  0.25],
           [-0.25, -0.25]])
    >>> grads.dst.sum(axis=0).round(12) + 0.0   # dst moved by (ε, 0): H[0, 2] changes by -ε
    array([-1.,  0.])
    """
    _, to_gpu = _device_of(device, {"grad_H": grad_H, "src": src, "dst": dst})
    H, cache, meta = _fit_call(
        _perspective_fit, src, dst, input_size, output_size, align_corners, 4, "K >= 4"
    )
    return _fit_grads(grad_H, "grad_H", H.shape, _perspective_fit_backward, cache, meta, to_gpu)


affine_from_points.__doc__ = affine_from_points.__doc__.format(units=_POINTS_UNITS)
perspective_from_points.__doc__ = perspective_from_points.__doc__.format(units=_POINTS_UNITS)
