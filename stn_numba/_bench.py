"""The benchmark suite's definitions: workloads, implementations, operations.

One module, used by ``python -m stn_numba bench`` (a table of medians) and by the
pytest-benchmark suite in ``benchmarks/``. Optional libraries (torch, OpenCV) are
imported lazily; a missing one is reported as a skip with its reason.

Workloads (float32, NCHW, bilinear, zeros padding, align_corners=False, output size =
input size, random affine θ per sample: rotation ±30°, scale 0.8–1.2, translation ±0.2):

====  ====================  ==========================
W1    256×1×28×28           an MNIST STN batch
W2    64×3×128×128
W3    1×3×2048×2048         one large image
W4    1×1×4096×4096
W5    2×1×96×96×96          trilinear
====  ====================  ==========================

Operations: ``grid_sample`` (grid given), ``warp_affine`` (θ given; torch's baseline is
``affine_grid`` + ``grid_sample``, scipy's ``affine_transform``, OpenCV's
``warpAffine``), ``backward`` (gradients w.r.t. input and grid of grid_sample; torch:
the autograd backward call only, its forward graph built outside the timing),
``warp_perspective`` (a random homography near θ per sample, 2-D only; torch: the grid
from H in torch ops + ``grid_sample``; OpenCV ``warpPerspective``; scipy:
``map_coordinates`` at points computed in NumPy) and ``warp_flow`` (a smooth random
flow of up to ±4 pixels; torch: grid = normalised(identity + flow) + ``grid_sample``;
OpenCV ``remap`` at identity + flow; scipy ``map_coordinates``). Building the grid or
the maps from H or the flow is part of every timed call: it is part of the job.
``warp_affine_nhwc`` is warp_affine on the same images stored channels-last, (N, H, W, C)
/ (N, D, H, W, C), in and out: stn_numba ``layout="NHWC"``; torch on
``channels_last`` tensors, the result returned as an NHWC array; OpenCV ``warpAffine``
on each H×W×C image (its native interleaved path, every channel in one call); scipy
``affine_transform`` per channel plane of the NHWC array.
"""

import os
import statistics
import time

import numpy as np

WORKLOADS = {
    "W1": (256, 1, 28, 28),
    "W2": (64, 3, 128, 128),
    "W3": (1, 3, 2048, 2048),
    "W4": (1, 1, 4096, 4096),
    "W5": (2, 1, 96, 96, 96),
}
QUICK = ("W1", "W2", "W5")
OPERATIONS = (
    "grid_sample",
    "warp_affine",
    "warp_affine_nhwc",
    "backward",
    "warp_perspective",
    "warp_flow",
)
IMPLEMENTATIONS = ("stn_numba", "torch", "opencv", "scipy")
#: scipy.ndimage's own calls, stn_numba.ndimage against scipy.ndimage only (float32 in
#: and out, mode 'constant', order 3 with its prefilter; the transform of sample n,
#: θ's pixel matrix, or the pixel coordinates of its grid). stn_numba transforms the C
#: channels of a sample in one 3-D call (2-D images; identity on the channel axis: read
#: at its integers, as a user of a stack would); scipy one call per plane, as its users do
#: (its 3-D call would interpolate along the channels too). map_coordinates and zoom
#: run per plane for both. zoom ×2 runs on W3 only. Where a job has many calls (at
#: least 4 per thread: W2's), stn_numba makes them from ``numba.get_num_threads()``
#: Python threads, one Numba thread each, as its docs advise for many small images
#: (its calls release the GIL; a call that small runs on one thread); scipy's run in
#: turn on one thread, as the targets are set (2 threads against scipy's one).
ND_OPERATIONS = ("nd_affine_o1", "nd_affine_o3", "nd_mapcoord_o1", "nd_mapcoord_o3", "nd_zoom2_o3")
ND_WORKLOADS = ("W2", "W3", "W5")


class Skip(Exception):
    """An implementation that cannot run this case; the message says why."""


def random_theta(n, dims, rng):
    """Random affine θ per sample: rotation ±30° (about z in 3-D), scale 0.8–1.2,
    translation ±0.2, in normalised coordinates."""
    ang = np.deg2rad(rng.uniform(-30, 30, n))
    s = rng.uniform(0.8, 1.2, n)
    theta = np.zeros((n, dims, dims + 1))
    theta[:, 0, 0] = s * np.cos(ang)
    theta[:, 0, 1] = -s * np.sin(ang)
    theta[:, 1, 0] = s * np.sin(ang)
    theta[:, 1, 1] = s * np.cos(ang)
    if dims == 3:
        theta[:, 2, 2] = s
    theta[:, :, dims] = rng.uniform(-0.2, 0.2, (n, dims))
    return theta.astype(np.float32)


