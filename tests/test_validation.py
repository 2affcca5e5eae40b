"""Validation at the public boundary: every error path of every public function,
with the argument it names and what was expected, and the accepted-input guarantees:
no argument is mutated, read-only and any-strided arrays work, lists are converted,
empty batches give empty results of the right shape, the dtype is kept.

One class per function for its own checks (the checks shared by a forward and its
backward run through both), then one class per guarantee, parametrized over all six.
Shapes are tiny: only the raising paths and a handful of kernel calls run.

tests/test_errors_table.py checks the message of one bad value per kind of bad input
for every public function (the table of docs/errors.md); the bad values here are the
others, and the checks of more than the message.
"""

import re

import numpy as np
import pytest
from conftest import DTYPES

import stn_numba as stn

FUNCTIONS = [
    "affine_grid",
    "affine_grid_backward",
    "grid_sample",
    "grid_sample_backward",
    "warp_affine",
    "warp_affine_backward",
]
FORWARD = ["affine_grid", "grid_sample", "warp_affine"]
ARRAY_ARGS = {
    "affine_grid": ("theta",),
    "affine_grid_backward": ("grad_grid",),
    "grid_sample": ("input", "grid"),
    "grid_sample_backward": ("grad_output", "input", "grid"),
    "warp_affine": ("input", "theta"),
    "warp_affine_backward": ("grad_output", "input", "theta"),
}
ARRAY_CASES = [(f, a) for f in FUNCTIONS for a in ARRAY_ARGS[f]]
MULTI_ARRAY_CASES = [(f, a) for f, a in ARRAY_CASES if len(ARRAY_ARGS[f]) > 1]

IN_SPATIAL = {2: (3, 4), 3: (2, 3, 4)}
OUT_SPATIAL = {2: (2, 3), 3: (2, 2, 3)}

MODE_NAMES = ("bilinear", "nearest", "bicubic", "bspline2", "bspline3", "bspline4", "bspline5")
PADDING_NAMES = ("zeros", "border", "reflection", "wrap")

#: Not bools: align_corners / input_grad / grid_grad / theta_grad / deterministic.
NOT_BOOLS = [0, 1, None, "True", 1.0, []]
#: Not a sequence at all (affine_grid's full size and warp_affine's spatial size).
NOT_SEQUENCES = [4, 2.0, None, "1123", b"12", (i for i in (1, 1, 2, 3))]


def _sequence_id(value):
    """repr, but one that is the same in every process (pytest-xdist workers)."""
    return "generator" if hasattr(value, "__next__") else repr(value)


#: Unsupported dtypes of an array argument (longdouble is left out: it is float64 on
#: some platforms).
BAD_DTYPES = [np.int32, np.int64, np.uint8, np.bool_, np.float16, np.complex64, np.complex128]
#: The input dtypes of the sampling forwards (integer images included).
INPUT_DTYPES = "float32, float64, uint8, uint16 or int16"


def make_args(fname, dims=2, dtype=np.float64, n=1, c=1):
    """Valid positional arguments of ``fname``, in order, as a dict (tiny shapes)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, c, *IN_SPATIAL[dims])).astype(dtype)
    grid = rng.uniform(-1.1, 1.1, (n, *OUT_SPATIAL[dims], dims)).astype(dtype)
    theta = np.eye(dims, dims + 1) + 0.2 * rng.standard_normal((n, dims, dims + 1))
    theta = theta.astype(dtype)
    size = (n, c, *OUT_SPATIAL[dims])
    if fname == "affine_grid":
        return {"theta": theta, "size": size}
    if fname == "affine_grid_backward":
        return {"grad_grid": grid, "size": size}
    if fname == "grid_sample":
        return {"input": x, "grid": grid}
    if fname == "grid_sample_backward":
        go = rng.standard_normal((n, c, *OUT_SPATIAL[dims])).astype(dtype)
        return {"grad_output": go, "input": x, "grid": grid}
    if fname == "warp_affine":
        return {"input": x, "theta": theta}
    go = rng.standard_normal((n, c, *IN_SPATIAL[dims])).astype(dtype)
    return {"grad_output": go, "input": x, "theta": theta}


def call(fname, args, **kwargs):
    return getattr(stn, fname)(*args.values(), **kwargs)


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def expected_shapes(fname, args):
    """Shapes of the results of ``fname`` for valid ``args``."""
    if fname == "affine_grid":
        theta, size = args["theta"], args["size"]
        return ((size[0], *size[2:], theta.shape[1]),)
    if fname == "affine_grid_backward":
        g = args["grad_grid"]
        dims = g.shape[-1]
        return ((g.shape[0], dims, dims + 1),)
    if fname == "grid_sample":
        x, g = args["input"], args["grid"]
        return ((*x.shape[:2], *g.shape[1:-1]),)
    if fname == "warp_affine":
        return (args["input"].shape,)
    if fname == "grid_sample_backward":
        return (args["input"].shape, args["grid"].shape)
    return (args["input"].shape, args["theta"].shape)


def assert_same_results(got, want):
    got, want = as_tuple(got), as_tuple(want)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert type(a) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def with_layout(a, layout):
    """An array equal to ``a`` (values and dtype) in another memory layout."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "negative_strides":  # every axis reversed twice: a view with strides < 0
        idx = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[idx])[idx]
    if layout == "strided":  # every other element of a larger buffer
        big = np.full(tuple(2 * s for s in a.shape), np.nan, dtype=a.dtype)
        view = big[(slice(None, None, 2),) * a.ndim]
        view[...] = a
        return view
    if layout == "transposed":  # a transposed C array transposed back
        return np.ascontiguousarray(a.T).T
    if layout == "big_endian":
        return a.astype(a.dtype.newbyteorder(">"))
    raise AssertionError(layout)


class FakeGPUArray:
    """Looks like a GPU array to the dispatcher (it exposes __cuda_array_interface__)."""

    @property
    def __cuda_array_interface__(self):
        return {"shape": (1, 2, 3), "typestr": "<f8", "data": (0, False), "version": 3}


def _cuda_available():
    try:
        from numba import cuda

        return cuda.is_available()
    except Exception:  # pragma: no cover
        return False


def _float_like(x):
    dt = getattr(x, "dtype", np.dtype(np.float64))
    return dt if dt.kind == "f" else np.dtype(np.float64)


def _sample(backward):
    """grid_sample, or grid_sample_backward with a dummy grad_output: the input/grid/mode
    checks run before grad_output's shape is looked at."""
    if not backward:
        return stn.grid_sample

    def fn(x, grid, *args, **kwargs):
        go = np.zeros((1,), _float_like(x))
        return stn.grid_sample_backward(go, x, grid, *args, **kwargs)

    return fn


def _warp(backward):
    """warp_affine, or warp_affine_backward with a dummy grad_output (see _sample)."""
    if not backward:
        return stn.warp_affine

    def fn(x, theta, *args, **kwargs):
        go = np.zeros((1,), _float_like(x))
        return stn.warp_affine_backward(go, x, theta, *args, **kwargs)

    return fn


@pytest.fixture(params=[False, True], ids=["grid_sample", "grid_sample_backward"])
def sample_fn(request):
    return _sample(request.param)


@pytest.fixture(params=[False, True], ids=["warp_affine", "warp_affine_backward"])
def warp_fn(request):
    return _warp(request.param)


