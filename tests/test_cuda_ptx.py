"""Every CUDA kernel compiles to real PTX (sm_90), without a GPU.

The simulator runs kernels as Python and so cannot catch what only the device
compiler rejects (unsupported operations, typing errors). This compiles each kernel
for float32 and float64 with ``numba.cuda.compile_ptx(..., cc=(9, 0))``; it needs the
``numba-cuda[cu12]`` extra (NVVM as a wheel) and no driver.
"""

import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip(
        "PTX compilation needs the real CUDA target, not the simulator", allow_module_level=True
    )

cuda = pytest.importorskip("numba.cuda", reason="numba.cuda is not importable")
try:
    from numba.cuda.cudadrv.nvvm import NVVM

    NVVM()
except Exception as exc:  # pragma: no cover - depends on the install
    pytest.skip(f"NVVM not available ({exc}): install 'stn_numba[cuda]'", allow_module_level=True)

from numba import boolean, float64, int64  # noqa: E402
from numba import types as nt  # noqa: E402

from stn_numba import _cuda  # noqa: E402
from stn_numba._modes import (  # noqa: E402
    AFFINE,
    BICUBIC,
    BILINEAR,
    BORDER,
    BSPLINE2,
    BSPLINE3,
    BSPLINE4,
    BSPLINE5,
    FLOW,
    GRID,
    NEAREST,
    PERSPECTIVE,
    REFLECTION,
    WRAP,
    ZEROS,
)


@pytest.fixture(autouse=True)
def target_cc(monkeypatch):
    """Device functions ask the (absent) driver for the compute capability; answer 9.0."""
    import types

    import numba.cuda.dispatcher as dispatcher

    monkeypatch.setattr(
        dispatcher, "get_current_device", lambda: types.SimpleNamespace(compute_capability=(9, 0))
    )


def arr(dtype, ndim):
    return nt.Array(dtype, ndim, "C")


def signatures(t):
    """Argument types of every kernel for float dtype ``t``."""
    i64 = nt.int64
    return {
        "k_fill_zero": (arr(t, 1),),
        "k_affine_grid_2d": (arr(t, 3), arr(t, 4), boolean),
        "k_affine_grid_3d": (arr(t, 3), arr(t, 5), boolean),
        "k_theta_rows_2d": (arr(t, 4), arr(float64, 2), boolean),
        "k_theta_rows_3d": (arr(t, 5), arr(float64, 2), boolean),
        "k_reduce_rows": (arr(float64, 2), arr(t, 2), int64),
        "k_sample_2d": (arr(t, 4), arr(t, 4), arr(t, 3), arr(t, 4), boolean),
        "k_sample_3d": (arr(t, 5), arr(t, 5), arr(t, 3), arr(t, 5), boolean),
        "k_grad_grid_2d": (arr(t, 4), arr(t, 4), arr(t, 4), arr(t, 3), arr(t, 4), boolean),
        "k_grad_grid_3d": (arr(t, 5), arr(t, 5), arr(t, 5), arr(t, 3), arr(t, 5), boolean),
        "k_grad_theta_rows_2d": (
            arr(t, 4), arr(t, 4), arr(t, 4), arr(t, 3), arr(float64, 2), boolean,
        ),
        "k_grad_theta_rows_3d": (
            arr(t, 5), arr(t, 5), arr(t, 5), arr(t, 3), arr(float64, 2), boolean,
        ),
        "k_scatter_2d": (
            arr(t, 4), arr(t, 4), arr(t, 3), arr(nt.int64, 4), arr(float64, 1), boolean,
        ),
        "k_scatter_2d/float-atomics": (
            arr(t, 4), arr(t, 4), arr(t, 3), arr(t, 4), arr(float64, 1), boolean,
        ),
        "k_scatter_3d": (
            arr(t, 5), arr(t, 5), arr(t, 3), arr(nt.int64, 5), arr(float64, 1), boolean,
        ),
        "k_scatter_3d/float-atomics": (
            arr(t, 5), arr(t, 5), arr(t, 3), arr(t, 5), arr(float64, 1), boolean,
        ),
        "k_abs_row_sums": (arr(t, 2), arr(float64, 2)),
        "k_fixed_point_scales": (arr(float64, 2), float64, arr(float64, 1)),
        "k_fixed_to_float": (arr(nt.int64, 2), arr(float64, 1), arr(t, 2)),
        "k_perspective_grid_2d": (arr(t, 3), arr(t, 4), boolean),
        "k_perspective_rows_2d": (arr(t, 4), arr(t, 3), arr(float64, 2), boolean),
        "k_perspective_grid_3d": (arr(t, 3), arr(t, 5), boolean),
        "k_perspective_rows_3d": (arr(t, 5), arr(t, 3), arr(float64, 2), boolean),
        "k_flow_grid_2d": (arr(t, 4), arr(t, 4), i64, i64, boolean),
        "k_flow_grid_3d": (arr(t, 5), arr(t, 5), i64, i64, i64, boolean),
        "k_scale_columns": (arr(t, 2), arr(float64, 1), arr(t, 2)),
        "k_spline_embed_2d": (arr(t, 4), arr(t, 4), i64, boolean),
        "k_spline_embed_3d": (arr(t, 5), arr(t, 5), i64, boolean),
        "k_spline_filter_2d": (arr(t, 4), i64, i64, i64, boolean),
        "k_spline_filter_3d": (arr(t, 5), i64, i64, i64, boolean),
        # thin-plate spline (tps_grid): coefficients and source points are float64
        "k_tps_grid_2d": (arr(float64, 3), arr(float64, 3), arr(t, 4), boolean),
        "k_tps_rows_2d": (arr(t, 4), arr(float64, 3), arr(float64, 2), boolean),
    }  # fmt: skip


