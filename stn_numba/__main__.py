"""``python -m stn_numba``: a demo warp and a quick benchmark table.

``python -m stn_numba [demo] [--quick]`` warps a synthetic test image (a rotation by
30° with a 1.2× zoom), checks it against ``scipy.ndimage.affine_transform``, and
prints median timings of ``warp_affine`` (forward and backward) against scipy and,
when installed, torch's ``affine_grid`` + ``grid_sample`` on the CPU.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np


def _median_ms(fn, repeat):
    fn()  # warm: JIT compile / first-touch excluded
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def _theta(n, rng):
    ang = np.deg2rad(rng.uniform(-30, 30, n))
    s = rng.uniform(0.8, 1.2, n)
    t = rng.uniform(-0.2, 0.2, (n, 2))
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, 0] = s * np.cos(ang)
    theta[:, 0, 1] = -s * np.sin(ang)
    theta[:, 1, 0] = s * np.sin(ang)
    theta[:, 1, 1] = s * np.cos(ang)
    theta[:, :, 2] = t
    return theta


def demo():
    from scipy import ndimage

    import stn_numba as stn

    H = W = 24
    yy, xx = np.mgrid[0:H, 0:W]
    img = (((yy // 4) + (xx // 4)) % 2).astype(np.float64)[None, None]
    a = np.deg2rad(30.0)
    theta = np.array(
        [[[np.cos(a) / 1.2, -np.sin(a) / 1.2, 0.0], [np.sin(a) / 1.2, np.cos(a) / 1.2, 0.0]]]
    )
    out = stn.warp_affine(img, theta, align_corners=True)
    # The same warp with scipy (SPEC §4): matrix in pixel (row, col) units.
    c = (H - 1) / 2
    R = theta[0, :, :2][::-1, ::-1]
    ref = ndimage.affine_transform(
        img[0, 0], R, offset=c - R @ [c, c], order=1, mode="grid-constant", prefilter=False
    )
    err = np.abs(out[0, 0] - ref).max()
    print("Demo: a 24×24 checkerboard rotated by 30° and zoomed 1.2× (warp_affine):\n")
    shades = " .:-=+*#%@"
    for row in out[0, 0]:
        print("  " + "".join(shades[int(round(v * 9))] * 2 for v in np.clip(row, 0, 1)))
    print(f"\nmax |stn_numba - scipy.ndimage.affine_transform| = {err:.2e}\n")
    return err < 1e-9


def bench(quick):
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    import numba
    from scipy import ndimage

    import stn_numba as stn

    try:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(numba.get_num_threads())
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    workloads = [("64×3×128×128", (64, 3, 128, 128))]
    if not quick:
        workloads += [("256×1×28×28", (256, 1, 28, 28)), ("1×3×1024×1024", (1, 3, 1024, 1024))]
    repeat = 5 if quick else 11
    rows = []
    for name, shape in workloads:
        x = rng.random(shape, dtype=np.float32)
        theta = _theta(shape[0], rng)
        go = rng.random(shape, dtype=np.float32)
        fwd = _median_ms(lambda: stn.warp_affine(x, theta), repeat)
        bwd = _median_ms(lambda: stn.warp_affine_backward(go, x, theta), repeat)
        # scipy: one plane at a time (order 1, zeros), single-threaded
        mats = [
            (
                np.eye(3)[[1, 0, 2]]
                @ np.array(
                    [
                        [shape[3] / 2, 0, (shape[3] - 1) / 2],
                        [0, shape[2] / 2, (shape[2] - 1) / 2],
                        [0, 0, 1],
                    ]
                )
                @ np.vstack([theta[n].astype(np.float64), [0, 0, 1]])
                @ np.array(
                    [
                        [2 / shape[3], 0, 1 / shape[3] - 1],
                        [0, 2 / shape[2], 1 / shape[2] - 1],
                        [0, 0, 1],
                    ]
                )
                @ np.eye(3)[[1, 0, 2]]
            )
            for n in range(shape[0])
        ]

        def scipy_warp(x=x, mats=mats):
            for n in range(x.shape[0]):
                for c in range(x.shape[1]):
                    ndimage.affine_transform(
                        x[n, c], mats[n], order=1, mode="grid-constant", prefilter=False
                    )

        sp = _median_ms(scipy_warp, 3)
        row = [name, fwd, bwd, sp, None, None]
        if torch is not None:
            xt = torch.from_numpy(x)
            tt = torch.from_numpy(theta)

            def torch_fwd():
                g = F.affine_grid(tt, xt.shape, align_corners=False)
                return F.grid_sample(xt, g, align_corners=False)

            xg = xt.clone().requires_grad_(True)
            tg = tt.clone().requires_grad_(True)
            gt = torch.from_numpy(go)

            def torch_bwd():
                g = F.affine_grid(tg, xg.shape, align_corners=False)
                out = F.grid_sample(xg, g, align_corners=False)
                xg.grad = tg.grad = None
                out.backward(gt)

            row[4] = _median_ms(torch_fwd, repeat)
            row[5] = _median_ms(torch_bwd, repeat)
        rows.append(row)
    th = numba.get_num_threads()
    print(f"warp_affine, float32, bilinear/zeros, random θ; median ms, {th} threads")
    head = f"{'workload':<16}{'stn fwd':>9}{'stn bwd':>9}{'scipy fwd':>11}{'torch fwd':>11}"
    print(head + f"{'torch bwd':>11}{'vs scipy':>10}{'vs torch':>10}{'bwd vs torch':>14}")
    for name, fwd, bwd, sp, tf, tb in rows:
        fmt = lambda v: f"{v:.2f}" if v is not None else "—"  # noqa: E731
        ratio = lambda a, b: f"{a / b:.1f}×" if a is not None else "—"  # noqa: E731
        print(
            f"{name:<16}{fwd:>9.2f}{bwd:>9.2f}{sp:>11.2f}{fmt(tf):>11}{fmt(tb):>11}"
            f"{ratio(sp, fwd):>10}{ratio(tf, fwd):>10}{ratio(tb, bwd):>14}"
        )
    if torch is None:
        print("(torch not installed: its columns are empty)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m stn_numba", description=__doc__.split("\n")[0])
    parser.add_argument(
        "command",
        nargs="?",
        default="demo",
        choices=["demo", "bench"],
        help="demo: demo warp then benchmark table; bench: the table only",
    )
    parser.add_argument("--quick", action="store_true", help="one small workload")
    args = parser.parse_args(argv)
    ok = True
    if args.command == "demo":
        ok = demo()
    bench(args.quick)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
