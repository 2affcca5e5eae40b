"""Threads of :mod:`stn_numba.ndimage`: a compiled serial driver runs on parts of one
call at once, on the calling thread and on helper threads of this module.

Why not Numba's ``parallel=True`` there: a parallel launch under Numba's
``workqueue`` layer (the package's fork-safe default without TBB) costs 0.06-0.5 ms,
more than the work of a 256×256 image at order 1, and a ``prange`` driver takes
longer to compile than its serial loop. The drivers are compiled with
``nogil=True``, so Python threads run them side by side; handing a part to a waiting
helper costs about 30 µs.

:func:`run` calls ``fn(*args, part, parts)`` for every part. The calling thread and
up to ``threads - 1`` helpers take the parts in turn from one counter, so a call
never waits for a helper that is busy with another call's parts: the caller does them
itself. Helpers are daemon threads, started on first use and waiting on a queue; a
forked child starts its own (threads do not survive ``fork``). A driver's part
writes its own points only, so the result is the same for any number of threads.
"""

import itertools
import os
import queue
import threading


class _Call:
    """One call's parts, shared by the threads that run them."""

    __slots__ = ("args", "done", "error", "fn", "left", "lock", "next", "parts")

    def __init__(self, fn, args, parts):
        self.fn = fn
        self.args = args
        self.parts = parts
        self.next = itertools.count()  # next() is atomic under the GIL
        self.left = parts
        self.lock = threading.Lock()
        self.done = threading.Lock()  # held until the last part has ended
        self.done.acquire()
        self.error = None

    def work(self):
        """Run parts until none is left to start."""
        while True:
            part = next(self.next)
            if part >= self.parts:
                return
            try:
                self.fn(*self.args, part, self.parts)
            except BaseException as exc:  # re-raised by the caller
                if self.error is None:
                    self.error = exc
            with self.lock:
                self.left -= 1
                last = self.left == 0
            if last:
                self.done.release()


class _Helpers:
    """The process's helper threads and their queue of calls."""

    def __init__(self):
        self.lock = threading.Lock()
        self.queue = queue.SimpleQueue()
        self.count = 0

    def ensure(self, n):
        """The queue, with at least ``n`` helpers waiting on it."""
        with self.lock:
            while self.count < n:
                t = threading.Thread(
                    target=_serve, args=(self.queue,), name="stn_numba-ndimage", daemon=True
                )
                t.start()
                self.count += 1
        return self.queue


def _serve(calls):
    while True:
        calls.get().work()


_helpers = _Helpers()


def _after_fork():
    global _helpers
    _helpers = _Helpers()  # the parent's helpers, queue and lock are not the child's


os.register_at_fork(after_in_child=_after_fork)


def run(fn, args, parts, threads):
    """Call ``fn(*args, part, parts)`` for ``part`` in ``range(parts)`` on up to
    ``threads`` threads (this one included); return when every part has ended, and
    raise the first error a part raised."""
    helpers = min(threads, parts) - 1
    if helpers <= 0:
        for part in range(parts):
            fn(*args, part, parts)
        return
    call = _Call(fn, args, parts)
    calls = _helpers.ensure(helpers)
    for _ in range(helpers):
        calls.put(call)
    call.work()
    call.done.acquire()
    if call.error is not None:
        raise call.error