#: The specialised kernels (factories of constants, see stn_numba._jit.specialise):
#: the constants that test_compiles_to_ptx builds, then a covering set -- every
#: source, mode and padding at least once -- that test_every_path_compiles_to_ptx
#: builds in float32 (wrap: one 2-D forward and one 3-D scatter, its wrapped taps and
#: band checks).
PATHS_2D = [
    (GRID, BILINEAR, ZEROS),
    (AFFINE, NEAREST, BORDER),
    (PERSPECTIVE, BICUBIC, REFLECTION),
    (FLOW, BILINEAR, BORDER),
    (AFFINE, BSPLINE3, ZEROS),
    (GRID, BILINEAR, WRAP),
]
PATHS_3D = [
    (GRID, BILINEAR, ZEROS),
    (AFFINE, NEAREST, BORDER),
    (FLOW, BILINEAR, REFLECTION),
    (GRID, BSPLINE5, BORDER),
]
GRADS_2D = [(BILINEAR, ZEROS), (NEAREST, BORDER), (BICUBIC, REFLECTION), (BSPLINE2, REFLECTION)]
GRADS_3D = [(BILINEAR, ZEROS), (NEAREST, REFLECTION), (BSPLINE4, ZEROS)]
SCATTERS_2D = [
    (GRID, BILINEAR, ZEROS),
    (AFFINE, NEAREST, BORDER),
    (GRID, BICUBIC, REFLECTION),
    (GRID, BSPLINE5, ZEROS),
]
SCATTERS_3D = [
    (GRID, BILINEAR, ZEROS),
    (AFFINE, NEAREST, REFLECTION),
    (AFFINE, BSPLINE3, BORDER),
    (GRID, BILINEAR, WRAP),
]
SPECIALISED = {
    "k_sample_2d": PATHS_2D,
    "k_sample_3d": PATHS_3D,
    "k_grad_grid_2d": GRADS_2D,
    "k_grad_grid_3d": GRADS_3D,
    "k_grad_theta_rows_2d": GRADS_2D,
    "k_grad_theta_rows_3d": GRADS_3D,
    "k_scatter_2d": SCATTERS_2D,
    "k_scatter_3d": SCATTERS_3D,
}


def python_kernel(name, constants=None):
    """The Python function of kernel ``name`` (its first listed specialisation, or the
    one of ``constants``)."""
    base = name.split("/")[0]
    kernel = getattr(_cuda, base)
    if base in SPECIALISED:
        kernel = kernel(*(constants or SPECIALISED[base][0]))
    return kernel.py_func


