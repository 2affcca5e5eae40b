"""Integer images and constant fill, at the public boundary.

Nothing here reaches the kernels: integer input is converted to the float dtype of the
grid-like argument before the backend runs, and ``padding_mode="constant"`` runs as
``"zeros"`` padding plus ``fill_value`` times the summed weight of the taps that fall
outside the input::

    out = sample_zeros(input) + fill_value * outside

``outside`` comes from sampling a one-channel image of ones twice, with border padding
(every tap reads 1) and with zeros padding (only the taps inside read 1), and taking the
difference. Where every tap is inside, both runs do the same arithmetic, so ``outside``
is exactly 0 and the pixels inside the image do not depend on the fill, however large.
Where no tap is inside (NaN points included) the result is ``fill_value`` exactly. A
summed weight of at most :func:`rounding_weight` counts as 0: it is what the rounding of
a coordinate on the edge produces (an identity grid's first column lies ~1e-16 px
outside in float64), and ``1e-16 * fill`` would swamp the pixel for fills like 1e30. The backward
adds ``fill_value``'s share to the grid-like gradient the same way; grad_input is zeros
padding's. The ones-image runs cost two extra one-channel samples per forward (and
three per backward) when the fill is nonzero; a zero fill is plain zeros padding.
"""

import numbers

import numpy as np

from ._modes import sampling_padding
from ._validate import _is_sequence, check_out, describe, foreign_array, is_gpu_array

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: Integer image dtypes the sampling forwards accept.
INT_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16))
_OUTPUT_DTYPES = _FLOATS + INT_DTYPES
_ACCEPTED = "float32, float64, uint8, uint16 or int16"


def _dtype_of(x):
    """x's dtype without converting it (None when it has none that can be read here)."""
    dt = getattr(x, "dtype", None)
    if dt is None and is_gpu_array(x):
        return None
    if dt is not None:
        try:
            return np.dtype(dt)
        except TypeError:
            return None
    try:
        return np.asarray(x).dtype
    except Exception:
        return None


def _output_dtype(output_dtype):
    if output_dtype is None:
        return None
    try:
        dt = np.dtype(output_dtype)
    except TypeError:
        dt = None
    # any byte order is accepted, as for input; the result is always native
    native = None if dt is None else dt.newbyteorder("=")
    if dt is None or isinstance(output_dtype, bool) or native not in _OUTPUT_DTYPES:
        given = describe(output_dtype) if dt is None or isinstance(output_dtype, bool) else dt
        raise TypeError(
            f"output_dtype must be None, float32, float64, uint8, uint16 or int16; got {given}"
        )
    return native


def _fill_array(fill_value, channels, dtype):
    """fill_value as a (C,) array of ``dtype`` (scalar: broadcast); finite reals only."""
    if isinstance(fill_value, np.ndarray) and fill_value.ndim == 0:
        fill_value = fill_value[()]  # a 0-d array is its scalar (a NumPy scalar)
    if _is_sequence(fill_value):
        vals = list(fill_value)
        if len(vals) != channels:
            raise ValueError(
                f"fill_value must be a number or a sequence of C = {channels} numbers "
                f"(one per channel); got {len(vals)} values"
            )
    else:
        vals = [fill_value] * channels
    for v in vals:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(
                f"fill_value must be a real number or a sequence of C = {channels} real "
                f"numbers; got {describe(fill_value)}"
            )
    f = np.array([float(v) for v in vals], dtype=np.float64)
    if not np.all(np.isfinite(f)):
        raise ValueError(f"fill_value must be finite; got {describe(fill_value)}")
    return f.astype(dtype)


def _is_float(dt):
    return dt is not None and dt.kind == "f" and dt.itemsize in (4, 8)


def _is_int_image(dt):
    return dt is not None and dt.newbyteorder("=") in INT_DTYPES


def _check_integer_input(input, gpu_hint):
    """Refuse integer dtypes other than INT_DTYPES, and integer GPU arrays."""
    dt = _dtype_of(input)
    if dt is None or _is_float(dt):
        return dt
    if _is_int_image(dt) and is_gpu_array(input):
        raise TypeError(
            f"input is a GPU array of dtype {dt}; integer images are accepted as NumPy "
            f"arrays only (they are converted on the host): convert it on the device "
            f"first ({gpu_hint})"
        )
    if not _is_int_image(dt):
        hint = " (convert with .astype(np.float32))" if dt.kind in "fiub" else ""
        raise TypeError(f"input must have dtype {_ACCEPTED}; got {dt}{hint}")
    return dt


