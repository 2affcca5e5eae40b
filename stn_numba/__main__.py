"""``python -m stn_numba``: the demo contact sheet, the benchmark table, and ``compile``.

``python -m stn_numba [demo|bench] [--quick] [--image PATH] [--output PATH] [--transform
NAME]``: ``demo`` warps the shipped test card (or ``--image``: ``.npy``, or PNG/JPEG with
Pillow) by a rotation, a zoom, a shear, a projective and a thin-plate-spline transform
(or only ``--transform NAME``, repeatable), writes a PNG contact sheet (``--output``,
default ``stn_demo.png``), checks every output against ``scipy.ndimage`` and times both;
``bench`` runs only the benchmark suite; no command runs the demo, then the suite.
``compile [--dtype D] [--layout L] [--all] [--only PATTERN] [--list]`` fills the JIT
cache ahead of use (see :mod:`stn_numba._compile`).
The suite (workloads W1–W5 ×
grid_sample / warp_affine / backward / warp_perspective / warp_flow × stn_numba, torch,
OpenCV, scipy; see :mod:`stn_numba._bench`) prints one table of medians and stn_numba's
speed-up over each.
"""

import argparse
import os
import statistics
import sys

import numpy as np


def demo(image=None, output="stn_demo.png", transforms=None):
    """Run the demo (see :mod:`stn_numba._demo`); True when every warp matches scipy."""
    from . import _demo

    result = _demo.run(image, output, transforms or _demo.TRANSFORMS)
    print()
    return result["max_diff"] < 1e-9


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


#: The first calls a new user makes, each timed in a new process on an empty JIT cache.
FIRST_CALLS = {
    "warp_affine": "stn.warp_affine(x, th)",
    "grid_sample": "stn.grid_sample(x, g)",
    "warp_affine_backward": "stn.warp_affine_backward(x, x, th)",
    "grid_sample_backward": "stn.grid_sample_backward(x, x, g)",
    "warp_affine uint8 NHWC": "stn.warp_affine(u8, th, layout='NHWC')",
}


def first_calls(names=None):
    """{name: CPU seconds} of each first call in FIRST_CALLS (float32, (4, 3, 32, 32)),
    made in a new process whose ``NUMBA_CACHE_DIR`` is a new empty directory: what a
    user's first call costs, JIT compilation included."""
    import subprocess
    import tempfile

    setup = (
        "import time, numpy as np, stn_numba as stn\n"
        "x = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)\n"
        "th = np.tile(np.array([[0.9, 0.1, 0.05], [-0.1, 1.1, 0.0]], np.float32), (4, 1, 1))\n"
        "g = np.random.default_rng(1).uniform(-1.1, 1.1, (4, 32, 32, 2)).astype(np.float32)\n"
        "u8 = (255 * np.moveaxis(x, 1, -1)).astype(np.uint8)\n"
        "t = time.process_time()\n{}\nprint(time.process_time() - t)\n"
    )
    out = {}
    for name in names or FIRST_CALLS:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            res = subprocess.run(
                [sys.executable, "-c", setup.format(FIRST_CALLS[name])],
                capture_output=True, text=True, check=True, env=env,
            )  # fmt: skip
        out[name] = float(res.stdout.strip().splitlines()[-1])
    return out


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
        ops = B.OPERATIONS + (B.ND_OPERATIONS if name in B.ND_WORKLOADS else ())
        for op in ops:
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
        "speed-up = other / stn_numba; nd_* rows: stn_numba.ndimage vs scipy.ndimage "
        "(float32, 'constant', order 1 / 3 with prefilter; see _bench.ND_OPERATIONS)"
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
    cold = first_calls()
    print(
        "first call, empty JIT cache, new process (CPU s, compilation included): "
        + ", ".join(f"{k} {v:.1f}" for k, v in cold.items())
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m stn_numba", description=__doc__.split("\n")[0])
    from ._demo import TRANSFORMS

    parser.add_argument(
        "command",
        nargs="?",
        default=None,
        choices=["demo", "bench", "compile"],
        help="demo: the contact sheet only; bench: the benchmark table only; "
        "compile: fill the JIT cache ahead of use; none: the demo, then the table",
    )
    from ._compile import DTYPES, LAYOUTS

    parser.add_argument(
        "--dtype", action="append", choices=DTYPES, help="compile: this float dtype (repeatable)"
    )
    parser.add_argument(
        "--layout", action="append", choices=LAYOUTS, help="compile: this layout (repeatable)"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="compile: every function, 2-D and 3-D, both dtypes and layouts",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="PATTERN",
        help="compile: the targets matching this shell pattern, e.g. 'warp_affine *'",
    )
    parser.add_argument(
        "--list", action="store_true", help="compile: print the targets, compile nothing"
    )
    parser.add_argument(
        "--quick", action="store_true", help="workloads W1, W2, W5 only (under two minutes)"
    )
    parser.add_argument(
        "--image",
        metavar="PATH",
        help="demo image: .npy (H, W), (H, W, C) or (C, H, W), uint8 or floats in [0, 1]; "
        "PNG/JPEG need Pillow (default: the shipped 128×128 test card)",
    )
    parser.add_argument(
        "--output", metavar="PATH", default="stn_demo.png", help="where to write the PNG sheet"
    )
    parser.add_argument(
        "--transform",
        action="append",
        choices=TRANSFORMS,
        help="only this warp (repeatable; default: all five)",
    )
    args = parser.parse_args(argv)
    if args.command == "compile":
        from . import _compile

        return _compile.main(args)
    ok = True
    if args.command in (None, "demo"):
        try:
            ok = demo(args.image, args.output, args.transform)
        except (ImportError, OSError, TypeError, ValueError) as why:
            parser.error(f"demo: {why}")
    if args.command in (None, "bench"):
        bench(args.quick)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
