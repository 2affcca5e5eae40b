"""The benchmark suite's definitions (stn_numba._bench) on tiny workloads.

Every implementation must compute the same warp as stn_numba before it is timed
(``prepare`` raises otherwise), so these tests check the suite's conversions — scipy's
pixel matrices, OpenCV's maps and inverse matrices, torch's calls — not speed.
"""

import importlib.util

import numba
import numpy as np
import pytest
import scipy.ndimage as ndi

from stn_numba import _bench as B
from stn_numba import ndimage as nd

TINY = {"T2": (3, 2, 9, 11), "T3": (2, 1, 5, 6, 7)}
#: Many small images: stn_numba.ndimage's calls are made from several threads.
MANY = {"T2many": (17, 2, 9, 11)}


@pytest.fixture(autouse=True)
def tiny_workloads(monkeypatch):
    monkeypatch.setattr(B, "WORKLOADS", dict(B.WORKLOADS, **TINY, **MANY))


def _available(impl):
    mod = {"torch": "torch", "opencv": "cv2"}.get(impl)
    return mod is None or importlib.util.find_spec(mod) is not None


@pytest.mark.parametrize("impl", B.IMPLEMENTATIONS)
@pytest.mark.parametrize("op", B.OPERATIONS)
@pytest.mark.parametrize("workload", list(TINY))
def test_prepare_agrees_or_skips(workload, op, impl):
    if not _available(impl):
        pytest.skip(f"{impl} is not installed: its benchmark case cannot be checked")
    data = B.make_data(workload)
    expected_skip = (
        (impl == "scipy" and op == "backward")
        or (impl == "opencv" and (op == "backward" or workload == "T3"))
        or (op == "warp_perspective" and workload == "T3")  # homographies are 2-D
    )
    if expected_skip:
        with pytest.raises(B.Skip):
            B.prepare(impl, op, data)
        return
    fn = B.prepare(impl, op, data)  # raises AssertionError if it disagrees
    result = fn()
    first = result[0] if isinstance(result, tuple) else result
    x = data["x_last"] if op.endswith("_nhwc") else data["x"]
    assert np.asarray(first).shape == x.shape


@pytest.mark.parametrize("op", B.ND_OPERATIONS)
@pytest.mark.parametrize("workload", [*TINY, *MANY])
def test_ndimage_rows_agree_with_scipy(workload, op):
    data = B.make_data(workload)
    if op.startswith("nd_zoom"):  # timed on W3 only
        with pytest.raises(B.Skip):
            B.prepare("scipy", op, data)
        return
    fn = B.prepare("scipy", op, data)  # raises AssertionError if it disagrees
    assert np.asarray(fn()).shape == data["x"].shape


def test_many_ndimage_calls_run_from_threads_and_fill_every_image():
    data = B.make_data("T2many")
    ours = B._ndimage(nd, "nd_mapcoord_o1", data)
    threaded = numba.get_num_threads() > 1  # 34 calls: at least 4 per thread
    assert ours.__name__ == ("from_threads" if threaded else "in_turn")
    out = ours()
    out.fill(np.nan)  # every call must write its plane again
    out = ours()
    want = B._ndimage(ndi, "nd_mapcoord_o1", data)()
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)


def test_check_catches_a_wrong_implementation(monkeypatch):
    """prepare() must refuse an implementation that computes something else."""
    data = B.make_data("T2")
    monkeypatch.setitem(B.SETUP, "scipy", lambda op, d: lambda: d["x"] * 0.5)
    with pytest.raises(AssertionError, match="differs from stn_numba"):
        B.prepare("scipy", "warp_affine", data)


def test_random_theta_ranges():
    rng = np.random.default_rng(1)
    th = B.random_theta(500, 2, rng)
    scale = np.hypot(th[:, 0, 0], th[:, 1, 0])
    angle = np.degrees(np.arctan2(th[:, 1, 0], th[:, 0, 0]))
    assert th.dtype == np.float32 and th.shape == (500, 2, 3)
    assert 0.8 <= scale.min() and scale.max() <= 1.2
    assert -30 <= angle.min() and angle.max() <= 30
    assert np.abs(th[:, :, 2]).max() <= 0.2


def test_median_ms_excludes_warmup():
    calls = []
    ms = B.median_ms(lambda: calls.append(1), repeat=3, warm=2)
    assert len(calls) == 5 and ms >= 0.0


def test_first_call_runs_on_an_empty_cache():
    from stn_numba.__main__ import FIRST_CALLS, first_calls

    got = first_calls(["warp_affine uint8 NHWC"])
    assert list(got) == ["warp_affine uint8 NHWC"] and "uint8" not in FIRST_CALLS["warp_affine"]
    # it compiled in that process: more CPU than a call that loads machine code (~0.3 s)
    assert 0.5 < got["warp_affine uint8 NHWC"] < 600
