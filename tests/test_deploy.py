"""Faults of real deployments, each in a fresh Python process (with a timeout, so a hang
fails instead of blocking): no writable cache directory, an edited source file, corrupt
cache files, and forking after a parallel call.

The children compute ``affine_grid``, whose kernels compile in about a second, so the
tests that need a cold cache stay cheap; the others share the default cache.
"""

import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

import stn_numba

PACKAGE = pathlib.Path(stn_numba.__file__).resolve().parent

#: A child's computation: the identity grid of a 1×1×2×2 image, printed.
GRID = textwrap.dedent(
    """
    import numpy as np
    import stn_numba as stn
    g = stn.affine_grid(np.array([[[1.0, 0, 0], [0, 1, 0]]]), (1, 1, 2, 2))
    print("grid", g.ravel().tolist())
    """
)
IDENTITY = "grid [-0.5, -0.5, 0.5, -0.5, -0.5, 0.5, 0.5, 0.5]"


def run(code, env=None, timeout=120, args=(), script=None):
    """Run ``code`` in a child interpreter that shows every warning; return it finished.

    With ``script`` (a path), the code is written there and run as that file, so that
    spawned grandchildren can import its functions."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    full.update(env or {})
    full.setdefault("PYTHONPATH", str(PACKAGE.parent))
    if script is not None:
        pathlib.Path(script).write_text(code)
    source = ["-c", code] if script is None else [str(script)]
    cmd = [sys.executable, "-W", "always", *source, *args]
    # run where the package under test is: ``-c`` puts the working directory first on
    # sys.path, and it must not shadow a copy of the package
    cwd = full["PYTHONPATH"].split(os.pathsep)[0]
    return subprocess.run(cmd, env=full, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def copy_package(dest):
    """A copy of the package's sources in ``dest``/stn_numba (no cache files)."""
    shutil.copytree(PACKAGE, dest / "stn_numba", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


# ----------------------------------------------------------------------------
# The cache
# ----------------------------------------------------------------------------


def test_import_and_compute_without_writable_cache(tmp_path):
    """A read-only install and home directory: every place Numba could cache in is
    blocked (a file stands where each directory would be; this works as root too). The
    package imports, computes, and warns once, naming NUMBA_CACHE_DIR."""
    root = copy_package(tmp_path)
    (root / "stn_numba" / "__pycache__").write_text("not a directory")
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    env = {
        "PYTHONPATH": str(root),
        "HOME": str(blocker),
        "XDG_CACHE_HOME": str(blocker / "cache"),
        "NUMBA_CACHE_DIR": str(blocker / "numba"),
    }
    child = run(GRID, env)
    assert child.returncode == 0, child.stderr
    assert IDENTITY in child.stdout
    assert child.stderr.count("CacheWarning") == 1, child.stderr
    assert "NUMBA_CACHE_DIR" in child.stderr


def test_editing_a_callee_recompiles_its_cached_callers(tmp_path):
    """Numba checks only the caller's own file: after ``base_coord`` (in _coords.py)
    changes, the cached ``affine_grid`` driver (in _cpu.py) must not keep the old code.
    The cache is keyed on a hash of every source file of the package."""
    root = copy_package(tmp_path)
    env = {"PYTHONPATH": str(root), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    first = run(GRID, env)
    assert first.returncode == 0 and IDENTITY in first.stdout, first.stderr
    with open(root / "stn_numba" / "_coords.py", "a") as f:
        f.write(
            "\n\nimport numba as _edit\n\n\n@_edit.njit(cache=True)\n"
            "def base_coord(i, n, align_corners, like):  # the edit\n    return 7.0\n"
        )
    second = run(GRID, env)
    assert second.returncode == 0, second.stderr
    assert "grid [7.0, 7.0," in second.stdout, "stale cached code: " + second.stdout


def test_cached_closures_are_told_apart_by_their_cells(tmp_path):
    """Closures made by a factory in a package file share a cache index and differ by
    their cell contents; both load from the cache in a second process."""
    code = textwrap.dedent(
        """
        import numba
        import stn_numba._jit as jit
        lines = ["def make(k):", "    @numba.njit(cache=True)", "    def scaled(x):",
                 "        return x * k", "    return scaled"]
        src = "\\n" * 5000 + "\\n".join(lines)  # line 5001 on: no clash with the module's
        ns = {"numba": numba, "__name__": "stn_numba._jit"}
        exec(compile(src, jit.__file__, "exec"), ns)  # a function of a package file
        f2, f3 = ns["make"](2.0), ns["make"](3.0)
        print("values", f2(1.5), f3(1.5))
        print("hits", sum(f2.stats.cache_hits.values()), sum(f3.stats.cache_hits.values()))
        print("path", f2._cache.cache_path)
        """
    )
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    first = run(code, env)
    assert first.returncode == 0, first.stderr
    assert "values 3.0 4.5" in first.stdout and "hits 0 0" in first.stdout
    assert stn_numba._cache.source_hash() in first.stdout  # our locator's directory
    second = run(code, env)
    assert second.returncode == 0, second.stderr
    assert "values 3.0 4.5" in second.stdout and "hits 1 1" in second.stdout, second.stdout
    assert "Warning" not in first.stderr + second.stderr


def test_corrupt_cache_files_are_recompiled(tmp_path):
    """Random bytes over the index (.nbi), then over the data (.nbc) file of a cached
    kernel: the call recompiles with a warning and repairs the entry."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    check = GRID + textwrap.dedent(
        """
        from stn_numba import _cpu
        print("hits", sum(_cpu.affine_grid_2d.stats.cache_hits.values()))
        """
    )
    first = run(check, env)
    assert first.returncode == 0 and IDENTITY in first.stdout, first.stderr
    rng = __import__("numpy").random.default_rng(0)
    for suffix in ("nbi", "nbc"):
        (victim,) = (tmp_path / "cache").rglob(f"_cpu.affine_grid_2d-*.{suffix}")
        victim.write_bytes(rng.bytes(300))
        hurt = run(check, env)
        assert hurt.returncode == 0, hurt.stderr
        assert IDENTITY in hurt.stdout and "hits 0" in hurt.stdout
        assert "CacheWarning" in hurt.stderr and "recompiling affine_grid_2d" in hurt.stderr
        healed = run(check, env)
        assert healed.returncode == 0, healed.stderr
        assert "hits 1" in healed.stdout and "Warning" not in healed.stderr, healed.stderr


def test_source_hash_covers_every_module(tmp_path):
    root = copy_package(tmp_path)
    before = stn_numba._cache.source_hash(root / "stn_numba")
    assert before == stn_numba._cache.source_hash()
    with open(root / "stn_numba" / "_modes.py", "a") as f:
        f.write("\n")
    assert stn_numba._cache.source_hash(root / "stn_numba") != before


# ----------------------------------------------------------------------------
# Threading layer and fork
# ----------------------------------------------------------------------------

FORK = GRID.replace('print("grid", g.ravel().tolist())', "") + textwrap.dedent(
    """
    import multiprocessing, os, sys

    def f(i):
        g = stn.affine_grid(np.array([[[1.0, 0, 0], [0, 1, 0]]]), (1, 1, 2, 2))
        return float(g.sum()) + i

    if __name__ == "__main__":
        import numba
        how = sys.argv[1]
        print("parent", f(0), numba.threading_layer(), flush=True)  # the layer starts
        if how == "os.fork":
            pid = os.fork()
            if pid == 0:
                os._exit(0 if f(1) == 1.0 else 3)
            print("child exit", os.waitpid(pid, 0)[1])
        else:
            with multiprocessing.get_context(how).Pool(2) as pool:
                print("pool", pool.map(f, range(2)))
    """
)


@pytest.mark.parametrize(
    "how,expect",
    [("os.fork", "child exit 0"), ("fork", "pool [0.0, 1.0]"), ("spawn", "pool [0.0, 1.0]")],
)
def test_fork_and_spawn_after_a_parallel_call(how, expect, tmp_path):
    child = run(FORK, timeout=60, args=(how,), script=tmp_path / "forks.py")
    assert child.returncode == 0, child.stdout + child.stderr
    assert expect in child.stdout, child.stdout + child.stderr
    layer = child.stdout.split()[2]
    assert layer in ("tbb", "workqueue"), child.stdout
    assert "Warning" not in child.stderr and "Terminating" not in child.stderr, child.stderr


def test_threading_layer_policy_and_the_users_choice():
    code = GRID + "import numba, stn_numba._threads as t\n"
    code += "print(numba.threading_layer(), t.SELECTED)"
    child = run(code)
    assert child.returncode == 0, child.stderr
    try:  # pip's tbb is loaded from <prefix>/lib, off the loader's path
        importlib.metadata.distribution("tbb")
        expected = "tbb"
    except importlib.metadata.PackageNotFoundError:
        expected = "workqueue"
    assert child.stdout.split()[-2:] == [expected, "forksafe"], child.stdout
    kept = []
    for layer in ("omp", "tbb", "workqueue"):
        child = run(code, {"NUMBA_THREADING_LAYER": layer})
        if "No threading layer could be loaded" in child.stderr:
            print(f"NUMBA_THREADING_LAYER={layer}: this layer cannot be loaded here")
            continue
        assert child.returncode == 0, child.stderr
        assert child.stdout.split()[-2:] == [layer, "None"], child.stdout
        kept.append(layer)
    assert "workqueue" in kept  # part of Numba: it always loads
