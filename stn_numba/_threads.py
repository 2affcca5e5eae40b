"""Which Numba threading layer runs the parallel CPU code, chosen at import.

Numba picks its threading layer at the first parallel launch of the process, by
default the first of TBB, OpenMP and ``workqueue`` that loads. On Linux the OpenMP is
usually GNU's, and a process forked after a parallel launch under it dies at its own
first launch ("fork() called from a process already using GNU OpenMP"), so
``multiprocessing`` pools, a PyTorch ``DataLoader`` with workers or dask's process
scheduler that call this package after the parent did hang or crash.

Unless the user chose a layer, this module selects Numba's ``"forksafe"`` policy:
TBB if it loads (fork- and thread-safe), else ``workqueue`` (fork-safe, but one
parallel launch at a time: concurrent calls from several Python threads are serialised
by a lock in :mod:`stn_numba._compat`). A ``pip install tbb`` puts ``libtbb`` in
``<prefix>/lib``, which is not on the loader's path outside conda; it is loaded from
there so that Numba finds it.

TBB and ``workqueue`` cost more than OpenMP per small call and the same on large
calls; what each layer costs is measured in benchmarks/README.md ("Threading
layers").

The user's choice wins: ``NUMBA_THREADING_LAYER`` (environment or ``.numba_config.yaml``),
``NUMBA_THREADING_LAYER_PRIORITY``, or ``numba.config.THREADING_LAYER`` set before
``import stn_numba``; so does a layer already started by other code. Because Numba
re-reads its ``NUMBA_*`` environment variables when one of them changes, set them
before the first parallel call.
"""

import os

from numba.core import config
from numba.np.ufunc import parallel

from ._compat import preload_pip_tbb as _preload_pip_tbb

#: The layer policy this package selects (Numba's name; see the module docstring).
POLICY = "forksafe"


def _user_chose():
    env = ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY")
    return (
        any(name in os.environ for name in env)
        or str(config.THREADING_LAYER).lower() != "default"
        or list(config.THREADING_LAYER_PRIORITY) != ["tbb", "omp", "workqueue"]
    )


def select():
    """Apply :data:`POLICY` unless the user chose a layer or one is running already.

    Returns the policy applied, or None when the choice was left to the user / Numba.
    """
    if parallel._is_initialized:
        return None
    user = _user_chose()
    if not user or str(config.THREADING_LAYER).lower() in ("default", "tbb", "safe", "threadsafe"):
        _preload_pip_tbb()
    if user:
        return None
    config.THREADING_LAYER = POLICY
    return POLICY


SELECTED = select()
