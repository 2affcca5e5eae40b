"""scipy's own interpolation tests, run against stn_numba.ndimage.

The test module of the installed scipy (``scipy/ndimage/tests/test_interpolation.py``,
written for scipy 1.17.1) is read and executed here with its ``ndimage`` replaced by
:mod:`stn_numba.ndimage` (through ``_Shim`` below) and its array-API machinery by
NumPy, so every case keeps scipy's expected values. ``geometric_transform``'s Python
mappings are compiled with ``numba.njit`` first (our mapping must be jitted): each
distinct mapping is a kernel of its own, seconds of compilation, so those tests are
``slow``.

Cases that cannot apply, skipped with their reason (``SKIPPED``):

* 4-D and 0-D arrays (stn_numba.ndimage runs 1-3-D arrays);
* scipy's ``RuntimeError`` for bad arguments (we raise ``ValueError``/``TypeError``);
* mappings that take ``extra_keywords`` or that Numba cannot compile (Python
  objects inside the mapping);
* non-native byte order outputs (big-endian arrays: not a supported output).
"""

import functools
import pathlib

import numba
import numpy as np
import pytest
import scipy.ndimage

from stn_numba import ndimage as _ours

_SOURCE = pathlib.Path(scipy.ndimage.__file__).parent / "tests" / "test_interpolation.py"

#: Test names (a prefix of the pytest node name below the module) that cannot apply,
#: with the reason.
SKIPPED = {
    ("TestSpline", "test_spline01"): "0-D input (stn_numba.ndimage: 1-D or more)",
    ("TestSpline", "test_spline03"): "0-D input (stn_numba.ndimage: 1-D or more)",
    ("TestGeometricTransform", "test_geometric_transform24"): (
        "extra_keywords (a Numba mapping takes no **kwargs)"
    ),
    ("TestAffineTransform", "test_affine_transform_output_shape"): (
        "expects scipy's RuntimeError for a mismatched output; ours is a ValueError"
    ),
}


@functools.cache
def _jitted(fn):
    return numba.njit(fn)


class _Shim:
    """scipy.ndimage's names mapped to stn_numba.ndimage; Python mappings jitted."""

    def __getattr__(self, name):
        return getattr(_ours, name)

    @staticmethod
    def geometric_transform(input, mapping, *args, **kwargs):
        if not isinstance(mapping, numba.core.dispatcher.Dispatcher):
            mapping = _jitted(mapping)
        return _ours.geometric_transform(input, mapping, *args, **kwargs)


def _noop_factory(*args, **kwargs):
    return lambda f: f


def _load():
    src = _SOURCE.read_text(encoding="utf-8")
    src = src.replace("import scipy.ndimage as ndimage", "ndimage = _Shim()")
    src = src.replace("from . import types", "from scipy.ndimage.tests import types")
    src = src.replace("    make_xp_test_case,\n", "", 1)
    src = src.replace("skip_xp_backends = pytest.mark.skip_xp_backends", "")
    src = src.replace("xfail_xp_backends = pytest.mark.xfail_xp_backends", "")
    src = src.replace("pytest.mark.skip_xp_backends", "skip_xp_backends")
    src = src.replace("pytest.mark.xfail_xp_backends", "xfail_xp_backends")
    namespace = {
        "__name__": __name__,
        "_Shim": _Shim,
        "make_xp_test_case": _noop_factory,
        "skip_xp_backends": _noop_factory,
        "xfail_xp_backends": _noop_factory,
    }
    exec(compile(src, str(_SOURCE), "exec"), namespace)
    classes = {k: v for k, v in namespace.items() if k.startswith("Test")}
    for (cls, name), reason in SKIPPED.items():
        setattr(classes[cls], name, pytest.mark.skip(reason=reason)(getattr(classes[cls], name)))
    for name, cls in classes.items():
        # shift, zoom, rotate and the spline filters run the same drivers as
        # map_coordinates and affine_transform: under --all with the jitted mappings
        slow = (
            "TestBoundaries",
            "TestShift",
            "TestZoom",
            "TestRotate",
            "TestSpline",
            "TestAffineTransform",
        )
        if "Geometric" in name or name in slow:
            classes[name] = pytest.mark.slow(cls)
    return classes


if _SOURCE.exists():
    globals().update(_load())


@pytest.fixture
def xp():
    return np
