"""``python -m stn_numba compile``: fill the on-disk JIT cache ahead of use.

Each target makes one tiny call of a public function, which compiles (or loads from
the cache) the drivers that function runs for one float dtype and one memory layout,
with the default mode and padding (bilinear, zeros padding); another mode or padding
compiles its own driver on its first use.
Run it once in a Docker image build or a deployment step, with the same
``NUMBA_CACHE_DIR`` (or none, for the default location) as the processes that will
use the package, so that their first calls load machine code instead of compiling it.

By default the common targets are compiled: the 2-D sampling functions and their
backwards in float32, channels-first and channels-last. ``--dtype`` and ``--layout``
choose others, ``--all`` takes every function (3-D and splat included) in both float
dtypes and both layouts, ``--only PATTERN`` keeps the targets whose name matches a
shell-style pattern, and ``--list`` prints the targets without compiling.
"""

import fnmatch
import sys
import time

import numpy as np

#: Function name -> spatial dimensions it runs in (which decides the input shapes).
FUNCTIONS = {
    "affine_grid": (2, 3),
    "grid_sample": (2, 3),
    "grid_sample_backward": (2, 3),
    "warp_affine": (2, 3),
    "warp_affine_backward": (2, 3),
    "warp_perspective": (2,),
    "warp_perspective_backward": (2,),
    "warp_flow": (2, 3),
    "warp_flow_backward": (2, 3),
    "splat": (2, 3),
    "splat_backward": (2, 3),
}
#: What runs without ``--all`` (the calls an STN or an image pipeline makes first).
COMMON = ("grid_sample", "grid_sample_backward", "warp_affine", "warp_affine_backward")
DTYPES = ("float32", "float64")
LAYOUTS = ("NCHW", "NHWC")


def targets(dtypes=None, layouts=None, everything=False, only=None):
    """The (name, function, dims, dtype, layout) targets a command line selects."""
    dtypes = tuple(dtypes or (DTYPES if everything else ("float32",)))
    layouts = tuple(layouts or LAYOUTS)
    names = FUNCTIONS if everything else COMMON
    out = []
    for fname in names:
        for dims in FUNCTIONS[fname] if everything else (2,):
            for dtype in dtypes:
                for layout in layouts if fname != "affine_grid" else ("NCHW",):
                    name = f"{fname} {dims}-D {dtype} {layout}"
                    if only and not any(fnmatch.fnmatchcase(name, p) for p in only):
                        continue
                    out.append((name, fname, dims, dtype, layout))
    return out


def _call(fname, dims, dtype, layout):
    """One tiny call of ``stn_numba.<fname>`` that runs its kernels for these types."""
    import stn_numba as stn

    dt = np.dtype(dtype)
    spatial = (3,) * dims
    n, c = 1, 2
    x = np.zeros((n, c) + spatial, dt)
    lay = layout
    if layout == "NHWC":
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        lay = "NHWC" if dims == 2 else "NDHWC"
    kw = {} if layout == "NCHW" else {"layout": lay}
    theta = np.eye(dims, dims + 1, dtype=dt)[None]
    grid = np.zeros((n,) + spatial + (dims,), dt)
    go = np.zeros_like(x)
    if fname == "affine_grid":
        return stn.affine_grid(theta, (n, c) + spatial)
    if fname.startswith("grid_sample") or fname.startswith("splat"):
        args = (x, grid)
    elif fname.startswith("warp_affine"):
        args = (x, theta)
    elif fname.startswith("warp_perspective"):
        args = (x, np.eye(3, dtype=dt)[None])
    else:
        args = (x, grid)  # a flow in pixels has the grid's shape
    f = getattr(stn, fname)
    return f(go, *args, **kw) if fname.endswith("_backward") else f(*args, **kw)


def _bar(done, total, width=24):
    filled = round(width * done / max(total, 1))
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def run(selected, stream=None):
    """Compile ``selected`` (from :func:`targets`), drawing a progress bar on ``stream``
    (stderr by default). Returns {target name: seconds}."""
    stream = sys.stderr if stream is None else stream
    times = {}
    total = len(selected)
    start = time.perf_counter()
    for i, (name, fname, dims, dtype, layout) in enumerate(selected):
        stream.write(f"\r{_bar(i, total)} {name:<44}")
        stream.flush()
        t = time.perf_counter()
        _call(fname, dims, dtype, layout)
        times[name] = time.perf_counter() - t
    stream.write(f"\r{_bar(total, total)} {total} targets in {time.perf_counter() - start:.1f} s\n")
    return times


def main(args):
    """The ``compile`` command (``args`` from :mod:`stn_numba.__main__`'s parser)."""
    selected = targets(args.dtype, args.layout, args.all, args.only)
    if not selected:
        print("no target matches --only " + " ".join(args.only or []), file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(name for name, *_ in selected))
        return 0
    times = run(selected)
    from . import _cache, _cpu

    for name, seconds in times.items():
        print(f"{seconds:8.2f} s  {name}")
    where = _cache.cache_dir(_cpu.__file__)
    print(f"cache: {where if where else 'none (nothing writable: see NUMBA_CACHE_DIR)'}")
    return 0
