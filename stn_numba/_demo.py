"""``python -m stn_numba demo``: five warps of one image on a PNG contact sheet.

The shipped image (``stn_numba/data/test_card.npy``, 128×128 uint8, made by
:func:`make_test_card`) or the user's own is warped by a rotation, a zoom, a shear, a
projective and a thin-plate-spline transform. The sheet shows, per transform, the
sampling grid drawn over the input (where every output pixel reads from: one line every
few output rows/columns, the outer one being the output's border) above the output.
Each output is checked against ``scipy.ndimage`` (``affine_transform`` for the affine
warps, ``map_coordinates`` at the same grid for the others) and timed against it.
"""

import os
import time

import numpy as np

from ._png import load_image, to_uint8, write_png

DATA = os.path.join(os.path.dirname(__file__), "data")
TEST_CARD = os.path.join(DATA, "test_card.npy")
TRANSFORMS = ("rotation", "zoom", "shear", "projective", "tps")

# A 5×7 bitmap font for the labels and the test card (only the glyphs used).
_FONT = {
    "A": ".###.#...##...#######...##...##...#",
    "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.",
    "D": "####.#...##...##...##...##...#####.",
    "E": "######....#....####.#....#....#####",
    "F": "######....#....####.#....#....#....",
    "G": ".###.#...##....#.####...##...#.####",
    "H": "#...##...##...#######...##...##...#",
    "I": ".###...#....#....#....#....#...###.",
    "J": "..###...#....#....#....#.#..#..##.",
    "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##...##...##...##...#",
    "N": "#...###..##.#.##..###...##...##...#",
    "O": ".###.#...##...##...##...##...#.###.",
    "P": "####.#...##...#####.#....#....#....",
    "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.",
    "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.",
    "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.##.#.#.#.#.",
    "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..",
    "Z": "#####....#...#...#...#...#....#####",
    " ": "." * 35,
}


def _glyph(ch):
    rows = _FONT.get(ch.upper(), _FONT[" "]).ljust(35, ".")
    return np.array([c == "#" for c in rows[:35]], bool).reshape(7, 5)


def draw_text(image, text, row, col, color, scale=1):
    """Draw ``text`` (capitals) into ``image`` (H, W) or (H, W, 3) in place, clipped."""
    h, w = image.shape[:2]
    for i, ch in enumerate(text):
        g = np.kron(_glyph(ch), np.ones((scale, scale), bool))
        r0, c0 = row, col + i * 6 * scale
        r1, c1 = min(r0 + g.shape[0], h), min(c0 + g.shape[1], w)
        if r1 <= r0 or c1 <= c0 or r0 < 0 or c0 < 0:
            continue
        image[r0:r1, c0:c1][g[: r1 - r0, : c1 - c0]] = color