KERNELS = sorted(signatures(nt.float32))


def test_every_kernel_is_listed():
    defined = {n for n in dir(_cuda) if n.startswith("k_")}
    listed = {n.split("/")[0] for n in KERNELS}
    assert defined == listed


#: float64 where its code differs from float32's beyond the type: the kernels that
#: accumulate (double-precision atomics and row sums); the others are the same source
#: typed once more, and each compile costs about a CPU-second.
F64_KERNELS = [n for n in KERNELS if any(k in n for k in ("scatter", "rows", "reduce", "sums"))]
#: float64 by default: the float atomics' and the reduction's (the others under --all).
F64_DEFAULT = ("k_scatter_2d/float-atomics", "k_reduce_rows")
CASES = [(n, np.float32) for n in KERNELS] + [
    pytest.param(n, np.float64, marks=[] if n in F64_DEFAULT else [pytest.mark.slow])
    for n in F64_KERNELS
]


def _case_id(case):
    n, d = case.values if hasattr(case, "values") else case
    return f"{n}-{np.dtype(d).name}"


@pytest.mark.parametrize("name,dtype", CASES, ids=[_case_id(c) for c in CASES])
def test_compiles_to_ptx(name, dtype):
    t = nt.float32 if dtype == np.float32 else nt.float64
    ptx, _ = cuda.compile_ptx(python_kernel(name), signatures(t)[name], cc=(9, 0))
    assert ".target sm_90" in ptx and ".entry" in ptx


def _path(name, constants):
    """A B-spline mode or wrap padding by default; the older paths under --all (each
    kernel's first path compiles in test_compiles_to_ptx)."""
    mode, padding = constants[-2:]
    new = mode >= BSPLINE2 or padding == WRAP
    return pytest.param(name, constants, marks=[] if new else [pytest.mark.slow])


@pytest.mark.parametrize(
    "name, constants",
    [_path(n, c) for n, paths in SPECIALISED.items() for c in paths[1:]],
    ids=lambda v: "_".join(map(str, v)) if isinstance(v, tuple) else v,
)
def test_every_path_compiles_to_ptx(name, constants):
    ptx, _ = cuda.compile_ptx(
        python_kernel(name, constants), signatures(nt.float32)[name], cc=(9, 0)
    )
    assert ".target sm_90" in ptx and ".entry" in ptx


def strided(dtype, ndim):
    return nt.Array(dtype, ndim, "A")


def channels_last_signatures(t):
    """The image kernels with channels-last images: permuted views of the memory, which
    Numba types as strided ("A") arrays (see stn_numba._layout)."""
    sigs = {}
    for d, nd in ((2, 4), (3, 5)):
        a, s, th = arr(t, nd), strided(t, nd), arr(t, 3)
        sigs[f"k_sample_{d}d"] = (s, a, th, s, boolean)
        sigs[f"k_grad_grid_{d}d"] = (s, s, a, th, a, boolean)
        sigs[f"k_grad_theta_rows_{d}d"] = (s, s, a, th, arr(float64, 2), boolean)
        acc = strided(nt.int64, nd)
        sigs[f"k_scatter_{d}d"] = (s, a, th, acc, arr(float64, 1), boolean)
        sigs[f"k_scatter_{d}d/float-atomics"] = (s, a, th, s, arr(float64, 1), boolean)
    return sigs


#: Channels-last kernels compiled by default (a gather and a scatter); the others under
#: --all: the strided array type is the same change in each.
CHANNELS_LAST_DEFAULT = ("k_sample_2d", "k_scatter_3d/float-atomics")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[] if n in CHANNELS_LAST_DEFAULT else [pytest.mark.slow])
        for n in sorted(channels_last_signatures(nt.float32))
    ],
)
def test_channels_last_compiles_to_ptx(name):
    sig = channels_last_signatures(nt.float32)[name]
    ptx, _ = cuda.compile_ptx(python_kernel(name), sig, cc=(9, 0))
    assert ".target sm_90" in ptx and ".entry" in ptx