THETA_BAD_SHAPES = [(2, 3), (3, 4), (1, 2, 2), (1, 3, 3), (1, 2, 4), (1, 4, 4), (1, 1, 2, 3), (6,)]
# (2, 3) is an unbatched θ for the warps, which take it with 4-D input.
WARP_THETA_BAD_SHAPES = [s for s in THETA_BAD_SHAPES if s != (2, 3)]
THETA_SHAPE_MSG = "theta must have shape (N, 2, 3) for 2-D or (N, 3, 4) for 3-D; got "

# ----------------------------------------------------------------------------
# One class per function
# ----------------------------------------------------------------------------


class TestAffineGrid:
    @pytest.mark.parametrize("shape", THETA_BAD_SHAPES)
    def test_theta_shape(self, shape):
        with pytest.raises(ValueError, match=re.escape(THETA_SHAPE_MSG + str(shape))):
            stn.affine_grid(np.zeros(shape), (1, 1, 2, 3))

    def test_scalar_theta_is_a_type_error(self):
        # a number is not a matrix: TypeError naming what was given
        with pytest.raises(TypeError, match=r"theta must be an array; got float64"):
            stn.affine_grid(np.float64(1.0), (1, 1, 2, 3))
        # a 0-d array is an array: its shape, (), is reported
        with pytest.raises(ValueError, match=re.escape(THETA_SHAPE_MSG + "()")):
            stn.affine_grid(np.array(1.0), (1, 1, 2, 3))

    @pytest.mark.parametrize(
        "dims,size", [(2, (1, 1, 3)), (2, (1, 1, 2, 3, 4)), (3, (1, 1, 3, 4)), (3, (1,) * 6)]
    )
    def test_size_length(self, dims, size):
        theta = np.zeros((1, dims, dims + 1))
        msg = f"size must have {dims + 2} entries; got {len(size)}: {size}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            stn.affine_grid(theta, size)

    @pytest.mark.parametrize(
        "size", [(1, 1, 0, 3), (1, 1, 2, 0), (1, 1, 0, 0), (1, 1, 2, 0, 3)], ids=str
    )
    def test_size_empty_spatial(self, size):
        theta = np.zeros((1, len(size) - 2, len(size) - 1))
        msg = f"size's spatial entries must be >= 1; got {size}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            stn.affine_grid(theta, size)

    @pytest.mark.parametrize("size", [(1, -1, 2, 3), (1, 1, -2, 3), (-1, 1, 2, 3)], ids=str)
    def test_size_negative(self, size):
        with pytest.raises(ValueError, match=re.escape(f"size entries must be >= 0; got {size}")):
            stn.affine_grid(np.zeros((1, 2, 3)), size)

    def test_size_batch(self):
        msg = "size[0] (batch) must equal theta.shape[0] = 1; got (2, 1, 2, 3)"
        with pytest.raises(ValueError, match=re.escape(msg)):
            stn.affine_grid(np.zeros((1, 2, 3)), (2, 1, 2, 3))

    @pytest.mark.parametrize(
        "size",
        [(1, 1, 2.0, 3), (1, 1, 2.5, 3), (1, 1, "2", 3), (1, True, 2, 3), (1, 1, None, 3)],
        ids=str,
    )
    def test_size_entries_not_ints(self, size):
        with pytest.raises(TypeError, match=re.escape(f"size must contain ints; got {size!r}")):
            stn.affine_grid(np.zeros((1, 2, 3)), size)

    def test_size_float_array(self):
        with pytest.raises(TypeError, match="size must contain ints"):
            stn.affine_grid(np.zeros((1, 2, 3)), np.array([1.0, 1.0, 2.0, 3.0]))

    @pytest.mark.parametrize("size", NOT_SEQUENCES, ids=_sequence_id)
    def test_size_not_a_sequence(self, size):
        with pytest.raises(TypeError, match=r"size must be a sequence of ints; got "):
            stn.affine_grid(np.zeros((1, 2, 3)), size)

    def test_size_zero_d_array(self):
        # np.array(4) has __len__ but no length: the error must still name `size`.
        with pytest.raises(TypeError, match=r"^size must be a sequence"):
            stn.affine_grid(np.zeros((1, 2, 3)), np.array(4))

    def test_size_set_rejected(self):
        # A set has no order (and drops repeated entries): it cannot be a shape.
        with pytest.raises(TypeError, match=r"^size must be a sequence"):
            stn.affine_grid(np.zeros((1, 2, 3)), {1, 2, 3, 4})

    @pytest.mark.parametrize(
        "size",
        [[1, 1, 2, 3], np.array([1, 1, 2, 3]), tuple(np.int64(v) for v in (1, 1, 2, 3))],
        ids=["list", "ndarray", "numpy-ints"],
    )
    def test_size_sequences_accepted(self, size):
        theta = make_args("affine_grid")["theta"]
        want = stn.affine_grid(theta, (1, 1, 2, 3))
        assert_same_results(stn.affine_grid(theta, size), want)

    @pytest.mark.parametrize("channels", [0, 5])
    def test_size_channels_ignored(self, channels):
        theta = make_args("affine_grid")["theta"]
        want = stn.affine_grid(theta, (1, 1, 2, 3))
        assert_same_results(stn.affine_grid(theta, (1, channels, 2, 3)), want)

    @pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
    def test_align_corners_not_bool(self, value):
        with pytest.raises(TypeError, match=r"align_corners must be a bool; got "):
            stn.affine_grid(np.zeros((1, 2, 3)), (1, 1, 2, 3), value)

    @pytest.mark.parametrize("value", [True, False])
    def test_align_corners_numpy_bool(self, value):
        theta = make_args("affine_grid")["theta"]
        want = stn.affine_grid(theta, (1, 1, 2, 3), value)
        assert_same_results(stn.affine_grid(theta, (1, 1, 2, 3), np.bool_(value)), want)

    def test_theta_nested_list(self):
        theta = make_args("affine_grid")["theta"]
        got = stn.affine_grid(theta.tolist(), (1, 1, 2, 3))
        assert_same_results(got, stn.affine_grid(theta, (1, 1, 2, 3)))

    def test_theta_int_list_rejected(self):
        with pytest.raises(TypeError, match=r"theta must have dtype float32 or float64; got int"):
            stn.affine_grid([[[1, 0, 0], [0, 1, 0]]], (1, 1, 2, 3))

    def test_theta_ragged_list(self):
        with pytest.raises(TypeError, match=r"theta must be a NumPy array; got list"):
            stn.affine_grid([[[1.0, 0.0, 0.0], [0.0, 1.0]]], (1, 1, 2, 3))

    @pytest.mark.parametrize("theta", [None, "theta"], ids=repr)
    def test_theta_not_numeric(self, theta):
        with pytest.raises(TypeError, match=r"theta must have dtype float32 or float64; got "):
            stn.affine_grid(theta, (1, 1, 2, 3))


