"""Where the package's compiled code is cached on disk, and how a bad cache is survived.

The one place for workarounds of Numba's caching internals (written against Numba
0.68.1; each one says why). Imported by :mod:`stn_numba._jit` before any function is
decorated, because Numba picks a function's cache location at decoration time.

Location
    ``<where Numba would cache>/<source hash>/``: Numba's own choice of directory
    (``NUMBA_CACHE_DIR`` if set and writable, else ``__pycache__`` beside the sources,
    else the user-wide cache directory), plus a subdirectory named after a hash of the
    contents of every ``stn_numba/*.py`` file. Numba checks only the source file of
    the function it loads, so a cached driver would otherwise keep the old code of a
    kernel it inlined from another file after that file changed; with the hash, editing
    any file of the package starts a fresh cache. (Old hash directories are not
    removed.)
No writable location
    (read-only install and home directory, e.g. a read-only container) Numba 0.68.1
    raises ``RuntimeError: cannot cache function ...: no locator available`` when the
    function is decorated, so ``import stn_numba`` would fail. Here the code is cached
    in a private temporary directory for this process only (removed at exit), or not
    at all when even that cannot be created, with one :class:`CacheWarning` naming
    ``NUMBA_CACHE_DIR``, the setting that gives back a lasting cache.
Unreadable cache files
    Numba 0.68.1 lets the ``pickle`` error of a corrupt index (``*.nbi``) or data
    (``*.nbc``) file escape from every later call of the function. Here the entry is
    discarded and the function recompiled (and saved again), with a
    :class:`CacheWarning`. A cache that cannot be written is a warning too, not an error.

Only functions defined in this package's files are affected; other Numba users in the
same process keep Numba's behaviour, and ``NUMBA_CACHE_LOCATOR_CLASSES`` (which replaces
the locator list) is respected.
"""

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
import warnings

from numba.core import caching, config

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class CacheWarning(UserWarning):
    """The JIT cache of stn_numba could not be used as usual (the code still runs)."""


def source_hash(package_dir=_PACKAGE_DIR):
    """Short hash of the names and contents of every ``*.py`` file of the package
    directory (16 hex digits)."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(package_dir)):
        if name.endswith(".py"):
            h.update(name.encode() + b"\0")
            with open(os.path.join(package_dir, name), "rb") as f:
                h.update(f.read())
            h.update(b"\0")
    return h.hexdigest()[:16]


_HASH = source_hash()
_lock = threading.Lock()
_chosen = {}  # NUMBA_CACHE_DIR setting -> cache directory, or None for no disk cache
_warned = False


def _warn_once(message):
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, CacheWarning, stacklevel=2)


def _writable(path):
    """Create ``path`` if needed and check that a file can be written in it."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _candidates(py_file):
    """Numba 0.68.1's own order of cache directories for ``py_file``
    (UserProvidedCacheLocator, InTreeCacheLocator, UserWideCacheLocator)."""
    subpath = caching._CacheLocator.get_suitable_cache_subpath(py_file)
    if config.CACHE_DIR:
        yield os.path.join(config.CACHE_DIR, subpath)
    yield os.path.join(os.path.dirname(py_file), "__pycache__")
    appdirs = caching.AppDirs(appname="numba", appauthor=False)
    yield os.path.join(appdirs.user_cache_dir, subpath)


def _private_tempdir():
    """A temporary directory of this process, removed at exit; None if none can be made."""
    try:
        path = tempfile.mkdtemp(prefix="stn_numba-jit-")
    except OSError:
        return None
    pid = os.getpid()
    # a forked child inherits the directory, and must not remove it under its parent
    atexit.register(lambda: os.getpid() == pid and shutil.rmtree(path, ignore_errors=True))
    return path


def cache_dir(py_file):
    """The directory of the package's cache (one per process and NUMBA_CACHE_DIR), or None."""
    key = config.CACHE_DIR
    with _lock:
        if key not in _chosen:
            tried = list(_candidates(py_file))
            path = next((p for p in (os.path.join(c, _HASH) for c in tried) if _writable(p)), None)
            if path is None:
                tmp = _private_tempdir()
                path = None if tmp is None else os.path.join(tmp, _HASH)
                where = (
                    f"a temporary directory for this process only ({tmp})"
                    if path is not None
                    else "memory only (no temporary directory could be created either)"
                )
                _warn_once(
                    f"stn_numba: no writable directory for Numba's cache of compiled code "
                    f"(tried {', '.join(tried)}); it is kept in {where}, so every new "
                    f"process compiles again (seconds per function on first use). "
                    f"Set the environment variable NUMBA_CACHE_DIR to a writable directory "
                    f"to keep it."
                )
            _chosen[key] = path
        return _chosen[key]


class PackageCacheLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """Numba cache locator for this package's files only: ``cache_dir()/<source hash>``.

    Put first in Numba 0.68.1's ``CacheImpl._locator_classes`` so that it is asked
    before Numba's own locators, which then handle every other file as before.
    """

    def __init__(self, py_func, py_file, path):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = path
        self.on_disk = path is not None
        if path is None:  # nothing is read or written (see the load/save wrappers)
            self._cache_path = os.path.join(tempfile.gettempdir(), "stn_numba-nocache", _HASH)

    def get_cache_path(self):
        return self._cache_path

    def ensure_cache_path(self):
        if self.on_disk:
            os.makedirs(self._cache_path, exist_ok=True)

    def get_source_stamp(self):
        # the directory is already per source hash; the stamp records it for the index
        return _HASH

    @classmethod
    def from_function(cls, py_func, py_file):
        path = os.path.abspath(py_file)
        if os.path.dirname(path) != _PACKAGE_DIR or not os.path.exists(path):
            return None
        return cls(py_func, path, cache_dir(path))


def _ours(cache):
    impl = getattr(cache, "_impl", None)
    return isinstance(getattr(impl, "locator", None), PackageCacheLocator)


def _unreadable_file(cache, sig, target_context):
    """The index file of ``cache`` if it cannot be read, else the data file of ``sig``."""
    files = cache._cache_file
    try:
        overloads = files._load_index()
        return files._data_path(overloads[cache._index_key(sig, target_context.codegen())])
    except Exception:
        return files._index_path


def _load_overload(self, sig, target_context):
    if not _ours(self):
        return _numba_load_overload(self, sig, target_context)
    if not self._impl.locator.on_disk:
        return None
    try:
        return _numba_load_overload(self, sig, target_context)
    except Exception as exc:
        # Numba 0.68.1 unpickles the index and data files without a guard, so a corrupt
        # file would fail every call. Removing the index makes the next save start a new
        # one (a corrupt index would otherwise fail the save as well); the data files are
        # overwritten by number as Numba reuses them.
        bad = _unreadable_file(self, sig, target_context)
        try:
            os.unlink(self._cache_file._index_path)
        except OSError:
            pass
        warnings.warn(
            f"stn_numba: discarded an unreadable file of Numba's cache ({bad}: "
            f"{type(exc).__name__}: {exc}); recompiling {self._py_func.__name__}",
            CacheWarning,
            stacklevel=2,
        )
        return None


def _save_overload(self, sig, data):
    if not _ours(self):
        return _numba_save_overload(self, sig, data)
    if not self._impl.locator.on_disk:
        return None
    try:
        return _numba_save_overload(self, sig, data)
    except Exception as exc:
        # the compiled function works without its cache entry: say so instead of failing
        warnings.warn(
            f"stn_numba: could not save {self._py_func.__name__} to Numba's cache in "
            f"{self._cache_path} ({type(exc).__name__}: {exc}); it will be compiled again "
            f"in the next process",
            CacheWarning,
            stacklevel=2,
        )
        return None


def _install():
    """Insert the locator and the load/save wrappers (Numba 0.68.1 names; older Numba
    called ``CacheImpl`` ``_CacheImpl``). Without those internals nothing is changed."""
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    cache = getattr(caching, "Cache", None)
    if not all(
        hasattr(obj, attr)
        for obj, attr in [
            (impl, "_locator_classes"),
            (cache, "load_overload"),
            (cache, "save_overload"),
            (caching, "_SourceFileBackedLocatorMixin"),
        ]
    ):
        return
    global _numba_load_overload, _numba_save_overload
    # a reload of this module must wrap Numba's methods, not the previous wrappers
    _numba_load_overload = getattr(cache.load_overload, "numba_method", cache.load_overload)
    _numba_save_overload = getattr(cache.save_overload, "numba_method", cache.save_overload)
    _load_overload.numba_method = _numba_load_overload
    _save_overload.numba_method = _numba_save_overload
    cache.load_overload, cache.save_overload = _load_overload, _save_overload
    classes = impl._locator_classes
    classes[:] = [c for c in classes if c.__name__ != PackageCacheLocator.__name__]
    classes.insert(0, PackageCacheLocator)


_install()
