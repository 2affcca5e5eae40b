"""stn_numba.ndimage against scipy.ndimage, same call, interleaved medians (seconds).

W3-like: one 2048×2048 float32 channel (W3 has 3 of them: the ratio is the same).
Run: PYTHONPATH=. python benchmarks/ndimage_vs_scipy.py [repeats]
"""

import statistics
import sys
import time

import numpy as np
import scipy.ndimage as ndi

from stn_numba import ndimage as nd

rng = np.random.default_rng(0)
a = rng.random((2048, 2048)).astype(np.float32)
th = np.deg2rad(10)
M = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]) * 0.9
off = [100.0, -80.0]
coords = np.indices(a.shape, dtype=np.float64) + rng.uniform(-2, 2, (2, *a.shape))
CASES = {
    "affine_transform order 1": lambda m: m.affine_transform(a, M, off, order=1),
    "affine_transform order 3": lambda m: m.affine_transform(a, M, off, order=3),
    "map_coordinates order 1": lambda m: m.map_coordinates(a, coords, order=1),
    "map_coordinates order 3": lambda m: m.map_coordinates(a, coords, order=3),
    "zoom x2 order 3": lambda m: m.zoom(a, 2, order=3),
}
repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
for name, fn in CASES.items():
    fn(nd)
    times = {"scipy": [], "stn_numba": []}
    for _ in range(repeats):
        for label, mod in (("scipy", ndi), ("stn_numba", nd)):
            t = time.perf_counter()
            fn(mod)
            times[label].append(time.perf_counter() - t)
    s, o = statistics.median(times["scipy"]), statistics.median(times["stn_numba"])
    print(f"{name:28s} scipy {s:7.3f}  stn_numba {o:7.3f}  ratio {s / o:5.1f}")
