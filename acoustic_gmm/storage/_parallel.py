"""Where extraction and training run: forked worker processes or a Dask cluster, BLAS on one thread each.

:func:`parallel_map` yields ``fn(task)`` in task order from ``jobs`` processes (which die with their parent and
ignore Ctrl-C, which the parent handles) or from a Dask client; :func:`connect` makes that client from an address.
Neither the number of jobs nor the cluster changes a result.  :func:`progress_bar` is how every long job of the
package shows where it is.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys

from ..errors import ParameterError

__all__ = []


@contextlib.contextmanager
def connect(client):
    """A ``dask.distributed.Client``: the one given, or one connected to a scheduler address (and closed after)."""
    if not isinstance(client, str):
        yield client
        return
    try:
        from dask.distributed import Client
    except ImportError:
        raise ParameterError("a Dask scheduler needs Dask: pip install 'acoustic-gmm[distributed]'") from None
    with Client(client) as c:
        yield c


def _init_worker(parent: int | None = None) -> None:
    # Ctrl-C reaches the whole process group: the parent stops the pool, so workers ignore it (no
    # KeyboardInterrupt traceback from each of them).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent killed outright (kill -9) takes its workers with it: Linux sends them SIGTERM.
    if parent is not None and sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    # Each worker is one of `jobs` processes: BLAS threads on top would only fight for the cores.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    # A worker keeps a batch's frames while it computes the next file's, so each file's temporaries
    # (a few hundred kB) are made and freed at the top of the heap, which glibc hands back to the
    # kernel at once: faulted in again for every file, they cost a worker a tenth of its time on
    # 16 kHz audio.  M_TOP_PAD (-2) lets the heap keep 64 MB; other C libraries have no mallopt.
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-2, 64 << 20)
    except (OSError, AttributeError):
        pass


def _pinned(fn, task):
    """``fn(task)`` with BLAS on one thread: on a Dask worker as in our own workers."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return fn(task)


@contextlib.contextmanager
def parallel_map(fn, tasks: list, jobs: int | None, client=None):
    """Yield an iterator of ``fn(task)`` in task order, from ``jobs`` forked processes (1: in this one),
    or as tasks on a Dask cluster when ``client`` (a ``dask.distributed.Client``) is given.

    BLAS runs single-threaded everywhere, so neither the number of jobs nor the cluster changes a result.
    ``fn.preload``, if set, names modules to import here before forking: every worker inherits
    them instead of importing them itself (h5py: ~50 ms a worker, on a job of ~1 s).
    """
    import importlib

    from threadpoolctl import threadpool_limits

    if client is not None:
        futures = client.map(_pinned, [fn] * len(tasks), tasks, pure=False)
        try:
            yield (f.result() for f in futures)
        finally:
            client.cancel(futures)
        return
    jobs = max(1, min(jobs or len(os.sched_getaffinity(0)), len(tasks) or 1))
    if jobs == 1:
        with threadpool_limits(1):
            yield map(fn, tasks)
        return
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    for name in getattr(fn, "preload", ()):
        importlib.import_module(name)
    # Leaving the block (done, an error, Ctrl-C) terminates the workers and waits for them.
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
        yield pool.imap(fn, tasks)


def progress_bar(total: int, *, desc: str, unit: str, progress: bool | None = None):
    """The package's progress bar (tqdm): shown (``progress=True``), not (False), or only on a terminal (None: never
    into a log file or a pipe); it leaves no line behind."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr,
                disable=None if progress is None else not progress)