def make_data(workload, seed=0):
    """Arrays shared by every implementation of one workload."""
    import stn_numba as stn

    rng = np.random.default_rng(seed)
    shape = WORKLOADS[workload]
    x = rng.random(shape, dtype=np.float32)
    theta = random_theta(shape[0], len(shape) - 2, rng)
    grid = stn.affine_grid(theta, shape)
    gout = rng.random(shape, dtype=np.float32)
    n, dims = shape[0], len(shape) - 2
    H = None
    if dims == 2:  # θ plus a perspective row; |h20| + |h21| <= 0.3 keeps Z >= 0.7 > 0
        H = np.zeros((n, 3, 3), np.float32)
        H[:, :2] = theta
        H[:, 2, :2] = rng.uniform(-0.15, 0.15, (n, 2))
        H[:, 2, 2] = 1.0
    # a smooth flow: one random low-frequency sinusoid per axis, amplitude <= 4 px
    axes = np.meshgrid(*[np.linspace(0, 1, s) for s in shape[2:]], indexing="ij")
    flow = np.empty((n, *shape[2:], dims), np.float32)
    for k in range(dims):
        phase = rng.uniform(0, 2 * np.pi, (n, dims))
        amp = rng.uniform(1.0, 4.0, n)
        for i in range(n):
            wave = sum(np.sin(3.0 * a + p) for a, p in zip(axes, phase[i], strict=True))
            flow[i, ..., k] = amp[i] / dims * wave
    x_last = np.ascontiguousarray(np.moveaxis(x, 1, -1))  # channels-last copy of x
    return {
        "x": x,
        "x_last": x_last,
        "theta": theta,
        "grid": grid,
        "gout": gout,
        "H": H,
        "flow": flow,
    }


# ----------------------------------------------------------------------------
# Pixel coordinates of the grid (x along the last axis), align_corners=False
# ----------------------------------------------------------------------------


def _pixel(g, size):
    """Pixel coordinate of grid values ``g`` (in float64, as stn_numba computes it)."""
    return ((np.asarray(g, np.float64) + 1.0) * size - 1.0) * 0.5


def _pixel_matrix(theta_n, in_sizes, out_sizes):
    """θ (normalised, output -> input, (x, y[, z]) order) as a matrix on pixel
    indices in array axis order (row, col) / (z, y, x), homogeneous."""
    d = len(in_sizes)
    # output index (axis order) -> normalised (x, y, z) order
    rev = np.eye(d + 1)[list(range(d - 1, -1, -1)) + [d]]
    to_norm = np.diag([2.0 / s for s in out_sizes[::-1]] + [1.0])
    to_norm[:d, d] = [1.0 / s - 1.0 for s in out_sizes[::-1]]
    th = np.vstack([theta_n.astype(np.float64), np.eye(d + 1)[d]])
    to_pix = np.diag([s / 2.0 for s in in_sizes[::-1]] + [1.0])
    to_pix[:d, d] = [(s - 1) / 2.0 for s in in_sizes[::-1]]
    return rev @ to_pix @ th @ to_norm @ rev


# ----------------------------------------------------------------------------
# Implementations: setup(op, data) -> (callable, reference check)
# ----------------------------------------------------------------------------


def _no_3d_homography(data):
    if data["H"] is None:
        raise Skip("a homography is 2-D (no 3-D warp_perspective)")


def _perspective_pixels(H_n, size):
    """Homography on normalised (x, y) -> on pixel (x, y) of an H × W image (same size
    in and out, align_corners=False): U · H · U⁻¹."""
    h, w = size
    to_norm = np.array([[2.0 / w, 0, 1.0 / w - 1], [0, 2.0 / h, 1.0 / h - 1], [0, 0, 1]])
    to_pix = np.array([[w / 2.0, 0, (w - 1) / 2.0], [0, h / 2.0, (h - 1) / 2.0], [0, 0, 1]])
    return to_pix @ H_n.astype(np.float64) @ to_norm