class Forward:
    """Pre-processing of a sampling forward's arguments, and post-processing of its result.

    Use::

        pre = Forward(input, grid, padding_mode, fill_value, output_dtype, out, "grid")
        input, padding_mode, out = pre.input, pre.padding_mode, pre.out
        ...  # the float forward, unchanged
        return pre.finish(result)
    """

    def __init__(
        self, input, ref, padding_mode, fill_value, output_dtype, out, ref_name, channel_axis=1
    ):
        input, ref = foreign_array(input, "input"), foreign_array(ref, ref_name)
        arrays = {"input": input, ref_name: ref}
        self.padding_mode, constant = sampling_padding(padding_mode)
        if fill_value is not None and not constant:
            raise ValueError(
                f"fill_value is used only with padding_mode='constant'; got "
                f"padding_mode={padding_mode!r} and fill_value={describe(fill_value)}"
            )
        target = _output_dtype(output_dtype)
        dt = _check_integer_input(input, "e.g. x.astype(cupy.float32)")
        ref_dt = _dtype_of(ref)
        compute = ref_dt.newbyteorder("=") if _is_float(ref_dt) else np.dtype(np.float32)
        gpu = [k for k, v in {**arrays, "out": out}.items() if v is not None and is_gpu_array(v)]
        if _is_int_image(dt):
            input = np.asarray(input).astype(compute)  # the one input-sized temporary
        elif _is_float(dt):
            compute = dt.newbyteorder("=")
        self.compute = compute
        self.target = compute if target is None else target
        self.user_out = None
        if out is not None and isinstance(out, np.ndarray):
            for k, v in arrays.items():
                if isinstance(v, np.ndarray) and np.may_share_memory(out, v):
                    raise ValueError(f"out must not overlap {k}")
        if self.target != compute:
            if gpu:
                raise TypeError(
                    f"output_dtype={self.target} needs NumPy arrays (the conversion runs on "
                    f"the host; device='cuda' with NumPy arrays is fine); {gpu[0]} is a GPU "
                    f"array: leave output_dtype=None and convert the result on the device"
                )
            if out is not None:
                if not isinstance(out, np.ndarray):
                    raise TypeError(f"out must be a NumPy array or None; got {describe(out)}")
                if out.dtype != self.target:
                    raise ValueError(
                        f"out must have the output dtype {self.target} (output_dtype); "
                        f"got dtype {out.dtype}"
                    )
                self.user_out, out = out, None
        self.fill = None
        if constant and fill_value is not None and np.ndim(input) >= 2:
            shp = input.shape if is_gpu_array(input) else np.shape(input)
            channels = int(shp[channel_axis])
            fill = _fill_array(fill_value, channels, compute)
            if np.any(fill != 0):
                if gpu:
                    raise TypeError(
                        f"padding_mode='constant' with a nonzero fill_value needs NumPy "
                        f"arrays (the fill is added on the host; device='cuda' "
                        f"with NumPy arrays is fine); {gpu[0]} is a GPU array"
                    )
                if not isinstance(input, np.ndarray):
                    input = np.asarray(input)
                self.fill = fill.reshape(_fill_shape(input.ndim, channels, channel_axis))
        self.split = None  # (inside, outside) weights, set by the caller when fill is set
        self.tau = 0.0  # rounding_weight of the input, likewise
        self.input, self.out = input, out

    def finish(self, result):
        """Add the fill's share, then convert to the output dtype (into ``out`` if given)."""
        if self.fill is not None:
            inside, outside = self.split
            fill = self.fill.astype(result.dtype)
            # A weight the coordinate's rounding can produce is 0 (an identity grid's
            # first column sits ~1e-16 px outside); counting it would add ~1e-16 * fill,
            # which for fills like 1e30 swamps the pixel.
            tau = self.tau
            with np.errstate(over="ignore"):  # overflows only where the fill replaces it
                result += fill * np.where(np.abs(outside) <= tau, 0, outside)
            np.copyto(result, fill, where=np.abs(inside) <= tau)  # no tap inside: the fill
        if self.target == self.compute:
            return result
        if self.target.kind in "iu":
            info = np.iinfo(self.target)
            np.rint(result, out=result)
            np.clip(result, info.min, info.max, out=result)
            result[np.isnan(result)] = 0
        if self.user_out is None:
            return result.astype(self.target)
        check_out(self.user_out, result.shape, self.target, {})
        np.copyto(self.user_out, result, casting="unsafe")
        return self.user_out


def rounding_weight(spatial, dtype=np.float64):
    """The largest summed tap weight that the rounding of a coordinate computed in
    ``dtype`` can create on an image of the given spatial size: 4 · max(size) · eps. A
    coordinate's error is at most ~size · eps pixels and a weight changes by at most
    1.25 per pixel (Keys' cubic), so weights this small are rounding, not geometry."""
    return 4.0 * max(int(n) for n in spatial) * float(np.finfo(dtype).eps)


def _fill_shape(ndim, channels, channel_axis):
    """The shape that broadcasts a (C,) fill over an image whose channel axis is given."""
    shape = [1] * ndim
    shape[channel_axis] = channels
    return tuple(shape)


def backward(input, padding_mode, fill_value, arrays, channel_axis=1):
    """(input, padding_mode, fill) for a sampling backward: integer input refused,
    constant padding turned into zeros padding; ``fill`` is the (C,) nonzero fill in
    input's dtype, or None."""
    input = foreign_array(input, "input")
    dt = _dtype_of(input)
    if dt is not None and dt.kind in "iub":
        raise TypeError(
            f"input must have dtype float32 or float64; got {dt} (convert with "
            f".astype(np.float32); integer images are accepted by the forward functions "
            f"only: there is no integer backward)"
        )
    pm, constant = sampling_padding(padding_mode)
    if fill_value is not None and not constant:
        raise ValueError(
            f"fill_value is used only with padding_mode='constant'; got "
            f"padding_mode={padding_mode!r} and fill_value={describe(fill_value)}"
        )
    fill = None
    if constant and fill_value is not None and _is_float(dt) and np.ndim(input) >= 2:
        channels = int(input.shape[channel_axis])
        fill = _fill_array(fill_value, channels, dt.newbyteorder("="))
        if not np.any(fill != 0):
            fill = None
        else:
            gpu = [k for k, v in arrays.items() if v is not None and is_gpu_array(v)]
            if gpu:
                raise TypeError(
                    f"padding_mode='constant' with a nonzero fill_value needs NumPy arrays "
                    f"(the fill is added on the host; device='cuda' with NumPy "
                    f"arrays is fine); {gpu[0]} is a GPU array"
                )
    return input, pm, fill
