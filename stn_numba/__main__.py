"""``python -m stn_numba``: a demo warp and the benchmark table.

``python -m stn_numba [demo|bench] [--quick]``: ``demo`` warps a synthetic test image (a
rotation by 30° with a 1.2× zoom), checks it against ``scipy.ndimage.affine_transform``,
then runs the benchmark suite; ``bench`` runs only the suite. The suite (workloads W1–W5 ×
grid_sample / warp_affine / backward / warp_perspective / warp_flow × stn_numba, torch,
OpenCV, scipy; see :mod:`stn_numba._bench`) prints one table of medians and stn_numba's
speed-up over each.
"""

import argparse
import os
import statistics
import sys

import numpy as np


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


def cold_start():
    """(import stn_numba s, import numba s, first warp_affine call s) in fresh processes."""
    import subprocess

    def run(code):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        return float(out.strip().splitlines()[-1])

    t = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"
    first = (
        "import numpy as np, stn_numba as stn, time; x = np.ones((1, 1, 8, 8), np.float32); "
        "th = np.eye(2, 3, dtype=np.float32)[None]; t = time.perf_counter(); "
        "stn.warp_affine(x, th); print(time.perf_counter() - t)"
    )
    run(first)  # fills the JIT cache if it is cold
    imp = statistics.median(run(t.format("import stn_numba")) for _ in range(3))
    nb = statistics.median(run(t.format("import numba")) for _ in range(3))
    return imp, nb, run(first)


def bench(quick):
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # before torch is imported
    import numba

    from stn_numba import _bench as B

    threads = numba.get_num_threads()
    names = B.QUICK if quick else tuple(B.WORKLOADS)
    skipped = {}
    rows = []
    for name in names:
        data = B.make_data(name)
        big = np.prod(B.WORKLOADS[name]) > 4e6
        for op in B.OPERATIONS:
            row = {}
            for impl in B.IMPLEMENTATIONS:
                try:
                    fn = B.prepare(impl, op, data)
                except B.Skip as why:
                    skipped.setdefault((impl, str(why)), []).append(f"{name} {op}")
                    continue
                slow = impl == "scipy" or big
                repeat = (3 if quick else 5) if slow else (7 if quick else 15)
                row[impl] = B.median_ms(fn, repeat)
            if "stn_numba" in row:  # else stn_numba has no such operation here (skipped)
                rows.append((name, op, row))
            print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    shape = lambda n: "×".join(map(str, B.WORKLOADS[n]))  # noqa: E731
    print(
        f"Median ms, float32, bilinear, zeros, align_corners=False, {threads} threads; "
        "speed-up = other / stn_numba"
    )
    others = [i for i in B.IMPLEMENTATIONS if i != "stn_numba"]
    head = f"{'workload':<19}{'operation':<17}{'stn_numba':>10}"
    head += "".join(f"{o:>9}{'×':>7}" for o in others)
    print(head)
    for name, op, row in rows:
        line = f"{name + ' ' + shape(name):<19}{op:<17}{row['stn_numba']:>10.2f}"
        for o in others:
            if o in row:
                line += f"{row[o]:>9.2f}{row[o] / row['stn_numba']:>6.1f}×"
            else:
                line += f"{'—':>9}{'':>7}"
        print(line)
    for (impl, why), cases in sorted(skipped.items()):
        print(f"  — {impl}, {len(cases)} case(s) skipped: {why}")
    imp, nb, first = cold_start()
    print(
        f"cold start: import stn_numba {1e3 * imp:.0f} ms vs import numba {1e3 * nb:.0f} ms "
        f"({imp / nb:.2f}×); first warp_affine in a new process (JIT cache warm) "
        f"{1e3 * first:.0f} ms"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m stn_numba", description=__doc__.split("\n")[0])
    parser.add_argument(
        "command",
        nargs="?",
        default="demo",
        choices=["demo", "bench"],
        help="demo: demo warp then benchmark table; bench: the table only",
    )
    parser.add_argument(
        "--quick", action="store_true", help="workloads W1, W2, W5 only (under two minutes)"
    )
    args = parser.parse_args(argv)
    ok = True
    if args.command == "demo":
        ok = demo()
    bench(args.quick)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