def _ndimage(module, op, data):
    """The timed call of ``op`` (one of :data:`ND_OPERATIONS`) with ``module``
    (stn_numba.ndimage or scipy.ndimage)."""
    x = data["x"]
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    d = len(spatial)
    order = int(op[-1])
    ours = module.__name__.startswith("stn_numba")
    if op.startswith("nd_zoom"):
        if spatial != WORKLOADS["W3"][2:]:
            raise Skip("zoom ×2 is timed on W3 only")

        def zoom():
            return [module.zoom(x[n, c], 2, order=order) for n in range(N) for c in range(C)]

        return zoom
    out = np.empty_like(x)
    if op.startswith("nd_affine"):
        mats = [_pixel_matrix(data["theta"][n], spatial, spatial) for n in range(N)]
        if ours and d == 2:  # 4-D stacks are beyond stn_numba.ndimage (1-3-D)
            stacks = [np.eye(d + 2) for _ in range(N)]
            for n in range(N):
                stacks[n][1:, 1:] = mats[n]

            def sample(n):
                out[n] = module.affine_transform(x[n], stacks[n], order=order)

            return _calls(sample, N, out, ours)

        def affine(i):
            n, c = divmod(i, C)
            out[n, c] = module.affine_transform(x[n, c], mats[n], order=order)

        return _calls(affine, N * C, out, ours)
    grid = data["grid"]
    coords = [
        np.stack([_pixel(grid[n, ..., k], spatial[d - 1 - k]) for k in range(d - 1, -1, -1)])
        for n in range(N)
    ]

    def plane(i):
        n, c = divmod(i, C)
        out[n, c] = module.map_coordinates(x[n, c], coords[n], order=order)

    return _calls(plane, N * C, out, ours)


_POOLS = {}


def _calls(call, count, out, ours):
    """The timed job of ``count`` calls ``call(i)``, returning ``out``: in turn on
    this thread, or, for stn_numba with at least 4 calls per thread, from
    ``numba.get_num_threads()`` Python threads (one Numba thread each), each taking
    the next call in turn."""
    import concurrent.futures
    import itertools

    import numba

    threads = numba.get_num_threads() if ours else 1
    if count < 4 * threads or threads == 1:

        def in_turn():
            for i in range(count):
                call(i)
            return out

        return in_turn
    pool = _POOLS.get(threads)
    if pool is None:  # one per thread count, shared by the jobs of a run
        pool = _POOLS[threads] = concurrent.futures.ThreadPoolExecutor(
            threads, initializer=numba.set_num_threads, initargs=(1,)
        )

    def take(calls):
        for i in calls:
            if i >= count:
                return
            call(i)

    def from_threads():
        calls = itertools.count()  # next() is atomic: each call is taken once
        for f in [pool.submit(take, calls) for _ in range(threads)]:
            f.result()
        return out

    return from_threads


def _stn(op, data):
    import stn_numba as stn

    if op.startswith("nd_"):
        from stn_numba import ndimage

        return _ndimage(ndimage, op, data)

    x, theta, grid, gout = data["x"], data["theta"], data["grid"], data["gout"]
    if op == "grid_sample":
        return lambda: stn.grid_sample(x, grid)
    if op == "warp_affine":
        return lambda: stn.warp_affine(x, theta)
    if op == "warp_affine_nhwc":
        layout = "NHWC" if x.ndim == 4 else "NDHWC"
        return lambda: stn.warp_affine(data["x_last"], theta, layout=layout)
    if op == "warp_perspective":
        _no_3d_homography(data)
        return lambda: stn.warp_perspective(x, data["H"])
    if op == "warp_flow":
        return lambda: stn.warp_flow(x, data["flow"])
    return lambda: stn.grid_sample_backward(gout, x, grid)


def _torch(op, data):
    if op.startswith("nd_"):
        raise Skip("scipy.ndimage's calls are compared with scipy only")
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # before torch is imported
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        raise Skip("torch is not installed") from None
    import numba

    torch.set_num_threads(numba.get_num_threads())
    x = torch.from_numpy(data["x"])
    theta = torch.from_numpy(data["theta"])
    grid = torch.from_numpy(data["grid"])
    if op == "grid_sample":
        return lambda: F.grid_sample(x, grid, align_corners=False).numpy()
    if op == "warp_affine":

        def warp():
            g = F.affine_grid(theta, list(x.shape), align_corners=False)
            return F.grid_sample(x, g, align_corners=False).numpy()

        return warp
    if op == "warp_affine_nhwc":
        fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
        xl = torch.from_numpy(data["x_last"]).movedim(-1, 1)  # channels_last memory already
        assert xl.is_contiguous(memory_format=fmt)
        last = (0, *range(2, x.ndim), 1)

        def warp_last():
            g = F.affine_grid(theta, list(x.shape), align_corners=False)
            y = F.grid_sample(xl, g, align_corners=False)
            return y.permute(last).contiguous().numpy()  # no copy if y is channels_last

        return warp_last
    if op in ("warp_perspective", "warp_flow"):
        n, dims = x.shape[0], x.ndim - 2
        eye = torch.eye(dims, dims + 1).expand(n, dims, dims + 1)
        base = F.affine_grid(eye, list(x.shape), align_corners=False)  # (x, y[, z]), constant
    if op == "warp_perspective":
        _no_3d_homography(data)
        Hm = torch.from_numpy(data["H"])
        ones = torch.ones(base.shape[:-1] + (1,))
        base3 = torch.cat([base, ones], -1).reshape(n, -1, 3)

        def persp():
            xyz = torch.bmm(base3, Hm.transpose(1, 2))
            g = (xyz[..., :2] / xyz[..., 2:]).reshape(base.shape)
            return F.grid_sample(x, g, align_corners=False).numpy()

        return persp
    if op == "warp_flow":
        sizes = torch.tensor(list(x.shape[2:])[::-1], dtype=torch.float32)  # (W, H[, D])
        flow = torch.from_numpy(data["flow"])

        def warp_flow():
            g = base + flow * (2.0 / sizes)
            return F.grid_sample(x, g, align_corners=False).numpy()

        return warp_flow
    xg = x.clone().requires_grad_(True)
    gg = grid.clone().requires_grad_(True)
    out = F.grid_sample(xg, gg, align_corners=False)
    go = torch.from_numpy(data["gout"])

    def backward():
        xg.grad = gg.grad = None
        out.backward(go, retain_graph=True)
        return xg.grad.numpy(), gg.grad.numpy()

    return backward