class TestAffineGridBackward:
    @pytest.mark.parametrize("shape", [(6,), (1, 2, 2), (1, 2, 3, 2, 2, 3)], ids=str)
    def test_grad_grid_ndim(self, shape):
        msg = (
            "grad_grid must be 4 or 5-D (N, H, W, 2) or (N, D, H, W, 3); "
            f"got shape {shape} ({len(shape)}-D)"
        )
        with pytest.raises(ValueError, match=re.escape(msg)):
            stn.affine_grid_backward(np.zeros(shape), (1, 1, 2, 3))

    @pytest.mark.parametrize(
        "shape,size,want",
        [
            ((1, 2, 3, 3), (1, 1, 2, 3), (1, 2, 3, 2)),  # last axis
            ((1, 2, 3, 1), (1, 1, 2, 3), (1, 2, 3, 2)),
            ((1, 3, 3, 2), (1, 1, 2, 3), (1, 2, 3, 2)),  # H
            ((1, 2, 4, 2), (1, 1, 2, 3), (1, 2, 3, 2)),  # W
            ((1, 2, 2, 3, 2), (1, 1, 2, 2, 3), (1, 2, 2, 3, 3)),  # 3-D last axis
            ((1, 1, 2, 3, 3), (1, 1, 2, 2, 3), (1, 2, 2, 3, 3)),  # D
        ],
        ids=str,
    )
    def test_grad_grid_does_not_match_size(self, shape, size, want):
        msg = f"grad_grid must have shape {want} for size={size}; got {shape}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            stn.affine_grid_backward(np.zeros(shape), size)

    @pytest.mark.parametrize(
        "shape,size", [((1, 2, 3, 2), (1, 1, 1, 2, 3)), ((1, 1, 2, 3, 3), (1, 1, 2, 3))], ids=str
    )
    def test_size_length(self, shape, size):
        msg = f"size must have {len(shape)} entries; got {len(size)}: {size}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            stn.affine_grid_backward(np.zeros(shape), size)

    def test_size_batch_names_grad_grid(self):
        # There is no theta here: the message must compare with grad_grid's batch.
        with pytest.raises(ValueError, match=r"size\[0\]") as info:
            stn.affine_grid_backward(np.zeros((1, 2, 3, 2)), (2, 1, 2, 3))
        assert "grad_grid" in str(info.value) and "theta" not in str(info.value)

    def test_size_empty_spatial(self):
        with pytest.raises(ValueError, match=r"size's spatial entries must be >= 1"):
            stn.affine_grid_backward(np.zeros((1, 0, 3, 2)), (1, 1, 0, 3))

    @pytest.mark.parametrize("size", NOT_SEQUENCES, ids=_sequence_id)
    def test_size_not_a_sequence(self, size):
        with pytest.raises(TypeError, match=r"size must be a sequence of ints; got "):
            stn.affine_grid_backward(np.zeros((1, 2, 3, 2)), size)

    @pytest.mark.parametrize("size", [(1, 1, 2.0, 3), (1, 1, 2, True)], ids=str)
    def test_size_entries_not_ints(self, size):
        with pytest.raises(TypeError, match=re.escape(f"size must contain ints; got {size!r}")):
            stn.affine_grid_backward(np.zeros((1, 2, 3, 2)), size)

    @pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
    def test_align_corners_not_bool(self, value):
        with pytest.raises(TypeError, match=r"align_corners must be a bool; got "):
            stn.affine_grid_backward(np.zeros((1, 2, 3, 2)), (1, 1, 2, 3), value)

    def test_grad_grid_nested_list(self):
        g = make_args("affine_grid_backward")["grad_grid"]
        want = stn.affine_grid_backward(g, (1, 1, 2, 3))
        assert_same_results(stn.affine_grid_backward(g.tolist(), (1, 1, 2, 3)), want)


class TestGridSample:
    """The input/grid/mode checks, run through grid_sample and grid_sample_backward."""

    @pytest.mark.parametrize("shape", [(1, 3, 4), (1, 1, 1, 1, 3, 4)], ids=str)
    def test_input_ndim(self, sample_fn, shape):
        msg = (
            "input must be 4 or 5-D (N, C, H, W) or (N, C, D, H, W); "
            f"got shape {shape} ({len(shape)}-D)"
        )
        with pytest.raises(ValueError, match=re.escape(msg)):
            sample_fn(np.zeros(shape), np.zeros((1, 2, 3, 2)))

    def test_scalar_input_is_a_type_error(self):
        with pytest.raises(TypeError, match=r"input must be an array; got float64"):
            stn.grid_sample(np.float64(1.0), np.zeros((1, 2, 3, 2)))
        with pytest.raises(ValueError, match=r"input must be 4 or 5-D .*got shape \(\)"):
            stn.grid_sample(np.array(1.0), np.zeros((1, 2, 3, 2)))

    @pytest.mark.parametrize("shape", [(1, 1, 3, 0), (1, 1, 0, 3, 4)], ids=str)
    def test_input_empty_spatial(self, sample_fn, shape):
        grid = np.zeros((1, *(2,) * (len(shape) - 2), len(shape) - 2))
        msg = f"input's spatial axes must be non-empty; got shape {shape}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            sample_fn(np.zeros(shape), grid)

    @pytest.mark.parametrize(
        "x_shape,grid_shape,msg",
        [
            ((1, 1, 3, 4), (1, 2, 2, 3, 3), "grid must be 4-D (N, H, W, 2) to match the 4-D input"),
            ((1, 1, 3, 4), (1, 2, 2), "grid must be 4-D (N, H, W, 2) to match the 4-D input"),
            (
                (1, 1, 2, 3, 4),
                (1, 2, 3, 2),
                "grid must be 5-D (N, D, H, W, 3) to match the 5-D input",
            ),
        ],
        ids=["4d-input-5d-grid", "4d-input-3d-grid", "5d-input-4d-grid"],
    )
    def test_grid_ndim(self, sample_fn, x_shape, grid_shape, msg):
        msg += f"; got shape {grid_shape} ({len(grid_shape)}-D)"
        with pytest.raises(ValueError, match=re.escape(msg)):
            sample_fn(np.zeros(x_shape), np.zeros(grid_shape))

    @pytest.mark.parametrize(
        "x_shape,grid_shape,want",
        [
            ((1, 1, 3, 4), (1, 2, 3, 1), "2 ((x, y))"),
            ((1, 1, 3, 4), (1, 2, 3, 3), "2 ((x, y))"),
            ((1, 1, 2, 3, 4), (1, 2, 2, 3, 2), "3 ((x, y, z))"),
            ((1, 1, 2, 3, 4), (1, 2, 2, 3, 4), "3 ((x, y, z))"),
        ],
        ids=str,
    )
    def test_grid_last_axis(self, sample_fn, x_shape, grid_shape, want):
        msg = f"grid's last axis must have size {want}; got shape {grid_shape}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            sample_fn(np.zeros(x_shape), np.zeros(grid_shape))

    @pytest.mark.parametrize("dims", [2, 3])
    def test_batch(self, sample_fn, dims):
        args = make_args("grid_sample", dims, n=2)
        grid = np.concatenate([args["grid"][:1]] * 3)
        msg = (
            "grid.shape[0] (batch) must equal input.shape[0] = 2 (or either of them 1); "
            f"got {grid.shape}"
        )
        with pytest.raises(ValueError, match=re.escape(msg)):
            sample_fn(args["input"], grid)

    @pytest.mark.parametrize(
        "x_dtype,g_dtype", [(np.float64, np.float32), (np.float32, np.float64)]
    )
    def test_mixed_dtypes(self, sample_fn, x_dtype, g_dtype):
        args = make_args("grid_sample")
        msg = (
            f"grid has dtype {np.dtype(g_dtype)} but input has dtype {np.dtype(x_dtype)}; "
            "all array arguments must share one dtype"
        )
        with pytest.raises(TypeError, match=re.escape(msg)):
            sample_fn(args["input"].astype(x_dtype), args["grid"].astype(g_dtype))

    @pytest.mark.parametrize("mode", ["linear", "Bilinear", "", "cubic", "trilinear"])
    def test_unknown_mode(self, sample_fn, mode):
        args = make_args("grid_sample")
        with pytest.raises(ValueError, match=re.escape("mode must be one of ")) as info:
            sample_fn(args["input"], args["grid"], mode)
        msg = str(info.value)
        assert f"got {mode!r}" in msg
        for name in MODE_NAMES:
            assert repr(name) in msg

    def test_unknown_mode_hint(self, sample_fn):
        args = make_args("grid_sample")
        with pytest.raises(ValueError, match=re.escape("(did you mean 'bilinear'?)")):
            sample_fn(args["input"], args["grid"], "bilnear")

    @pytest.mark.parametrize("padding", ["Zeros", "", "const", "edge"])
    def test_unknown_padding_mode(self, sample_fn, padding):
        args = make_args("grid_sample")
        with pytest.raises(ValueError, match=re.escape("padding_mode must be one of ")) as info:
            sample_fn(args["input"], args["grid"], "bilinear", padding)
        msg = str(info.value)
        assert f"got {padding!r}" in msg
        for name in PADDING_NAMES:
            assert repr(name) in msg

    @pytest.mark.parametrize("value", [None, 0, b"bilinear", ["bilinear"]], ids=repr)
    def test_mode_not_str(self, sample_fn, value):
        args = make_args("grid_sample")
        msg = f"mode must be a str, one of {sorted(MODE_NAMES)}; got {type(value).__name__}"
        with pytest.raises(TypeError, match=re.escape(msg)):
            sample_fn(args["input"], args["grid"], value)

    @pytest.mark.parametrize("value", [0, b"zeros"], ids=repr)
    def test_padding_mode_not_str(self, sample_fn, value):
        args = make_args("grid_sample")
        names = sorted(PADDING_NAMES + ("constant",))  # the sampling functions' list
        msg = f"padding_mode must be a str, one of {names}; got"
        with pytest.raises(TypeError, match=re.escape(msg)):
            sample_fn(args["input"], args["grid"], "bilinear", value)

    @pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
    def test_align_corners_not_bool(self, sample_fn, value):
        args = make_args("grid_sample")
        with pytest.raises(TypeError, match=r"align_corners must be a bool; got "):
            sample_fn(args["input"], args["grid"], "bilinear", "zeros", value)

    @pytest.mark.parametrize("dims", [2, 3])
    def test_empty_output_grid(self, dims):
        """A grid with an empty spatial axis gives an empty output (the input may not be)."""
        args = make_args("grid_sample", dims)
        grid = args["grid"][:, :0]
        out = stn.grid_sample(args["input"], grid)
        assert out.shape == (1, 1, 0, *grid.shape[2:-1])
        go = np.zeros(out.shape)
        gi, gg = stn.grid_sample_backward(go, args["input"], grid)
        assert gg.shape == grid.shape
        np.testing.assert_array_equal(gi, np.zeros_like(args["input"]))

    def test_nested_lists(self):
        args = make_args("grid_sample")
        want = stn.grid_sample(args["input"], args["grid"])
        assert_same_results(stn.grid_sample(args["input"].tolist(), args["grid"].tolist()), want)


