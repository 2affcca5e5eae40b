"""stn_numba.ndimage against scipy.ndimage on the target workloads, interleaved.

The calls of ``python -m stn_numba bench``'s ``nd_*`` rows (``stn_numba._bench``:
float32 in and out, mode 'constant', order 3 with its prefilter; W2 and W3: stn_numba
transforms a sample's channels in one 3-D affine_transform call, scipy one call per
plane; map_coordinates and zoom one call per plane for both; stn_numba makes W2's many
small calls from ``numba.get_num_threads()`` Python threads), timed in turn (scipy,
then stn_numba, ``repeats`` times) so that a busy moment of a shared machine hits both;
medians in ms, and the largest difference between the two results.

Run: ``PYTHONPATH=. python benchmarks/ndimage_vs_scipy.py [repeats] [W2 | nd_affine_o1 |
W3:nd_zoom2_o3 ...]``
"""

import statistics
import sys
import time

import numpy as np
import scipy.ndimage as sndi

from stn_numba import _bench
from stn_numba import ndimage as nd

repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
only = sys.argv[2:]
for wl in _bench.ND_WORKLOADS:
    data = _bench.make_data(wl)
    for op in _bench.ND_OPERATIONS:
        if only and not {wl, op, f"{wl}:{op}"} & set(only):
            continue
        try:
            ours = _bench._ndimage(nd, op, data)
        except _bench.Skip:
            continue
        theirs = _bench._ndimage(sndi, op, data)
        err = float(np.abs(np.asarray(ours(), np.float64) - np.asarray(theirs())).max())
        ts, to = [], []
        for _ in range(repeats):
            for fn, times in ((theirs, ts), (ours, to)):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
        s, o = 1e3 * statistics.median(ts), 1e3 * statistics.median(to)
        print(
            f"{wl} {op:15s} scipy {s:8.1f} ms  stn_numba {o:8.1f} ms  ratio {s / o:5.1f}  "
            f"max diff {err:.1e}",
            flush=True,
        )
