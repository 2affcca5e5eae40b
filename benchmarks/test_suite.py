"""The benchmark suite: workload × implementation × operation (pytest-benchmark).

Run: ``python -m pytest benchmarks/test_suite.py --benchmark-only`` (or ``python -m
stn_numba bench`` for one table). Definitions live in :mod:`stn_numba._bench`:
workloads W1–W5, operations grid_sample / warp_affine / backward / warp_perspective /
warp_flow, implementations
stn_numba, torch (CPU), OpenCV (per channel plane) and scipy.ndimage. Every
implementation is warm (first call excluded), runs on the same arrays with the same
thread count, and is checked against stn_numba before it is timed. Compare medians
within one group (one workload × operation); the machine is shared and noisy.
"""

import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # before torch is imported

import numba
import pytest

from stn_numba import _bench as B

_DATA = {}


def _data(workload):
    if workload not in _DATA:
        _DATA.clear()  # one workload's arrays at a time (W4 is 64 MB per array)
        _DATA[workload] = B.make_data(workload)
    return _DATA[workload]


@pytest.mark.parametrize("impl", B.IMPLEMENTATIONS)
@pytest.mark.parametrize("op", B.OPERATIONS)
@pytest.mark.parametrize("workload", list(B.WORKLOADS))
def test_bench(benchmark, workload, op, impl):
    benchmark.group = f"{workload} {'×'.join(map(str, B.WORKLOADS[workload]))} {op}"
    benchmark.extra_info["threads"] = numba.get_num_threads()
    try:
        fn = B.prepare(impl, op, _data(workload))
    except B.Skip as why:
        pytest.skip(f"{impl}: {why}")
    fn()  # warm: JIT compilation and first-touch page faults excluded
    slow = impl == "scipy" or workload in ("W3", "W4")
    benchmark.pedantic(fn, rounds=3 if slow else 10, iterations=1, warmup_rounds=0)