def _opencv(op, data):
    if op.startswith("nd_"):
        raise Skip("scipy.ndimage's calls are compared with scipy only")
    try:
        import cv2
    except ImportError:
        raise Skip("OpenCV (cv2) is not installed") from None
    x = data["x"]
    if x.ndim != 4:
        raise Skip("OpenCV has no 3-D warp")
    if op == "backward":
        raise Skip("OpenCV has no gradients")
    import numba

    cv2.setNumThreads(numba.get_num_threads())
    N, C, H, W = x.shape
    flags = cv2.INTER_LINEAR
    border = dict(borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    if op == "grid_sample":
        grid = data["grid"]
        maps = [
            (_pixel(grid[n, ..., 0], W).astype(np.float32), _pixel(grid[n, ..., 1], H))
            for n in range(N)
        ]
        maps = [(mx, my.astype(np.float32)) for mx, my in maps]

        def remap():
            out = np.empty_like(x)
            for n in range(N):
                for c in range(C):
                    out[n, c] = cv2.remap(x[n, c], *maps[n], flags, **border)
            return out

        return remap
    if op == "warp_perspective":
        mats = [_perspective_pixels(data["H"][n], (H, W)) for n in range(N)]

        def persp():
            out = np.empty_like(x)
            for n in range(N):
                for c in range(C):
                    out[n, c] = cv2.warpPerspective(
                        x[n, c], mats[n], (W, H), flags=flags | cv2.WARP_INVERSE_MAP, **border
                    )
            return out

        return persp
    if op == "warp_flow":
        flow = data["flow"]
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)

        def remap_flow():
            out = np.empty_like(x)
            for n in range(N):
                mx = xx + flow[n, ..., 0]
                my = yy + flow[n, ..., 1]
                for c in range(C):
                    out[n, c] = cv2.remap(x[n, c], mx, my, flags, **border)
            return out

        return remap_flow
    # warpAffine with WARP_INVERSE_MAP takes the dst -> src matrix in (x, y) pixels
    mats = []
    for n in range(N):
        m = _pixel_matrix(data["theta"][n], (H, W), (H, W))  # (row, col) order
        swap = np.eye(3)[[1, 0, 2]]
        mats.append((swap @ m @ swap)[:2])
    if op == "warp_affine_nhwc":
        if C > 4:
            raise Skip("OpenCV interleaves at most 4 channels")
        xl = data["x_last"]

        def warp_hwc():
            out = np.empty_like(xl)
            for n in range(N):
                y = cv2.warpAffine(
                    xl[n], mats[n], (W, H), flags=flags | cv2.WARP_INVERSE_MAP, **border
                )
                out[n] = y.reshape(H, W, C)  # C = 1 comes back as H×W
            return out

        return warp_hwc

    def warp():
        out = np.empty_like(x)
        for n in range(N):
            for c in range(C):
                out[n, c] = cv2.warpAffine(
                    x[n, c], mats[n], (W, H), flags=flags | cv2.WARP_INVERSE_MAP, **border
                )
        return out

    return warp


