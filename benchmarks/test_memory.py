"""Peak memory of each operation on the suite's workloads (tracemalloc: every NumPy
allocation), beside the size of its result.

Run: ``python -m pytest benchmarks/test_memory.py --benchmark-only -s``; each case
prints ``op workload: result MB, extra MB``. The timing is incidental; the numbers are
in ``extra_info`` (and ``benchmarks/README.md``).
"""

import tracemalloc

import numpy as np
import pytest

import stn_numba as stn
from stn_numba import _bench as B

OPS = {
    "grid_sample": lambda d: stn.grid_sample(d["x"], d["grid"]),
    "warp_affine": lambda d: stn.warp_affine(d["x"], d["theta"]),
    "warp_perspective": lambda d: stn.warp_perspective(d["x"], d["H"]),
    "warp_flow": lambda d: stn.warp_flow(d["x"], d["flow"]),
    "backward": lambda d: stn.grid_sample_backward(d["gout"], d["x"], d["grid"]),
    "warp_affine_backward": lambda d: stn.warp_affine_backward(d["gout"], d["x"], d["theta"]),
}


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("workload", ["W1", "W2"])
def test_peak_memory(benchmark, workload, op):
    data = B.make_data(workload)
    fn = lambda: OPS[op](data)  # noqa: E731
    fn()
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    arrays = result if isinstance(result, tuple) else (result,)
    kept = sum(a.nbytes for a in arrays if a is not None)
    benchmark.extra_info.update(result_mb=kept / 2**20, extra_mb=(peak - kept) / 2**20)
    print(f"\n{op} {workload}: result {kept / 2**20:.2f} MB, extra {(peak - kept) / 2**20:.3f} MB")
    benchmark.pedantic(fn, rounds=1, iterations=1)
    assert np.isfinite(peak)