class TestGridSampleBackward:
    @pytest.mark.parametrize("dims", [2, 3])
    @pytest.mark.parametrize("change", ["N", "C", "spatial", "ndim", "flat"])
    def test_grad_output_shape(self, dims, change):
        args = make_args("grid_sample_backward", dims)
        want = args["grad_output"].shape
        bad = {
            "N": (2, *want[1:]),
            "C": (want[0], 2, *want[2:]),
            "spatial": (*want[:-1], want[-1] + 1),
            "ndim": (*want, 1),
            "flat": (int(np.prod(want)),),
        }[change]
        msg = f"grad_output must have shape {want}; got {bad}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            stn.grid_sample_backward(np.zeros(bad), args["input"], args["grid"])

    @pytest.mark.parametrize("go_dtype,dtype", [(np.float32, np.float64), (np.float64, np.float32)])
    def test_grad_output_dtype(self, go_dtype, dtype):
        args = make_args("grid_sample_backward", dtype=dtype)
        go = args["grad_output"].astype(go_dtype)
        msg = (
            f"grad_output has dtype {np.dtype(go_dtype)} but input has dtype {np.dtype(dtype)}; "
            "all array arguments must share one dtype"
        )
        with pytest.raises(TypeError, match=re.escape(msg)):
            stn.grid_sample_backward(go, args["input"], args["grid"])

    @pytest.mark.parametrize("flag", ["input_grad", "grid_grad", "deterministic"])
    @pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
    def test_flags_not_bool(self, flag, value):
        args = make_args("grid_sample_backward")
        with pytest.raises(TypeError, match=rf"{flag} must be a bool; got "):
            call("grid_sample_backward", args, **{flag: value})

    @pytest.mark.parametrize("input_grad", [True, False])
    @pytest.mark.parametrize("grid_grad", [True, False])
    def test_gradient_not_asked_for_is_none(self, input_grad, grid_grad):
        args = make_args("grid_sample_backward")
        full = call("grid_sample_backward", args)
        gi, gg = call(
            "grid_sample_backward",
            args,
            input_grad=np.bool_(input_grad),
            grid_grad=grid_grad,
        )
        assert (gi is None) == (not input_grad) and (gg is None) == (not grid_grad)
        if input_grad:
            np.testing.assert_array_equal(gi, full[0])
        if grid_grad:
            np.testing.assert_array_equal(gg, full[1])

    def test_deterministic_false_accepted_on_cpu(self):
        args = make_args("grid_sample_backward")
        want = call("grid_sample_backward", args)
        assert_same_results(call("grid_sample_backward", args, deterministic=False), want)

    def test_no_out_argument(self):
        args = make_args("grid_sample_backward")
        with pytest.raises(TypeError, match="out"):
            call("grid_sample_backward", args, out=np.zeros((1, 1, 2, 3)))


