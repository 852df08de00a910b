"""Reading a file's HDF5 metadata once in a child process, so that a damaged file cannot hang us.

libhdf5 (2.0.0, the newest) loops forever on some damaged files: a flipped bit in the size of an
object in a *global heap* (where variable-length strings live: our ids, labels and JSON attributes)
can leave its parser stepping by zero bytes; other flips make it read out of bounds and crash
with SIGSEGV.  Both happen in C, holding the GIL, so no Python timeout, signal handler or watchdog
thread can stop them.  About one file in 300 with a few random bit flips does one or the other
(``tests/test_fuzz.py``).

So before a file is opened for real, a forked child opens it, visits every object, reads every
attribute and every variable-length dataset, and sends a byte down a pipe after each.  If no byte
comes for :data:`PROBE_SECONDS`, the child is killed and the file is refused as corrupt; so is a file
that kills the child with a signal.  The child
ignores every other error: the parent opens the file afterwards and reports those itself, with the
loaders' precise messages.  A file is probed once per process (keyed by device, inode, size and
modification time).  The probe costs one ``fork`` (a few milliseconds) plus a second read of the
file's metadata; frames and model parameters are not read.

Where ``os.fork`` does not exist (Windows) the probe is skipped.
"""

from __future__ import annotations

import faulthandler
import os
import select
import signal
import time
import warnings

__all__ = []


PROBE_SECONDS = 20.0    # silence from the child after which the file is declared to hang libhdf5


MAX_PROBE_ROWS = 1 << 24  # variable-length datasets longer than this are left to the loaders' own checks


_BLOCK = 1 << 16          # rows of a variable-length dataset read between heartbeats


_probed: set = set()


def _walk(path: str, beat) -> None:
    """In the child: touch everything of ``path`` that libhdf5 parses from metadata."""
    import h5py

    with h5py.File(path, "r") as f:
        def visit(obj):
            for key in obj.attrs:
                obj.attrs[key]
                beat()
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "O" and obj.shape \
                    and obj.size <= MAX_PROBE_ROWS:
                for start in range(0, obj.shape[0], _BLOCK):
                    obj[start:start + _BLOCK]
                    beat()
            beat()

        visit(f)
        f.visititems(lambda name, obj: visit(obj))


def probe(path, error) -> None:
    """Raise ``error`` naming ``path`` if reading its HDF5 metadata hangs libhdf5; otherwise return.

    Parameters
    ----------
    path : str or Path
        An existing HDF5 file.
    error : type
        The exception class to raise (``ArchiveError`` or ``ModelFileError``).

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> p = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> with h5py.File(p, "w") as f:
    ...     f.attrs["content"] = "models"
    >>> probe(p, ValueError)   # a sound file: returns
    """
    if not hasattr(os, "fork"):
        return
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _probed:
        return
    from h5py._objects import phil

    read_end, write_end = os.pipe()
    try:
        # holding h5py's lock across the fork means no other thread is inside libhdf5 when the child is
        # made, so the child cannot inherit a held lock (the lock is re-entrant for the forking thread)
        with phil, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork" (Python >= 3.12)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child; its effect is tested
            os.close(read_end)
            try:
                faulthandler.disable()  # a crash here is the finding, not something to print
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _walk(str(path), lambda: os.write(write_end, b"."))
            except BaseException:  # noqa: BLE001 - any other failure is the parent's to report
                pass
            os._exit(0)
        os.close(write_end)
        write_end = -1
        hung = True
        try:
            hung = _wait(read_end)
        finally:  # also on Ctrl-C: never leave the child behind
            if hung:
                os.kill(pid, signal.SIGKILL)
            status = os.waitpid(pid, 0)[1]
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    if hung:
        raise error(f"{path}: corrupt: reading its HDF5 metadata did not finish (no progress in "
                    f"{PROBE_SECONDS:g} s; libhdf5 loops on some damaged files)")
    if os.WIFSIGNALED(status):
        raise error(f"{path}: corrupt: reading its HDF5 metadata crashed libhdf5 "
                    f"({signal.Signals(os.WTERMSIG(status)).name} in a test read)")
    _probed.add(key)


def _wait(fd) -> bool:
    """Read heartbeats from the child until it exits (False) or falls silent for PROBE_SECONDS (True)."""
    last = time.monotonic()
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, last + PROBE_SECONDS - time.monotonic()))
        if not ready:
            return True
        if not os.read(fd, 1 << 16):
            return False
        last = time.monotonic()
