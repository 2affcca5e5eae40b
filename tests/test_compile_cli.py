"""``python -m stn_numba compile``: target selection, and a cold cache filled ahead of
use so that a later process loads instead of compiling (subprocesses, empty
NUMBA_CACHE_DIR)."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from stn_numba import _compile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _run(args, env=None, check=True):
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=full, check=check
    )


def test_default_targets_are_the_common_float32_ones():
    names = [t[0] for t in _compile.targets()]
    assert len(names) == len(_compile.COMMON) * 2
    assert all(" 2-D float32 " in n for n in names)
    assert {n.split()[0] for n in names} == set(_compile.COMMON)


def test_all_dtype_layout_and_only_select():
    everything = _compile.targets(everything=True)
    assert {t[3] for t in everything} == set(_compile.DTYPES)
    assert {t[4] for t in everything} == set(_compile.LAYOUTS)
    assert {t[1] for t in everything} == set(_compile.FUNCTIONS)
    assert any(t[2] == 3 for t in everything) and not any(
        t[1] == "warp_perspective" and t[2] == 3 for t in everything
    )
    picked = _compile.targets(["float64"], ["NHWC"], only=["warp_affine *"])
    assert [t[0] for t in picked] == ["warp_affine 2-D float64 NHWC"]


def test_list_prints_without_compiling(tmp_path):
    out = _run(["-m", "stn_numba", "compile", "--list"], {"NUMBA_CACHE_DIR": str(tmp_path)})
    assert out.stdout.split("\n")[:-1] == [t[0] for t in _compile.targets()]
    assert not any(tmp_path.rglob("*.nbi"))


def test_no_match_is_an_error():
    out = _run(["-m", "stn_numba", "compile", "--only", "nothing*"], check=False)
    assert out.returncode == 2 and "no target matches" in out.stderr


def test_compile_then_a_new_process_loads_from_the_cache(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    out = _run(["-m", "stn_numba", "compile", "--all", "--only", "affine_grid 2-D float64*"], env)
    assert "1/1" in out.stderr and "affine_grid 2-D float64 NCHW" in out.stdout
    files = sorted(p.name for p in tmp_path.rglob("*.nb*"))
    assert any(f.endswith(".nbi") for f in files)
    check = (
        "import numpy as np, stn_numba as stn\n"
        "from stn_numba import _cpu\n"
        "g = stn.affine_grid(np.eye(2, 3)[None], (1, 1, 4, 5))\n"
        "s = _cpu.affine_grid_2d.stats\n"
        "print(len(s.cache_hits), len(s.cache_misses))\n"
    )
    out = _run(["-c", check], env)
    hits, misses = map(int, out.stdout.split())
    assert (hits, misses) == (1, 0)
    assert sorted(p.name for p in tmp_path.rglob("*.nb*")) == files  # nothing new written


@pytest.mark.parametrize("target", _compile.targets(), ids=lambda t: t[0])
def test_each_common_target_runs(target):
    name, fname, dims, dtype, layout = target
    result = _compile._call(fname, dims, dtype, layout)
    first = result[0] if isinstance(result, tuple) else result
    assert first.dtype == np.dtype(dtype)