class TestWarpAffine:
    """The input/theta/size/mode checks, run through warp_affine and warp_affine_backward."""

    @pytest.mark.parametrize("shape", [(1, 3, 4), (1, 1, 1, 1, 3, 4)], ids=str)
    def test_input_ndim(self, warp_fn, shape):
        msg = f"input must be 4 or 5-D (N, C, H, W) or (N, C, D, H, W); got shape {shape}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            warp_fn(np.zeros(shape), np.zeros((1, 2, 3)))

    @pytest.mark.parametrize("shape", [(1, 1, 2, 3, 0)], ids=str)
    def test_input_empty_spatial(self, warp_fn, shape):
        theta = np.zeros((1, len(shape) - 2, len(shape) - 1))
        msg = f"input's spatial axes must be non-empty; got shape {shape}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            warp_fn(np.zeros(shape), theta)

    @pytest.mark.parametrize("shape", WARP_THETA_BAD_SHAPES, ids=str)
    def test_theta_shape(self, warp_fn, shape):
        with pytest.raises(ValueError, match=re.escape(THETA_SHAPE_MSG + str(shape))):
            warp_fn(np.zeros((1, 1, 3, 4)), np.zeros(shape))

    @pytest.mark.parametrize("dims", [2, 3])
    def test_theta_dims_do_not_match_input(self, warp_fn, dims):
        x = make_args("warp_affine", dims)["input"]
        other = 5 - dims
        theta = np.zeros((1, other, other + 1))
        want = "(N, 2, 3)" if dims == 2 else "(N, 3, 4)"
        msg = f"theta must have shape {want} for {dims + 2}-D input; got {theta.shape}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            warp_fn(x, theta)

    @pytest.mark.parametrize("dims", [2, 3])
    def test_batch(self, warp_fn, dims):
        args = make_args("warp_affine", dims, n=2)
        theta = np.concatenate([args["theta"][:1]] * 3)
        msg = (
            "theta.shape[0] (batch) must equal input.shape[0] = 2 (or either of them 1); "
            f"got {theta.shape}"
        )
        with pytest.raises(ValueError, match=re.escape(msg)):
            warp_fn(args["input"], theta)

    @pytest.mark.parametrize(
        "x_dtype,t_dtype", [(np.float64, np.float32), (np.float32, np.float64)]
    )
    def test_mixed_dtypes(self, warp_fn, x_dtype, t_dtype):
        args = make_args("warp_affine")
        msg = (
            f"theta has dtype {np.dtype(t_dtype)} but input has dtype {np.dtype(x_dtype)}; "
            f"all array arguments must share one dtype (use theta.astype(input.dtype))"
        )
        with pytest.raises(TypeError, match=re.escape(msg)):
            warp_fn(args["input"].astype(x_dtype), args["theta"].astype(t_dtype))

    @pytest.mark.parametrize(
        "dims,size",
        [(2, (3,)), (2, (2, 3, 4)), (2, (1, 1, 2, 3)), (3, (3, 4)), (3, (1, 1, 2, 3, 4))],
        ids=str,
    )
    def test_size_length(self, warp_fn, dims, size):
        args = make_args("warp_affine", dims)
        msg = f"size must have {dims} entries; got {len(size)}: {size}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            warp_fn(args["input"], args["theta"], size)

    @pytest.mark.parametrize("size", [(0, 3), (2, 0), (-1, 3), (2, -5)], ids=str)
    def test_size_non_positive(self, warp_fn, size):
        args = make_args("warp_affine")
        with pytest.raises(ValueError, match=re.escape(f"size entries must be >= 1; got {size}")):
            warp_fn(args["input"], args["theta"], size)

    @pytest.mark.parametrize(
        "size", [(2.0, 3), (2.5, 3), ("2", 3), (True, 3), (2, None), (2, np.float64(3))], ids=str
    )
    def test_size_entries_not_ints(self, warp_fn, size):
        args = make_args("warp_affine")
        with pytest.raises(TypeError, match=re.escape(f"size must contain ints; got {size!r}")):
            warp_fn(args["input"], args["theta"], size)

    @pytest.mark.parametrize("size", [3, 2.0, "23", b"23"], ids=repr)
    def test_size_not_a_sequence(self, warp_fn, size):
        args = make_args("warp_affine")
        with pytest.raises(TypeError, match=r"size must be a sequence of 2 ints; got "):
            warp_fn(args["input"], args["theta"], size)

    def test_size_zero_d_array(self, warp_fn):
        args = make_args("warp_affine")
        with pytest.raises(TypeError, match=r"^size must be a sequence"):
            warp_fn(args["input"], args["theta"], np.array(3))

    @pytest.mark.parametrize(
        "size",
        [[2, 3], np.array([2, 3]), (np.int32(2), np.int64(3))],
        ids=["list", "ndarray", "numpy-ints"],
    )
    def test_size_sequences_accepted(self, size):
        args = make_args("warp_affine")
        want = stn.warp_affine(args["input"], args["theta"], (2, 3))
        assert want.shape == (1, 1, 2, 3)
        assert_same_results(stn.warp_affine(args["input"], args["theta"], size), want)

    @pytest.mark.parametrize("dims", [2, 3])
    def test_size_none_keeps_input_size(self, dims):
        args = make_args("warp_affine", dims)
        want = stn.warp_affine(args["input"], args["theta"], IN_SPATIAL[dims])
        assert_same_results(stn.warp_affine(args["input"], args["theta"], None), want)

    @pytest.mark.parametrize("mode", ["linear", "Nearest", "", "bicubic2"])
    def test_unknown_mode(self, warp_fn, mode):
        args = make_args("warp_affine")
        with pytest.raises(ValueError, match="mode must be one of ") as info:
            warp_fn(args["input"], args["theta"], None, mode)
        for name in MODE_NAMES:
            assert repr(name) in str(info.value)

    @pytest.mark.parametrize("padding", ["mirror", ""])
    def test_unknown_padding_mode(self, warp_fn, padding):
        args = make_args("warp_affine")
        with pytest.raises(ValueError, match="padding_mode must be one of ") as info:
            warp_fn(args["input"], args["theta"], None, "bilinear", padding)
        for name in PADDING_NAMES:
            assert repr(name) in str(info.value)

    @pytest.mark.parametrize("arg", ["mode", "padding_mode"])
    def test_mode_not_str(self, warp_fn, arg):
        args = make_args("warp_affine")
        with pytest.raises(TypeError, match=rf"^{arg} must be a str, one of "):
            warp_fn(args["input"], args["theta"], **{arg: 1})

    @pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
    def test_align_corners_not_bool(self, warp_fn, value):
        args = make_args("warp_affine")
        with pytest.raises(TypeError, match=r"align_corners must be a bool; got "):
            warp_fn(args["input"], args["theta"], align_corners=value)


class TestWarpAffineBackward:
    @pytest.mark.parametrize("dims", [2, 3])
    @pytest.mark.parametrize("change", ["N", "C", "spatial", "ndim"])
    def test_grad_output_shape(self, dims, change):
        args = make_args("warp_affine_backward", dims)
        want = args["grad_output"].shape
        bad = {
            "N": (3, *want[1:]),
            "C": (want[0], 2, *want[2:]),
            "spatial": (*want[:-1], want[-1] - 1),
            "ndim": want[1:],
        }[change]
        msg = f"grad_output must have shape {want}; got {bad}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            stn.warp_affine_backward(np.zeros(bad), args["input"], args["theta"])

    def test_grad_output_shape_follows_size(self):
        args = make_args("warp_affine_backward")  # grad_output has the input's size
        msg = f"grad_output must have shape (1, 1, 2, 2); got {args['grad_output'].shape}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            call("warp_affine_backward", args, size=(2, 2))
        gi, gt = stn.warp_affine_backward(
            np.ones((1, 1, 2, 2)), args["input"], args["theta"], (2, 2)
        )
        assert gi.shape == args["input"].shape and gt.shape == args["theta"].shape

    @pytest.mark.parametrize("go_dtype,dtype", [(np.float32, np.float64), (np.float64, np.float32)])
    def test_grad_output_dtype(self, go_dtype, dtype):
        args = make_args("warp_affine_backward", dtype=dtype)
        go = args["grad_output"].astype(go_dtype)
        msg = f"grad_output has dtype {np.dtype(go_dtype)} but input has dtype {np.dtype(dtype)}"
        with pytest.raises(TypeError, match=re.escape(msg)):
            stn.warp_affine_backward(go, args["input"], args["theta"])

    @pytest.mark.parametrize("flag", ["input_grad", "theta_grad", "deterministic"])
    @pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
    def test_flags_not_bool(self, flag, value):
        args = make_args("warp_affine_backward")
        with pytest.raises(TypeError, match=rf"{flag} must be a bool; got "):
            call("warp_affine_backward", args, **{flag: value})

    @pytest.mark.parametrize("input_grad", [True, False])
    @pytest.mark.parametrize("theta_grad", [True, False])
    def test_gradient_not_asked_for_is_none(self, input_grad, theta_grad):
        args = make_args("warp_affine_backward")
        full = call("warp_affine_backward", args)
        gi, gt = call(
            "warp_affine_backward", args, input_grad=input_grad, theta_grad=np.bool_(theta_grad)
        )
        assert (gi is None) == (not input_grad) and (gt is None) == (not theta_grad)
        if input_grad:
            np.testing.assert_array_equal(gi, full[0])
        if theta_grad:
            np.testing.assert_array_equal(gt, full[1])

    def test_deterministic_false_accepted_on_cpu(self):
        args = make_args("warp_affine_backward")
        want = call("warp_affine_backward", args)
        assert_same_results(call("warp_affine_backward", args, deterministic=False), want)

    def test_no_out_argument(self):
        args = make_args("warp_affine_backward")
        with pytest.raises(TypeError, match="out"):
            call("warp_affine_backward", args, out=np.zeros((1, 1, 3, 4)))


