"""Stream a stack larger than the memory it may use through ``stn_numba.dask.warp_affine``.

Run as a script (the numbers in ``benchmarks/README.md``)::

    python benchmarks/test_dask_stream.py              # a 512 MiB float32 stack
    python benchmarks/test_dask_stream.py --mib 2048 --chunk 16

or as a pytest-benchmark case (a 256 MiB stack, asserting that the memory stays bounded)::

    python -m pytest benchmarks/test_dask_stream.py --benchmark-only

The stack (N, 3, 256, 256) float32 lives in a raw file in a temporary directory, read and
written per batch range with ``os.preadv`` / ``os.pwrite`` (what zarr or HDF5 chunk reads
do). Not ``np.memmap``: the pages of a memory map that the kernel has touched stay in the
process's resident set until the OS needs the memory back, so RSS would grow to the file
size even though no anonymous memory is held. ``da.from_array`` wraps the file, chunked by
batch; ``da.store`` writes the lazy ``warp_affine`` into a second file. Peak memory is the
process's resident set sampled every 5 ms (``/proc/self/statm``) during the stream, minus
the resident set just before it (the imports, the compiled kernels). Throughput is compared
with the eager in-memory call on a slice that fits.
"""

import argparse
import os
import sys
import tempfile
import threading
import time

import numpy as np

SAMPLE = (3, 256, 256)
DTYPE = np.dtype(np.float32)


