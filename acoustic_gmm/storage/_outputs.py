"""Writing results safely: one policy for every file acoustic_gmm writes.

A result is written to a temporary file beside it and renamed into place, so a crash leaves the old file or
the new one, never part of one; it gets the permissions the umask gives (``mkstemp`` alone would make it
0600); and it is written under a lock file (``.NAME.lock`` beside it, held with ``filelock``, the
field's cross-platform answer), so two runs writing one output do not both claim success: the second
stops at once and says so.  Holding the lock also tells a writer that any ``.NAME.*.tmp`` beside the
output was left by a run that was killed, and it removes them.

:func:`writing` adds the rules of :func:`check_outputs` under the locks: an existing output is kept unless the
caller says ``overwrite``, an output may not be one of the inputs, and missing directories are made.
:func:`check_free_space` lets a long job whose output size is known up front stop before the work, not after.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..errors import OutputError

__all__ = ["locked", "atomic_path", "check_outputs", "writing", "check_free_space"]


_HELD: dict = {}  # lock-file path -> the FileLock this process holds on it (so locking again is re-entrant)


def _lock_file(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def locked(path):
    """Hold the lock of the output ``path`` for the ``with`` block.

    Re-entrant within a process (a command locks its output for its whole run, and the writer inside
    locks it again).  Raises :class:`~acoustic_gmm.errors.OutputError` at once if another process holds it.

    Examples
    --------
    ::

        with locked("ubm.h5"):          # a second run on ubm.h5 now stops with a one-line message
            model = train(...)
            model.save("ubm.h5")
    """
    from filelock import FileLock, Timeout

    path = Path(path).absolute()
    key = str(_lock_file(path))
    lock = _HELD.get(key) or FileLock(key, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputError(f"{path}: another acoustic-gmm run is writing it (lock file {key}); wait for it to "
                          f"finish or choose another output") from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot create its lock file {key} ({exc.strerror or exc})") from None
    _HELD[key] = lock
    try:
        yield
    finally:
        if lock.lock_counter == 1:
            # Gone with the last release, so no lock file is left beside the output.  Unlinked while still
            # held: a run that opened the old file meanwhile finds it unlinked (filelock checks) and tries again.
            _HELD.pop(key, None)
            with contextlib.suppress(OSError):
                os.unlink(key)
        lock.release()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, *, tmp_dir=None):
    """A temporary path to write ``path``'s new content to; renamed onto ``path`` only if the block succeeds.

    The temporary file is beside ``path`` (or in ``tmp_dir``, on the same file system), hidden, and removed
    on every way out of the block; the output's lock is held throughout, and temporary files of ``path``
    left by killed runs are removed first.  The result has the permissions ``open`` would give it.

    Examples
    --------
    ::

        with atomic_path("scores.txt") as tmp:
            Path(tmp).write_text(text)
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name")
    where = Path(tmp_dir) if tmp_dir else (path.parent if str(path.parent) else Path("."))
    if not where.is_dir():
        raise OutputError(f"{path}: directory {where} does not exist")
    with locked(path):
        for stale in where.glob(f".{path.name}.*.tmp"):  # we hold the lock: their writers are gone
            with contextlib.suppress(OSError):
                stale.unlink()
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=where)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write in {where} ({exc.strerror or exc})") from None
        os.close(fd)
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(exc, OSError) and exc.errno and not exc.filename:  # a failed write: name the result
                raise OSError(exc.errno, exc.strerror, str(path)) from None
            raise


