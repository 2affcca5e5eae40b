"""Where the time goes: the measurements behind "what limits it" in benchmarks/README.md.

Run: ``python benchmarks/profile_time.py`` (about 3 minutes on 2 cores; torch optional).
The pytest-benchmark form of the same cases: ``python -m pytest benchmarks/profile_time.py
--benchmark-only`` (not part of the test suite: testpaths = tests).

Everything is timed through the public API (no instrumented copy of a kernel), in the
suite's fairness rules (warm, same arrays, medians, torch's THP allocator on):

* **per thread**: one thread each, ns per output pixel. torch's CPU kernels parallelise
  over the batch only, so this is the per-core efficiency that the 2-thread ratios of
  the suite mix with thread use;
* **scaling**: the time at 1 thread over the time at every thread;
* **channels**: 64×C×128×128 at C = 1 and C = 3. The time is a + b·C: ``a`` is the cost
  per output pixel that does not depend on the channels (source point, taps, weights),
  ``b`` the cost of one channel's reads (four taps, the weighted sum, the store);
* **pattern**: one 1×3×2048×2048 image sampled at the identity, at the suite's random θ
  and at a 90° rotation (the same arithmetic, only the order of the reads changes);
* **floor**: ``np.copyto`` of an output-sized array, the memory traffic of any warp.
"""

import os
import sys

import numba
import numpy as np
import pytest

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # before torch is imported

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from stn_numba import _bench

OPS = ("grid_sample", "warp_affine", "backward")
PER_THREAD = ("W1", "W2", "W3")
IMPLS = ("stn_numba", "torch")


def _threads(n):
    numba.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def _callable(impl, op, data):
    """The suite's timed callable (checked against stn_numba), or None with a reason."""
    try:
        return _bench.prepare(impl, op, data), None
    except _bench.Skip as why:
        return None, str(why)


def _data_rotated(data, kind):
    """``data`` with θ (and its grid) replaced: identity or a 90° rotation per sample."""
    import stn_numba as stn

    n = data["x"].shape[0]
    theta = np.zeros((n, 2, 3), np.float32)
    if kind == "identity":
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    else:  # x_in = -y_out, y_in = x_out
        theta[:, 0, 1] = -1.0
        theta[:, 1, 0] = 1.0
    out = dict(data)
    out["theta"] = theta
    out["grid"] = stn.affine_grid(theta, data["x"].shape)
    return out


def _channels_data(c):
    rng = np.random.default_rng(0)
    x = rng.random((64, c, 128, 128), dtype=np.float32)
    data = _bench.make_data("W2")
    data = {k: data[k] for k in ("theta", "grid")}
    data["x"] = x
    data["gout"] = rng.random(x.shape, dtype=np.float32)
    return data


def cases():
    """(section, label, threads, impl, op, data factory) of every measurement."""
    out = []
    for wl in PER_THREAD:
        for op in OPS:
            for impl in IMPLS:
                for t in (1, numba.config.NUMBA_NUM_THREADS):
                    out.append(("threads", wl, t, impl, op, lambda wl=wl: _bench.make_data(wl)))
    for c in (1, 3):
        for impl in IMPLS:
            for op in ("grid_sample", "backward"):
                t = numba.config.NUMBA_NUM_THREADS
                out.append(("channels", f"C={c}", t, impl, op, lambda c=c: _channels_data(c)))
    for kind in ("identity", "random", "rot90"):
        for impl in IMPLS:
            t = numba.config.NUMBA_NUM_THREADS

            def make(kind=kind):
                data = _bench.make_data("W3")
                return data if kind == "random" else _data_rotated(data, kind)

            out.append(("pattern", kind, t, impl, "grid_sample", make))
    return out


_DATA = {}


def _get(section, label, factory):
    key = (section, label)
    if key not in _DATA:
        _DATA.clear()  # one workload's arrays at a time
        _DATA[key] = factory()
    return _DATA[key]


@pytest.mark.parametrize("case", cases(), ids=lambda c: f"{c[0]}-{c[1]}-t{c[2]}-{c[3]}-{c[4]}")
def test_profile(benchmark, case):
    section, label, t, impl, op, factory = case
    benchmark.group = f"{section} {label} {op} threads={t}"
    _threads(t)
    fn, why = _callable(impl, op, _get(section, label, factory))
    if fn is None:
        pytest.skip(why)
    benchmark(fn)


def main():
    every = numba.config.NUMBA_NUM_THREADS
    ms = {}
    skipped = set()
    for section, label, t, impl, op, factory in cases():
        _threads(t)
        data = _get(section, label, factory)
        fn, why = _callable(impl, op, data)
        if fn is None:
            skipped.add(f"{impl}: {why}")
            continue
        big = data["x"].size > 4_000_000
        ms[section, label, t, impl, op] = _bench.median_ms(fn, 5 if big else 11)
        pixels = int(np.prod(data["x"].shape)) // data["x"].shape[1]
        ms[section, label, "pixels"] = pixels
    _threads(every)

    print(f"Per thread and scaling (ns per output pixel at 1 thread; x = 1 thread / {every})")
    print(f"{'':4}{'operation':13}" + "".join(f"{i:>22}" for i in IMPLS))
    for wl in PER_THREAD:
        for op in OPS:
            row = f"{wl:4}{op:13}"
            for impl in IMPLS:
                one = ms.get(("threads", wl, 1, impl, op))
                all_ = ms.get(("threads", wl, every, impl, op))
                if one is None:
                    row += f"{'—':>22}"
                    continue
                ns = one * 1e6 / ms["threads", wl, "pixels"]
                row += f"{ns:>10.1f} ns  {one / all_:>5.2f}x  "
            print(row)

    print("\nPer output pixel a, per channel b (ns, 64xCx128x128 at C = 1, 3, all threads)")
    px = 64 * 128 * 128
    for op in ("grid_sample", "backward"):
        for impl in IMPLS:
            t1 = ms.get(("channels", "C=1", every, impl, op))
            t3 = ms.get(("channels", "C=3", every, impl, op))
            if t1 is None:
                continue
            b = (t3 - t1) / 2 * 1e6 / px
            a = t1 * 1e6 / px - b
            print(f"  {op:12} {impl:10} a = {a:5.1f}  b = {b:5.1f}  ({t1:.2f} / {t3:.2f} ms)")

    print("\nRead pattern: 1x3x2048x2048 grid_sample, all threads (ms)")
    for impl in IMPLS:
        kinds = ("identity", "random", "rot90")
        vals = [ms.get(("pattern", k, every, impl, "grid_sample")) for k in kinds]
        if vals[0] is None:
            continue
        print(f"  {impl:10} identity {vals[0]:7.2f}   random θ {vals[1]:7.2f}   90° {vals[2]:7.2f}")

    for wl in ("W2", "W3"):
        x = _bench.make_data(wl)["x"]
        out = np.empty_like(x)
        copy = _bench.median_ms(lambda x=x, out=out: np.copyto(out, x), 11)
        mib = x.nbytes / 2**20
        print(f"\nfloor {wl}: np.copyto of the output ({mib:.0f} MiB) {copy:.2f} ms", end="")
    print()
    for s in sorted(skipped):
        print("  skipped —", s)


if __name__ == "__main__":
    main()