def _scipy(op, data):
    from scipy import ndimage

    if op == "backward":
        raise Skip("scipy.ndimage has no gradients")
    if op.startswith("nd_"):
        return _ndimage(ndimage, op, data)
    x = data["x"]
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    d = len(spatial)
    kw = dict(order=1, mode="grid-constant", prefilter=False)
    if op == "grid_sample":
        grid = data["grid"]
        coords = [
            np.stack([_pixel(grid[n, ..., k], spatial[d - 1 - k]) for k in range(d - 1, -1, -1)])
            for n in range(N)
        ]

        def mapc():
            out = np.empty_like(x)
            for n in range(N):
                for c in range(C):
                    out[n, c] = ndimage.map_coordinates(x[n, c], coords[n], **kw)
            return out

        return mapc
    if op == "warp_perspective":
        _no_3d_homography(data)
        Hs, Ws = spatial
        yy, xx = np.mgrid[0:Hs, 0:Ws].astype(np.float64)
        pts = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)])
        mats = [_perspective_pixels(data["H"][n], spatial) for n in range(N)]

        def persp():
            out = np.empty_like(x)
            for n in range(N):
                X, Y, Z = mats[n] @ pts
                coords = np.stack([(Y / Z).reshape(Hs, Ws), (X / Z).reshape(Hs, Ws)])
                for c in range(C):
                    out[n, c] = ndimage.map_coordinates(x[n, c], coords, **kw)
            return out

        return persp
    if op == "warp_flow":
        flow = data["flow"]
        idx = np.indices(spatial, dtype=np.float64)  # (row, col) / (z, y, x); float64: exact

        def mapflow():
            out = np.empty_like(x)
            for n in range(N):
                coords = np.stack([idx[a] + flow[n, ..., d - 1 - a] for a in range(d)])
                for c in range(C):
                    out[n, c] = ndimage.map_coordinates(x[n, c], coords, **kw)
            return out

        return mapflow
    mats = [_pixel_matrix(data["theta"][n], spatial, spatial) for n in range(N)]
    if op == "warp_affine_nhwc":
        xl = data["x_last"]

        def affine_last():
            out = np.empty_like(xl)
            for n in range(N):
                for c in range(C):  # strided channel planes, in and out
                    ndimage.affine_transform(xl[n, ..., c], mats[n], output=out[n, ..., c], **kw)
            return out

        return affine_last

    def affine():
        out = np.empty_like(x)
        for n in range(N):
            for c in range(C):
                out[n, c] = ndimage.affine_transform(x[n, c], mats[n], **kw)
        return out

    return affine


SETUP = {"stn_numba": _stn, "torch": _torch, "opencv": _opencv, "scipy": _scipy}

#: Agreement required before timing (max abs difference on values in [0, 1)).
#: OpenCV quantises interpolation weights to 1/32 pixel (INTER_BITS = 5), so it agrees
#: only to ~1/64 of the image range; the others compute in float.
CHECK_ATOL = {"stn_numba": 0.0, "torch": 1e-4, "scipy": 1e-4, "opencv": 2e-2}


def prepare(impl, op, data):
    """The timed callable of ``impl`` for ``op``, checked against stn_numba first.

    Raises :class:`Skip` when the implementation does not offer the operation.
    """
    fn = SETUP[impl](op, data)
    if impl != "stn_numba":
        ref = _stn(op, data)()
        got = fn()
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = got if isinstance(got, tuple) else (got,)
        for r, g in zip(ref, got, strict=True):
            # gradients scale with the image size: compare relative to their range
            scale = max(1.0, float(np.abs(r).max())) if op == "backward" else 1.0
            err = np.abs(np.asarray(g, np.float64) - r) / scale
            # torch accumulates float32 gradients in float32 (we sum in float64); and a
            # grid point within float32 rounding of an integer pixel coordinate (a kink of
            # bilinear) may fall on the other side of it in torch's float32 coordinate
            # math: its grid gradient legitimately differs, so allow 1 in 10^4 such points.
            tol = max(CHECK_ATOL[impl], 2e-3) if op == "backward" else CHECK_ATOL[impl]
            # float32 coordinates (torch's; ours against scipy's float64 ones) err by
            # ~size·2⁻²⁴ px: 114 points of W3's grid_sample differ from scipy by 1.2e-4
            if impl == "torch" or (impl == "scipy" and data["x"].dtype == np.float32):
                tol = max(tol, 2.0**-22 * max(data["x"].shape[2:]))
            bad = np.count_nonzero(err > tol)
            if bad > (err.size // 10_000 if op == "backward" else 0):
                raise AssertionError(
                    f"{impl} {op} differs from stn_numba by up to {err.max():.3g} "
                    f"at {bad} of {err.size} points"
                )
    return fn


def median_ms(fn, repeat, warm=1):
    """Median wall time of ``fn`` in ms after ``warm`` untimed calls."""
    for _ in range(warm):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)