def save_png(fig, path) -> None:
    """Save a matplotlib figure as a PNG through :func:`atomic_path`, and close it (pictures: confusion, DET)."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)


def _named(how: str, path: Path) -> str:
    """How a message names an output: ``out=models.h5`` for a parameter (the CLI shows ``--out models.h5``)."""
    return f"{how}={path}" if how.isidentifier() else f"{how} {path}"


def check_outputs(outputs: dict, inputs=(), *, overwrite: bool = False, folders=()) -> None:
    """The rules for the files (or folders) a workflow is about to write.

    ``outputs`` maps each output path (None: not asked for) to the parameter that named it (``"out"``);
    ``folders`` lists the outputs that are folders of files.  Raises :class:`~acoustic_gmm.errors.OutputError` if
    an output exists and ``overwrite`` is false (a folder: exists and is not empty), is a directory where a file is
    wanted or a file where a folder is, is one of ``inputs``, or is named twice; makes missing parent directories.
    Messages name parameters as ``name=value`` (``overwrite=True``), which the command line shows as its flags.

    Examples
    --------
    ::

        check_outputs({"models.h5": "out"}, ["feats.h5"], overwrite=False)
    """
    named = [(Path(p), how) for p, how in outputs.items() if p is not None]
    ins = [Path(p) for p in inputs if p is not None]
    folders = {Path(p).absolute() for p in folders}
    for path, how in named:
        for other in ins:
            if path.exists() and other.exists() and os.path.samefile(path, other) \
                    or path.absolute() == other.absolute():
                raise OutputError(f"{_named(how, path)}: is also an input; write the result elsewhere")
        if path.absolute() in folders:
            if path.exists() and not path.is_dir():
                raise OutputError(f"{_named(how, path)}: is a file; give a folder")
            if path.is_dir() and any(path.iterdir()) and not overwrite:
                raise OutputError(f"{_named(how, path)}: a folder that is not empty; pass overwrite=True to write "
                                  f"into it")
            continue
        if path.is_dir():
            raise OutputError(f"{_named(how, path)}: is a directory; give a file name")
        if path.exists() and not overwrite:
            raise OutputError(f"{_named(how, path)}: exists; pass overwrite=True to replace it (the old file stays "
                              f"until the new one is complete)")
    seen = set()
    for path, how in named:
        if path.absolute() in seen:
            raise OutputError(f"{_named(how, path)}: named for two outputs")
        seen.add(path.absolute())
        try:
            path.absolute().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{_named(how, path)}: cannot make its directory ({exc.strerror or exc})") from None


@contextlib.contextmanager
def writing(outputs: dict, inputs=(), *, overwrite: bool = False, folders=()):
    """The one output policy, for the ``with`` block that writes ``outputs``: hold every output's lock, then apply
    :func:`check_outputs`' rules.  Every writer of the package goes through here (the CLI for the commands whose
    library call saves a file, the corpus extraction and the Kaldi/HTK import and export themselves), so two runs
    on one output cannot both succeed and an existing result is never replaced without ``overwrite``.

    Examples
    --------
    ::

        with writing({"models.h5": "out"}, ["feats.h5"], overwrite=False):
            model_set.save("models.h5")
    """
    named = [(Path(p), how) for p, how in outputs.items() if p is not None]
    for path, how in named:  # the lock file lives beside the output
        try:
            path.absolute().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{_named(how, path)}: cannot make its directory ({exc.strerror or exc})") from None
    with contextlib.ExitStack() as stack:
        for path, _ in named:
            stack.enter_context(locked(path))
        check_outputs(outputs, inputs, overwrite=overwrite, folders=folders)
        yield


def _size(n: float) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 2**10:.0f} kB"


def check_free_space(path, n_bytes: float, *, what: str = "the result") -> None:
    """Refuse to start a long job whose output ``path`` will need at least ``n_bytes``, more than its device has
    free.

    Called once the size is known and before the work (``train`` knows its models' size once it has read the
    classes, ``features`` its frames' once it has read the audio headers).  Callers give a lower bound, so a job
    that fits is never refused; a shortfall the check misses still ends in the one-line "no space left" error
    of the write itself, with nothing lost.

    Examples
    --------
    ::

        check_free_space("models.h5", 40 * 2**20, what="40 models")
    """
    import shutil

    path = Path(path)
    where = path.absolute().parent
    while not where.exists():  # a directory still to be made lives on its nearest existing parent's device
        where = where.parent
    free = shutil.disk_usage(where).free
    if n_bytes > free:
        raise OutputError(f"{path}: {what} will need at least {_size(n_bytes)} and only {_size(free)} is "
                          f"free on its device: free some space or write it elsewhere")