class FileStack:
    """A C-ordered array in a raw file, read and written by ranges of the first axis.

    Enough of the array protocol for ``da.from_array`` (shape, dtype, ndim, reads) and for
    ``da.store`` (writes); every read returns a fresh NumPy array, as a zarr array does.
    """

    def __init__(self, path, shape, dtype=DTYPE):
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)
        self.sample_bytes = int(np.prod(shape[1:])) * self.dtype.itemsize
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, self.shape[0] * self.sample_bytes)

    def _rows(self, key):
        key = key if isinstance(key, tuple) else (key,)
        start, stop, step = key[0].indices(self.shape[0])
        assert step == 1, "FileStack reads contiguous ranges of samples"
        return start, stop, key[1:]

    def __getitem__(self, key):
        start, stop, rest = self._rows(key)
        buf = np.empty((stop - start, *self.shape[1:]), self.dtype)
        view, offset = memoryview(buf).cast("B"), start * self.sample_bytes
        while view.nbytes:
            done = os.preadv(self.fd, [view], offset)
            if done == 0:
                raise EOFError(f"short read at byte {offset}")
            view, offset = view[done:], offset + done
        return buf[(slice(None), *rest)]

    def __setitem__(self, key, value):
        start, stop, rest = self._rows(key)
        whole = [r.indices(n) == (0, n, 1) for r, n in zip(rest, self.shape[1:], strict=False)]
        assert all(whole), "FileStack writes whole samples"
        shape = (stop - start, *self.shape[1:])
        data = np.ascontiguousarray(np.broadcast_to(value, shape), self.dtype)
        view, offset = memoryview(data).cast("B"), start * self.sample_bytes
        while view.nbytes:
            done = os.pwrite(self.fd, view, offset)
            view, offset = view[done:], offset + done

    def close(self):
        os.close(self.fd)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Highest resident set seen every ``interval`` seconds while the block runs."""

    def __init__(self, interval=0.005):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.before = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self):
        return self.peak - self.before


def make_stack(workdir, mib, chunk, seed=0):
    """Input file of about ``mib`` MiB (a multiple of ``chunk`` samples), θ, output file."""
    sample_bytes = int(np.prod(SAMPLE)) * DTYPE.itemsize
    n = max(chunk, (mib * 2**20 // sample_bytes) // chunk * chunk)
    rng = np.random.default_rng(seed)
    src = FileStack(os.path.join(workdir, "in.raw"), (n, *SAMPLE))
    for start in range(0, n, chunk):  # written chunk by chunk: never all in memory
        src[start : start + chunk] = rng.random((chunk, *SAMPLE), dtype=np.float32)
    a = rng.uniform(-0.5, 0.5, n)
    s = rng.uniform(0.8, 1.2, (n, 1))
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, :2] = s * np.stack([np.cos(a), -np.sin(a)], 1)
    theta[:, 1, :2] = s * np.stack([np.sin(a), np.cos(a)], 1)
    theta[:, :, 2] = rng.uniform(-0.2, 0.2, (n, 2))
    dst = FileStack(os.path.join(workdir, "out.raw"), (n, *SAMPLE))
    zeros = np.zeros((chunk, *SAMPLE), np.float32)
    for start in range(0, n, chunk):  # allocated up front: no run pays for the file system
        dst[start : start + chunk] = zeros
    return src, theta, dst


def stream(src, theta, dst, chunk, **config):
    """Warp the whole file stack into ``dst``; (seconds, PeakRSS)."""
    import dask
    import dask.array as da

    import stn_numba.dask as stnd

    meta = np.empty((0,) * 4, DTYPE)
    x = da.from_array(src, chunks=(chunk, -1, -1, -1), name="stack-in", meta=meta, lock=False)
    y = stnd.warp_affine(x, theta)
    with dask.config.set(**config), PeakRSS() as mem:
        t0 = time.perf_counter()
        da.store(y, dst, lock=False)
        seconds = time.perf_counter() - t0
    return seconds, mem


def eager_rate(src, theta, n, repeats=5):
    """Samples/s of the eager call on the first ``n`` samples, held in memory."""
    import stn_numba as stn

    x, th = src[:n], theta[:n]
    stn.warp_affine(x, th)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        stn.warp_affine(x, th)
        times.append(time.perf_counter() - t0)
    return n / float(np.median(times))


def check(src, theta, dst, chunk, blocks=3):
    """A few blocks of the stored result equal the eager call, bit for bit."""
    import stn_numba as stn

    n = src.shape[0]
    for start in np.linspace(0, n - chunk, blocks).astype(int) // chunk * chunk:
        sl = slice(int(start), int(start) + chunk)
        np.testing.assert_array_equal(dst[sl], stn.warp_affine(src[sl], theta[sl]))


def warm_up():
    """Compile (or load from the disk cache) before anything is measured."""
    import dask.array as da

    import stn_numba.dask as stnd

    x = np.zeros((2, *SAMPLE), DTYPE)
    theta = np.tile(np.eye(2, 3, dtype=DTYPE), (2, 1, 1))
    stnd.warp_affine(da.from_array(x, chunks=(1, -1, -1, -1)), theta).compute()


def main(argv=None):
    import numba

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="input stack size (MiB)")
    parser.add_argument("--chunk", type=int, default=16, help="samples per dask chunk")
    parser.add_argument("--dir", default=None, help="where the two files go (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration (best)")
    args = parser.parse_args(argv)
    warm_up()
    cores = numba.config.NUMBA_NUM_THREADS
    with tempfile.TemporaryDirectory(dir=args.dir) as workdir:
        src, theta, dst = make_stack(workdir, args.mib, args.chunk)
        n = src.shape[0]
        stack_mib = n * src.sample_bytes / 2**20
        chunk_mib = args.chunk * src.sample_bytes / 2**20
        print(
            f"stack {n}×{'×'.join(map(str, SAMPLE))} float32 = {stack_mib:.0f} MiB in, "
            f"{stack_mib:.0f} MiB out; chunks of {args.chunk} samples ({chunk_mib:.1f} MiB); "
            f"{cores} Numba threads; dask {__import__('dask').__version__}"
        )
        print(f"RSS before streaming: {rss_bytes() / 2**20:.0f} MiB")
        rate = eager_rate(src, theta, 4 * args.chunk)
        label = f"eager, in memory ({4 * args.chunk} samples)"
        print(f"{label:<44} {rate:8.0f} samples/s")
        configs = {
            f"dask threaded, {cores} tasks × 1 Numba thread": {},
            f"dask threaded, 1 task × {cores} Numba threads": {"num_workers": 1},
        }
        runs = {label: [] for label in configs}
        for _ in range(args.repeats):  # interleaved, so that a noisy minute hits both
            for label, config in configs.items():
                runs[label].append(
                    stream(src, theta, dst, args.chunk, scheduler="threads", **config)
                )
        for label, results in runs.items():
            seconds = min(r[0] for r in results)
            mem = max(results, key=lambda r: r[1].growth)[1]
            print(
                f"{label:<44} {n / seconds:8.0f} samples/s ({seconds:.2f} s, "
                f"{2 * stack_mib / seconds:.0f} MiB/s read+written); peak RSS "
                f"+{mem.growth / 2**20:.0f} MiB ({mem.growth / 2**20 / chunk_mib:.1f} chunks, "
                f"{100 * mem.growth / 2**20 / stack_mib:.1f} % of the stack)"
            )
        check(src, theta, dst, args.chunk)
        print("stored result == eager warp_affine on sampled blocks: ok")
        src.close()
        dst.close()


def test_dask_stream(benchmark, tmp_path):
    """256 MiB streams through with memory growth bounded by a few chunks."""
    import pytest

    pytest.importorskip("dask.array", reason="needs the 'dask' extra")
    warm_up()
    chunk = 8
    src, theta, dst = make_stack(str(tmp_path), 256, chunk)
    result = {}

    def run():
        result["seconds"], result["mem"] = stream(src, theta, dst, chunk, scheduler="threads")

    benchmark.pedantic(run, rounds=1, iterations=1)
    check(src, theta, dst, chunk)
    stack = src.shape[0] * src.sample_bytes
    growth = result["mem"].growth
    benchmark.extra_info.update(stack_mib=stack / 2**20, peak_rss_growth_mib=growth / 2**20)
    # a handful of chunks in flight (input and output of each running task, the store's
    # queue), however large the stack: 7 chunks measured with 2 dask threads
    bound = 16 * chunk * src.sample_bytes
    msg = f"RSS grew by {growth / 2**20:.0f} MiB for a {stack / 2**20:.0f} MiB stack"
    assert growth < min(bound, stack / 2), msg
    src.close()
    dst.close()


if __name__ == "__main__":
    sys.exit(main())
