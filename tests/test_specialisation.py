"""Per-use specialisation: a call compiles only the driver of its own mode, padding,
align_corners and point source, and that driver is loaded from the disk cache by the
next process (subprocesses, empty NUMBA_CACHE_DIR)."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

_REPORT = """
import json, numpy as np, stn_numba as stn
from stn_numba import _cpu
x = np.random.default_rng(0).random((2, 3, 6, 7), dtype=np.float32)
theta = np.array([[[0.9, 0.1, 0.05], [-0.1, 1.1, 0.0]]] * 2, np.float32)
stn.warp_affine(x, theta)
made = {}
for name in ("sample_2d_cpu", "sample_3d_cpu", "row_taps_2d", "row_taps_3d",
             "grad_points_2d_cpu", "scatter_2d_cpu", "backward_bilinear_2d_cpu",
             "point_row_2d"):
    factory = getattr(_cpu, name)
    for key, disp in factory.specialisations.items():
        if disp.signatures:  # compiled or loaded in this process
            made[name + repr(key)] = [
                len(disp.signatures),
                sum(disp.stats.cache_hits.values()),
                sum(disp.stats.cache_misses.values()),
            ]
print(json.dumps(made))
"""


def _report(cache):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", _REPORT], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_warp_affine_compiles_only_its_path_and_caches_it(tmp_path):
    from stn_numba._modes import AFFINE, BILINEAR, ZEROS

    cold = _report(tmp_path)
    # bilinear, zeros padding, points from θ, channels first: one driver and its row
    # function, each compiled once; no other mode, padding, source or layout
    assert cold == {
        f"sample_2d_cpu{(AFFINE, BILINEAR, ZEROS, False)!r}": [1, 0, 1],
        f"row_taps_2d{(AFFINE, ZEROS)!r}": [1, 0, 1],
    }
    names = {p.name.split("-")[0] for p in tmp_path.rglob("*.nbi")}
    assert not any("scatter" in n or "backward" in n or "grad_points" in n for n in names)
    assert not any("3d" in n for n in names)
    # a new process loads the driver from the disk cache (its machine code includes
    # the row function's) and compiles nothing
    warm = _report(tmp_path)
    assert warm == {f"sample_2d_cpu{(AFFINE, BILINEAR, ZEROS, False)!r}": [1, 1, 0]}