def make_test_card(n=128):
    """The demo's test card: (n, n) uint8 — frame, rings, a cross-hatch and "STN".

    Asymmetric on purpose (letters, a corner marker) so that every warp, mirror included,
    is visible. ``stn_numba/data/test_card.npy`` is ``make_test_card(128)``.
    """
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1)
    img = 0.18 + 0.25 * xx + 0.12 * yy  # gentle gradient
    c = (np.mgrid[0:n, 0:n] - (n - 1) / 2) / (n / 2)
    r = np.hypot(c[0], c[1])
    img[(np.abs(r - 0.78) < 0.035) | (np.abs(r - 0.55) < 0.02)] = 0.95  # two rings
    lines = (np.arange(n) % max(n // 16, 2)) == max(n // 32, 1)
    img[lines[:, None] & (r < 0.4)] = 0.05  # hatching inside the inner ring
    img[(lines[None, :] & (r < 0.4))] = 0.05
    sq = max(n // 16, 2)  # checkered frame
    frame = (((np.arange(n) // sq)[:, None] + (np.arange(n) // sq)[None, :]) % 2).astype(bool)
    border = np.zeros((n, n), bool)
    border[:sq], border[-sq:], border[:, :sq], border[:, -sq:] = True, True, True, True
    img[border] = np.where(frame[border], 1.0, 0.0)
    scale = max(n // 40, 1)
    text_w = 3 * 6 * scale - scale
    draw_text(img, "STN", n // 2 - 7 * scale // 2, (n - text_w) // 2, 1.0, scale)
    m = max(n // 10, 3)  # solid corner marker, top-left inside the frame
    img[sq + 2 : sq + 2 + m, sq + 2 : sq + 2 + m] = 0.0
    return to_uint8(img)


def load_test_card():
    """The shipped test card as uint8 (128, 128)."""
    return np.load(TEST_CARD, allow_pickle=False)


def _transforms(size, dtype):
    """name -> (family, parameters) of the five demo warps (θ: output -> input, normalised)."""
    a = np.deg2rad(30.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0]])
    zoom = np.array([[0.6, 0.0, 0.15], [0.0, 0.6, -0.1]])  # 1/0.6 = 1.67× magnification
    shear = np.array([[1.0, 0.45, 0.0], [0.15, 1.0, 0.0]])
    proj = np.array([[1.0, 0.1, 0.0], [0.0, 0.9, 0.0], [0.45, 0.2, 1.0]])
    g = np.linspace(-0.75, 0.75, 3)
    src = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    tgt = src.copy()
    tgt[4] += (0.25, -0.2)  # pull the centre
    tgt[[0, 8]] += ((0.15, 0.1), (-0.1, -0.15))
    tgt[[2, 6]] *= 1.15
    out = {
        "rotation": ("affine", rot),
        "zoom": ("affine", zoom),
        "shear": ("affine", shear),
        "projective": ("perspective", proj),
        "tps": ("tps", (src, tgt)),
    }
    cast = lambda f, v: (  # noqa: E731
        tuple(np.asarray(p, dtype)[None] for p in v) if f == "tps" else v[None].astype(dtype)
    )
    return {k: (f, cast(f, v)) for k, (f, v) in out.items()}


def _warp(x, family, params):
    """One demo warp with stn_numba (what is timed)."""
    import stn_numba as stn

    if family == "affine":
        return stn.warp_affine(x, params)
    if family == "perspective":
        return stn.warp_perspective(x, params)
    src, tgt = params
    return stn.grid_sample(x, stn.tps_grid(src[0], tgt, x.shape))


def _grid(x, family, params):
    """The sampling grid (H, W, 2), normalised, of one demo warp (for drawing)."""
    import stn_numba as stn

    if family == "affine":
        return stn.affine_grid(params, x.shape)[0]
    if family == "perspective":
        return stn.perspective_grid(params, x.shape)[0]
    return stn.tps_grid(params[0][0], params[1], x.shape)[0]


def _scipy(x, family, params, grid):
    """The same warp with scipy.ndimage, and a callable that recomputes it (for timing)."""
    from scipy import ndimage

    import stn_numba as stn

    shape = x.shape[2:]
    if family == "affine":
        matrix, offset = stn.theta_to_scipy(params[0], shape)

        def run():
            return np.stack(
                [
                    ndimage.affine_transform(
                        p, matrix, offset, order=1, mode="grid-constant", prefilter=False
                    )
                    for p in x[0]
                ]
            )[None]
    else:
        coords = [((grid[..., k] + 1.0) * shape[1 - k] - 1.0) / 2.0 for k in (1, 0)]

        def run():
            return np.stack(
                [
                    ndimage.map_coordinates(
                        p, coords, order=1, mode="grid-constant", prefilter=False
                    )
                    for p in x[0]
                ]
            )[None]

    return run(), run


def _median_ms(fn, repeat=7):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def draw_grid(rgb, grid, color, lines=8):
    """Draw a sampling grid (H, W, 2, normalised) over ``rgb`` (h, w, 3) uint8, in place.

    Every ``H // lines``-th row and column of the grid (and the last) becomes a polyline
    through the input pixels the output pixels read from (align_corners=False).
    """
    h, w = rgb.shape[:2]
    px = ((grid[..., 0] + 1.0) * w - 1.0) / 2.0
    py = ((grid[..., 1] + 1.0) * h - 1.0) / 2.0
    H, W = grid.shape[:2]
    rows = sorted(set(range(0, H, max(H // lines, 1))) | {H - 1})
    cols = sorted(set(range(0, W, max(W // lines, 1))) | {W - 1})
    curves = [(px[r], py[r]) for r in rows] + [(px[:, c], py[:, c]) for c in cols]
    for cx, cy in curves:
        ok = np.isfinite(cx) & np.isfinite(cy)
        cx, cy = cx[ok], cy[ok]
        if cx.size < 2:
            continue
        steps = np.ceil(np.maximum(np.abs(np.diff(cx)), np.abs(np.diff(cy)))).astype(int) + 1
        steps = np.minimum(steps, 4 * max(h, w))
        t = np.concatenate([np.arange(s) / s for s in steps])
        seg = np.repeat(np.arange(cx.size - 1), steps)
        x = np.rint(cx[seg] + t * (cx[seg + 1] - cx[seg])).astype(np.int64)
        y = np.rint(cy[seg] + t * (cy[seg + 1] - cy[seg])).astype(np.int64)
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        rgb[y[inside], x[inside]] = color


def _rgb(planes):
    """(C, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    img = to_uint8(planes)
    if img.shape[0] == 1:
        img = np.repeat(img, 3, axis=0)
    return np.ascontiguousarray(np.moveaxis(img, 0, -1))


def contact_sheet(image, results, pad=6, band=13):
    """Sheet: top row the input and each grid over it, bottom row each output.

    ``image`` (C, H, W) float in [0, 1]; ``results`` [(name, grid, output (C, H, W))].
    Returns the (rows, cols, 3) uint8 sheet.
    """
    c, h, w = image.shape
    n = len(results) + 1
    sheet = np.full((2 * (h + band + pad) + pad, n * (w + pad) + pad, 3), 245, np.uint8)
    dark = (40, 40, 40)

    def place(img, row, col, label):
        r0 = pad + row * (h + band + pad) + band
        c0 = pad + col * (w + pad)
        sheet[r0 : r0 + h, c0 : c0 + w] = img
        draw_text(sheet, label, r0 - band + 2, c0, dark)

    base = _rgb(image)
    place(base, 0, 0, "INPUT")
    colors = [(230, 60, 30), (30, 120, 230), (20, 160, 60), (200, 40, 200), (240, 150, 0)]
    for i, (name, grid, out) in enumerate(results):
        over = base.copy()
        draw_grid(over, grid, colors[i % len(colors)])
        place(over, 0, i + 1, name.upper())
        place(_rgb(out), 1, i + 1, "OUTPUT")
    return sheet


def run(image=None, output="stn_demo.png", transforms=TRANSFORMS, verbose=True, time_it=True):
    """Warp ``image`` (a path, a (C, H, W) array in [0, 1], or None for the test card).

    Returns a dict: ``path`` (the PNG written), ``sheet`` (its pixels), ``outputs``
    {name: (C, H, W) float64}, ``grids`` {name: (H, W, 2)}, ``max_diff`` (largest
    |stn_numba − scipy.ndimage| over the outputs), ``ms`` {name: (stn_numba ms on numba's
    threads, on 1 thread, scipy ms)}: on a small image and a busy machine the parallel
    launch can cost more than the warp, hence the 1-thread figure.
    """
    if image is None:
        img = load_test_card().astype(np.float64)[None] / 255.0
        label = "the shipped test card"
    elif isinstance(image, np.ndarray):
        img = np.ascontiguousarray(image, dtype=np.float64)
        label = "the given array"
    else:
        img = load_image(image)
        label = str(image)
    if img.ndim != 3:
        raise ValueError(f"image must be (C, H, W); got shape {img.shape}")
    unknown = [t for t in transforms if t not in TRANSFORMS]
    if unknown:
        raise ValueError(f"transform must be one of {TRANSFORMS}; got {unknown[0]!r}")
    x = img[None]  # (1, C, H, W), float64
    every = _transforms(x.shape, np.float64)
    results, outputs, grids, ms, diff = [], {}, {}, {}, 0.0
    for name in transforms:
        family, params = every[name]
        out, grid = _warp(x, family, params), _grid(x, family, params)
        ref, scipy_fn = _scipy(x, family, params, grid)
        diff = max(diff, float(np.abs(out - ref).max()))
        if time_it:
            import numba

            warp = lambda f=family, p=params: _warp(x, f, p)  # noqa: E731
            threads = numba.get_num_threads()
            many = _median_ms(warp)
            numba.set_num_threads(1)
            try:
                one = _median_ms(warp)
            finally:
                numba.set_num_threads(threads)
            ms[name] = (many, one, _median_ms(scipy_fn))
        results.append((name, grid, out[0]))
        outputs[name], grids[name] = out[0], grid
    sheet = contact_sheet(img, results)
    write_png(output, sheet)
    if verbose:
        c, h, w = img.shape
        print(
            f"Demo: {label} ({h}×{w}, {c} channel{'s' if c > 1 else ''}) warped by "
            f"{', '.join(transforms)}."
        )
        where = os.path.abspath(output)
        print(f"Wrote the contact sheet (input, sampling grids, outputs) to {where}")
        print(f"max |stn_numba − scipy.ndimage| over the outputs: {diff:.1e}")
        if ms:
            import numba

            parts = [f"{k} {a:.2f} ({b:.2f}) vs {c:.2f}" for k, (a, b, c) in ms.items()]
            print(
                f"ms per warp, stn_numba on {numba.get_num_threads()} threads (on 1) vs "
                "scipy.ndimage (median, float64; map_coordinates is given the grid, stn_numba "
                "makes it): " + "; ".join(parts)
            )
    return dict(path=output, sheet=sheet, outputs=outputs, grids=grids, max_diff=diff, ms=ms)