# ----------------------------------------------------------------------------
# Guarantees shared by every function
# ----------------------------------------------------------------------------


class TestDtypes:
    @pytest.mark.parametrize("bad", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
    @pytest.mark.parametrize("fname,arg", ARRAY_CASES)
    def test_unsupported_dtype(self, fname, arg, bad):
        args = make_args(fname)
        args[arg] = args[arg].astype(bad)
        msg = f"{arg} must have dtype float32 or float64; got {np.dtype(bad)}"
        if arg == "input" and fname in ("grid_sample", "warp_affine"):
            if np.dtype(bad) == np.uint8:  # an integer image (tests/test_integer_fill.py)
                assert call(fname, args).dtype == args["grid" if "grid" in args else "theta"].dtype
                return
            msg = f"input must have dtype {INPUT_DTYPES}; got {np.dtype(bad)}"
        with pytest.raises(TypeError, match=re.escape(msg)) as info:
            call(fname, args)
        if np.dtype(bad).kind in "iub" or bad is np.float16:
            assert "convert with .astype(np.float32)" in str(info.value)

    @pytest.mark.parametrize("fname", ["grid_sample_backward", "warp_affine_backward"])
    def test_object_dtype(self, fname):
        """grad_output (the errors table has the object rows of the other arguments)."""
        args = make_args(fname)
        args["grad_output"] = args["grad_output"].astype(object)
        msg = "grad_output must have dtype float32 or float64; got object"
        with pytest.raises(TypeError, match=re.escape(msg)):
            call(fname, args)

    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("fname,arg", MULTI_ARRAY_CASES)
    def test_mixed_dtypes(self, fname, arg, dtype):
        """Every array argument must have the dtype of ``input``; the message names the
        odd one out (or, when ``input`` is the odd one, the first argument checked)."""
        other = np.float32 if dtype == np.float64 else np.float64
        args = make_args(fname, dtype=dtype)
        args[arg] = args[arg].astype(other)
        named = arg if arg != "input" else ("grid" if "grid" in args else "theta")
        x_dtype = args["input"].dtype
        named_dtype = args[named].dtype
        msg = f"{named} has dtype {named_dtype} but input has dtype {x_dtype}"
        with pytest.raises(TypeError, match=re.escape(msg)):
            call(fname, args)

    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("dims", [2, 3])
    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_output_dtype_follows_input(self, fname, dims, dtype):
        args = make_args(fname, dims, dtype)
        results = as_tuple(call(fname, args))
        for res, shape in zip(results, expected_shapes(fname, args)):
            assert type(res) is np.ndarray
            assert res.dtype == dtype and res.shape == shape
            assert np.isfinite(res).all()

    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_float32_close_to_float64(self, fname):
        want = as_tuple(call(fname, make_args(fname, dtype=np.float64)))
        got = as_tuple(call(fname, make_args(fname, dtype=np.float32)))
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

    @pytest.mark.parametrize("fname,arg", MULTI_ARRAY_CASES)
    def test_list_with_float32_arrays(self, fname, arg):
        """A list becomes a float64 array, so beside float32 arrays it is a dtype mismatch."""
        args = make_args(fname, dtype=np.float32)
        args[arg] = args[arg].tolist()
        with pytest.raises(TypeError, match="all array arguments must share one dtype"):
            call(fname, args)

    @pytest.mark.parametrize("fname,arg", ARRAY_CASES)
    def test_list_accepted_in_float64(self, fname, arg):
        args = make_args(fname)
        want = call(fname, args)
        args[arg] = args[arg].tolist()
        assert_same_results(call(fname, args), want)


class TestNoMutation:
    @staticmethod
    def _snapshot(args):
        return {
            k: (v.copy(), v.strides, v.flags.writeable)
            for k, v in args.items()
            if isinstance(v, np.ndarray)
        }

    @staticmethod
    def _assert_unchanged(args, snap):
        for k, (copy, strides, writeable) in snap.items():
            np.testing.assert_array_equal(args[k], copy, err_msg=f"{k} was modified")
            assert args[k].dtype == copy.dtype and args[k].strides == strides
            assert args[k].flags.writeable == writeable

    @pytest.mark.parametrize("dims", [2, 3])
    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_arguments_unchanged(self, fname, dims):
        args = make_args(fname, dims, n=2, c=2)
        snap = self._snapshot(args)
        results = as_tuple(call(fname, args))
        self._assert_unchanged(args, snap)
        # No result is a view of an argument: writing to it leaves the arguments alone.
        for res in results:
            for k, v in args.items():
                if isinstance(v, np.ndarray):
                    assert not np.shares_memory(res, v), f"result shares memory with {k}"

    @pytest.mark.parametrize("layout", ["fortran", "negative_strides", "big_endian"])
    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_copied_arguments_unchanged(self, fname, layout):
        args = make_args(fname, n=2, c=2)
        for k in ARRAY_ARGS[fname]:
            args[k] = with_layout(args[k], layout)
        snap = self._snapshot(args)
        call(fname, args)
        self._assert_unchanged(args, snap)

    @pytest.mark.parametrize("flags", [(True, False), (False, True), (False, False)])
    @pytest.mark.parametrize("fname", ["grid_sample_backward", "warp_affine_backward"])
    def test_backward_flags(self, fname, flags):
        args = make_args(fname, n=2)
        snap = self._snapshot(args)
        names = ("input_grad", "grid_grad" if "grid" in args else "theta_grad")
        call(fname, args, **dict(zip(names, flags)))
        self._assert_unchanged(args, snap)

    @pytest.mark.parametrize("dims", [2, 3])
    @pytest.mark.parametrize("fname", FORWARD)
    def test_with_out(self, fname, dims):
        args = make_args(fname, dims, n=2)
        snap = self._snapshot(args)
        shape = expected_shapes(fname, args)[0]
        out = np.full(shape, np.nan)
        assert call(fname, args, out=out) is out
        self._assert_unchanged(args, snap)
        np.testing.assert_array_equal(out, call(fname, args))

    @pytest.mark.parametrize(
        "fname", ["affine_grid", "affine_grid_backward", "warp_affine", "warp_affine_backward"]
    )
    def test_size_sequence_unchanged(self, fname):
        args = make_args(fname)
        args["size"] = list(args["size"]) if "size" in args else list(IN_SPATIAL[2])
        before = list(args["size"])
        call(fname, args)
        assert args["size"] == before


class TestReadOnly:
    @pytest.mark.parametrize("dims", [2, 3])
    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_readonly_arguments(self, fname, dims):
        args = make_args(fname, dims)
        want = call(fname, args)
        ro = {k: readonly(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}
        assert_same_results(call(fname, ro), want)

    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_readonly_strided_views(self, fname):
        args = make_args(fname)
        want = call(fname, args)
        for k in ARRAY_ARGS[fname]:
            view = with_layout(args[k], "strided")
            view.flags.writeable = False
            args[k] = view
        assert_same_results(call(fname, args), want)


class TestLayouts:
    """Any strides and memory order give the same result as a C-contiguous copy."""

    @pytest.mark.parametrize(
        "layout", ["fortran", "negative_strides", "strided", "transposed", "big_endian"]
    )
    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_all_arguments(self, fname, layout):
        args = make_args(fname, n=2, c=2)
        want = call(fname, args)
        for k in ARRAY_ARGS[fname]:
            args[k] = with_layout(args[k], layout)
            assert not args[k].flags.c_contiguous or layout == "big_endian"
        assert_same_results(call(fname, args), want)

    @pytest.mark.parametrize("layout", ["fortran", "negative_strides", "strided"])
    @pytest.mark.parametrize("fname,arg", ARRAY_CASES)
    def test_one_argument(self, fname, arg, layout):
        args = make_args(fname, 3, np.float32, n=2, c=2)
        want = call(fname, args)
        args[arg] = with_layout(args[arg], layout)
        assert_same_results(call(fname, args), want)

    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_broadcast_view(self, fname):
        """A zero-stride (broadcast, read-only) view is a valid argument too."""
        args = make_args(fname, n=1)
        args2 = make_args(fname, n=3)
        for k in ARRAY_ARGS[fname]:
            args2[k] = np.broadcast_to(args[k], (3, *args[k].shape[1:]))
        dense = {
            k: np.ascontiguousarray(v) if k in ARRAY_ARGS[fname] else v for k, v in args2.items()
        }
        assert_same_results(call(fname, args2), call(fname, dense))


class TestEmptyBatches:
    @pytest.mark.parametrize("n,c", [(0, 1), (1, 0), (0, 0), (0, 3)])
    @pytest.mark.parametrize("dims", [2, 3])
    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_shapes_and_values(self, fname, dims, n, c):
        args = make_args(fname, dims, np.float32, n=n, c=c)
        results = as_tuple(call(fname, args))
        shapes = expected_shapes(fname, args)
        assert len(results) == len(shapes)
        for res, shape in zip(results, shapes):
            assert type(res) is np.ndarray
            assert res.shape == shape and res.dtype == np.float32
        if c == 0 and fname.endswith("backward") and fname != "affine_grid_backward":
            # No channels: no contribution to the grid / θ gradient.
            np.testing.assert_array_equal(results[-1], 0.0)

    @pytest.mark.parametrize("dims", [2, 3])
    def test_affine_grid_backward_ignores_channels(self, dims):
        args = make_args("affine_grid_backward", dims)
        want = call("affine_grid_backward", args)
        args["size"] = (1, 0, *args["size"][2:])
        assert_same_results(call("affine_grid_backward", args), want)

    @pytest.mark.parametrize("fname", FORWARD)
    def test_empty_out(self, fname):
        args = make_args(fname, n=0)
        out = np.empty(expected_shapes(fname, args)[0])
        assert call(fname, args, out=out) is out


class TestOut:
    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("fname", FORWARD)
    def test_out_is_returned(self, fname, dtype):
        args = make_args(fname, dtype=dtype)
        out = np.full(expected_shapes(fname, args)[0], np.nan, dtype=dtype)
        res = call(fname, args, out=out)
        assert res is out
        np.testing.assert_array_equal(out, call(fname, args))

    @pytest.mark.parametrize("fname", FORWARD)
    def test_wrong_shape(self, fname):
        args = make_args(fname)
        shape = expected_shapes(fname, args)[0]
        bad = (*shape[:-1], shape[-1] + 1)
        msg = f"out must have shape {shape} and dtype float64; got shape {bad} and dtype float64"
        with pytest.raises(ValueError, match=re.escape(msg)):
            call(fname, args, out=np.zeros(bad))

    @pytest.mark.parametrize(
        "bad", [np.float32, np.float16, np.int64, np.complex128], ids=lambda d: np.dtype(d).name
    )
    @pytest.mark.parametrize("fname", FORWARD)
    def test_wrong_dtype(self, fname, bad):
        args = make_args(fname)
        shape = expected_shapes(fname, args)[0]
        msg = f"out must have shape {shape} and dtype float64; got shape {shape} and dtype "
        with pytest.raises(ValueError, match=re.escape(msg + str(np.dtype(bad)))):
            call(fname, args, out=np.zeros(shape, bad))

    @pytest.mark.parametrize("fname", FORWARD)
    def test_float64_out_for_float32(self, fname):
        args = make_args(fname, dtype=np.float32)
        shape = expected_shapes(fname, args)[0]
        with pytest.raises(ValueError, match=re.escape("and dtype float32; got shape")):
            call(fname, args, out=np.zeros(shape))

    @pytest.mark.parametrize("kind", ["fortran", "strided", "negative_strides", "readonly"])
    @pytest.mark.parametrize("fname", FORWARD)
    def test_not_c_contiguous_writeable(self, fname, kind):
        args = make_args(fname, n=2, c=2)
        shape = expected_shapes(fname, args)[0]
        out = (
            readonly(np.zeros(shape)) if kind == "readonly" else with_layout(np.zeros(shape), kind)
        )
        with pytest.raises(ValueError, match="out must be a C-contiguous, writeable array"):
            call(fname, args, out=out)

    @pytest.mark.parametrize("value", [(), 0.0, "out"], ids=repr)
    @pytest.mark.parametrize("fname", FORWARD)
    def test_not_an_array(self, fname, value):
        args = make_args(fname)
        msg = f"out must be a NumPy array or None; got {type(value).__name__}"
        with pytest.raises(TypeError, match=re.escape(msg)):
            call(fname, args, out=value)

    @pytest.mark.parametrize(
        "fname,arg",
        [("affine_grid", "theta"), ("grid_sample", "input"), ("grid_sample", "grid")]
        + [("warp_affine", "input"), ("warp_affine", "theta")],
    )
    def test_overlaps_argument(self, fname, arg):
        """``out`` sharing memory with an argument (a C-contiguous one, used in place)."""
        rng = np.random.default_rng(1)
        if fname == "affine_grid":
            theta = rng.standard_normal((1, 2, 3))
            args, kwargs, out = (
                {"theta": theta, "size": (1, 1, 3, 1)},
                {},
                theta.reshape(1, 3, 1, 2),
            )
        elif fname == "grid_sample":
            x = rng.standard_normal((1, 2, 2, 3))
            grid = rng.uniform(-1, 1, (1, 2, 3, 2))
            args, kwargs = {"input": x, "grid": grid}, {}
            out = x if arg == "input" else grid.reshape(1, 2, 2, 3)
        else:
            x = rng.standard_normal((1, 1, 2, 3))
            theta = rng.standard_normal((1, 2, 3))
            args, kwargs = {"input": x, "theta": theta}, {"size": (2, 3)}
            out = x if arg == "input" else theta.reshape(1, 1, 2, 3)
        before = out.copy()
        with pytest.raises(ValueError, match=re.escape(f"out must not overlap {arg}")):
            call(fname, args, out=out, **kwargs)
        np.testing.assert_array_equal(out, before)

    @pytest.mark.parametrize(
        "fname,arg",
        [("affine_grid", "theta"), ("grid_sample", "input"), ("grid_sample", "grid")]
        + [("warp_affine", "input"), ("warp_affine", "theta")],
    )
    def test_overlaps_non_contiguous_argument(self, fname, arg):
        """``out`` overlapping an argument that the library has to copy (a reversed view of
        out's memory) must be refused too, or the call overwrites the caller's argument."""
        rng = np.random.default_rng(2)
        if fname == "affine_grid":
            out = rng.standard_normal((2, 3, 1, 2))
            args = {"theta": out.reshape(2, 2, 3)[::-1], "size": (2, 1, 3, 1)}
        elif fname == "grid_sample":
            if arg == "input":
                out = rng.standard_normal((2, 1, 2, 3))
                args = {"input": out[::-1], "grid": rng.uniform(-1, 1, (2, 2, 3, 2))}
            else:
                out = rng.uniform(-1, 1, (2, 2, 2, 3))
                args = {
                    "input": rng.standard_normal((2, 2, 3, 4)),
                    "grid": out.reshape(2, 2, 3, 2)[::-1],
                }
        else:
            if arg == "input":
                out = rng.standard_normal((2, 1, 3, 4))
                args = {"input": out[::-1], "theta": rng.standard_normal((2, 2, 3))}
            else:
                out = rng.standard_normal((2, 1, 2, 3))
                args = {
                    "input": rng.standard_normal((2, 1, 3, 4)),
                    "theta": out.reshape(2, 2, 3)[::-1],
                }
        kwargs = {"size": (2, 3)} if fname == "warp_affine" and arg == "theta" else {}
        before = args[arg].copy()
        with pytest.raises(ValueError, match=re.escape(f"out must not overlap {arg}")):
            call(fname, args, out=out, **kwargs)
        np.testing.assert_array_equal(args[arg], before)


class TestDevice:
    @pytest.mark.parametrize(
        "device", ["gpu", "CPU", "cuda:0", "", "numpy", 0, True, ["cpu"]], ids=repr
    )
    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_unknown_device(self, fname, device):
        args = make_args(fname)
        msg = f"device must be None, 'cpu' or 'cuda'; got {type(device).__name__} {device!r}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            call(fname, args, device=device)

    @pytest.mark.parametrize("dims", [2, 3])
    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_cpu_equals_default(self, fname, dims):
        args = make_args(fname, dims)
        want = call(fname, args)
        assert_same_results(call(fname, args, device="cpu"), want)
        assert_same_results(call(fname, args, device=None), want)

    @pytest.mark.parametrize("fname", FORWARD)
    def test_cpu_with_out(self, fname):
        args = make_args(fname)
        out = np.empty(expected_shapes(fname, args)[0])
        assert call(fname, args, out=out, device="cpu") is out

    @pytest.mark.parametrize("fname,arg", ARRAY_CASES)
    def test_gpu_array_with_cpu_device(self, fname, arg):
        args = make_args(fname)
        args[arg] = FakeGPUArray()
        msg = f"{arg} is a GPU array but device='cpu'; copy it to the host"
        with pytest.raises(TypeError, match=re.escape(msg)):
            call(fname, args, device="cpu")

    @pytest.mark.skipif(_cuda_available(), reason="a CUDA device (or the simulator) is usable")
    @pytest.mark.parametrize("fname", FUNCTIONS)
    def test_cuda_without_gpu(self, fname):
        args = make_args(fname)
        with pytest.raises(RuntimeError, match="device='cuda'") as info:
            call(fname, args, device="cuda")
        assert "NUMBA_ENABLE_CUDASIM=1" in str(info.value)

    @pytest.mark.skipif(_cuda_available(), reason="a CUDA device (or the simulator) is usable")
    def test_gpu_array_without_gpu(self):
        """device=None with a GPU-like argument picks "cuda", which then says it is missing."""
        with pytest.raises(RuntimeError, match="needs a usable CUDA GPU"):
            stn.affine_grid(FakeGPUArray(), (1, 1, 2, 3))


def test_readonly_input_is_read_in_place_and_kept_alive():
    """A read-only contiguous input is read through a writeable-flagged alias (no copy, no
    second JIT specialisation), which keeps the caller's memory alive and is never
    written through."""
    import gc
    import weakref

    from stn_numba._validate import as_float_array

    x = np.arange(12.0).reshape(1, 1, 3, 4)
    x.setflags(write=False)
    alias = as_float_array(x, "input")
    assert alias.flags.writeable and np.shares_memory(alias, x)
    ref = weakref.ref(x)
    del x
    gc.collect()
    assert ref() is not None  # held by the alias
    np.testing.assert_array_equal(alias, np.arange(12.0).reshape(1, 1, 3, 4))
    ro = np.frombuffer(np.arange(8.0).tobytes(), dtype=np.float64).reshape(1, 1, 2, 4)
    grid = np.zeros((1, 1, 1, 2))
    out = stn.grid_sample(ro, grid, align_corners=True)
    assert out[0, 0, 0, 0] == np.mean(ro[0, 0, :, 1:3]) and not ro.flags.writeable


# ----------------------------------------------------------------------------
# Arrays from other libraries, and Python numbers
# ----------------------------------------------------------------------------

THETA1 = np.array([[[1.0, 0, 0], [0, 1, 0]]])


def test_cpu_torch_tensors_are_read_as_numpy():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    img = np.arange(12, dtype=np.uint8).reshape(1, 1, 3, 4)
    got = stn.warp_affine(torch.from_numpy(img), torch.from_numpy(THETA1.astype(np.float32)))
    np.testing.assert_array_equal(got, stn.warp_affine(img, THETA1.astype(np.float32)))
    x = torch.zeros((1, 1, 3, 4), dtype=torch.float64)
    assert stn.warp_affine(x, torch.from_numpy(THETA1)).shape == (1, 1, 3, 4)


@pytest.mark.parametrize("fname", ["warp_affine", "affine_grid", "theta_from_cv2"])
def test_torch_tensor_that_requires_grad_suggests_detach(fname):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    t = torch.zeros((1, 2, 3), dtype=torch.float64, requires_grad=True)
    call = {
        "warp_affine": lambda: stn.warp_affine(np.zeros((1, 1, 3, 4)), t),
        "affine_grid": lambda: stn.affine_grid(t, (1, 1, 3, 4)),
        "theta_from_cv2": lambda: stn.theta_from_cv2(t[0], (3, 4)),
    }[fname]
    name = "M" if fname == "theta_from_cv2" else "theta"
    with pytest.raises(TypeError, match=rf"^{name} is a torch tensor that requires grad.*"
                       rf"pass {name}\.detach\(\)"):  # fmt: skip
        call()


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: stn.warp_affine(1.0, THETA1), "input"),
        (lambda: stn.warp_affine(np.zeros((1, 1, 3, 4)), 1.0), "theta"),
        (lambda: stn.grid_sample(np.float64(2.0), np.zeros((1, 3, 4, 2))), "input"),
        (lambda: stn.affine_grid(3, (1, 1, 3, 4)), "theta"),
        (lambda: stn.theta_from_cv2(2.0, (3, 4)), "M"),
    ],
)
def test_python_numbers_as_arrays_are_type_errors(call, name):
    with pytest.raises(TypeError, match=rf"^{name} must be an array"):
        call()


def test_dask_array_points_to_stn_numba_dask():
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    x = da.zeros((4, 1, 3, 4), chunks=(2, 1, 3, 4))
    theta = np.repeat(THETA1, 4, axis=0)
    for call in (
        lambda: stn.warp_affine(x, theta),
        lambda: stn.grid_sample(x, np.zeros((4, 3, 4, 2))),
        lambda: stn.warp_affine_backward(x, np.zeros((4, 1, 3, 4)), theta),
    ):
        with pytest.raises(TypeError, match=r"is a dask array.*stn_numba\.dask"):
            call()


def test_affine_grid_backward_given_the_grid_shape_as_size():
    g = np.zeros((4, 28, 28, 2))
    with pytest.raises(ValueError, match=r"size is the image's \(N, C, H, W\)"):
        stn.affine_grid_backward(g, g.shape)
