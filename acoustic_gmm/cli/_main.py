"""The command group every command hangs on, and what the commands share: errors turned into one line in
the command line's words, the output policy around a command, common options.
Nothing here does library work: a command that needs more than parsing and printing calls the library.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import importlib
import re
import sys
import warnings

import click

from .. import __version__
from ..errors import AcousticGMMError

__all__ = ['main', 'COMMANDS', 'SHOWN_NOTES', 'environment_error', 'flags', 'message', 'errors_to_messages', 'writes', 'echo_warnings', 'config_options', 'view_options', 'size', 'max_memory_option', 'enroll_list_option', 'cohort_overlap_option', 'scores_option', 'id_list']


# Each command and the module of this package that defines it, grouped as Kaldi groups its binaries.
COMMANDS = {**dict.fromkeys(("features", "convert", "info"), "_features"),
            **dict.fromkeys(("train", "select", "evaluate", "classify"), "_classes"),
            **dict.fromkeys(("ubm", "enroll", "verify", "eer", "ivector"), "_speaker"),
            **dict.fromkeys(("export", "import", "export-model", "import-model"), "_interop")}


class _Commands(click.Group):
    """The group that stands between every command and the user: no Python traceback reaches them.

    Ctrl-C prints one line and exits 130 (the shell's convention for SIGINT); an error we did not
    foresee prints one line asking for a report, with the traceback only under ``--debug``.
    """

    def list_commands(self, ctx) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        """The command ``name``, its module imported only now: a command pays for its own group's imports alone."""
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__package__}.{COMMANDS[name]}")
        return next(c for c in vars(module).values() if isinstance(c, click.Command) and c.name == name)

    def invoke(self, ctx):
        # every warning of every command as the package's one-line messages, shown before an error's line (a
        # command that shows its own before its summary line catches them first)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                return super().invoke(ctx)
            except BaseException as exc:
                echo_warnings(caught)
                caught.clear()
                _failed(ctx, exc)
            finally:
                echo_warnings(caught)


def _failed(ctx, exc: BaseException):
    """A command's error said as one line with its exit status; a click error or exit goes on to click."""
    if isinstance(exc, (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit)):
        raise exc
    if isinstance(exc, KeyboardInterrupt):
        click.echo("\ninterrupted", err=True)
        sys.exit(130)
    if isinstance(exc, BrokenPipeError):  # `acoustic-gmm classify ... | head`: the reader has gone, nothing to say
        sys.stderr.close()
        sys.exit(141)
    if not isinstance(exc, Exception) or ctx.params.get("debug"):
        raise exc
    cause = environment_error(exc)
    if cause is not None:  # the machine, not the program: one line, exit 1, no request for a report
        click.echo(f"Error: {cause}", err=True)
        sys.exit(1)
    click.echo(f"Error: unexpected {type(exc).__name__}: {exc}\nThis is a bug in acoustic-gmm "
               f"{__version__}: please report it with the command you ran (add --debug after "
               f"'acoustic-gmm' for the traceback).", err=True)
    sys.exit(2)


# errors of the machine a command runs on, not of the program: said as what they are, with the file
_ENVIRONMENT = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "not permitted",
                errno.EMFILE: "too many open files", errno.ENOMEM: "out of memory"}


def environment_error(exc: BaseException) -> str | None:
    """``"no space left on the device while writing m.h5"`` for an OSError the machine caused (a full disk, a
    quota, a read-only or forbidden path, exhausted memory or file handles), else None.  h5py reports a full disk
    as an OSError without an errno, its message naming errno 28: that counts too."""
    if isinstance(exc, MemoryError):
        return "out of memory" + (f" ({exc})" if str(exc) else "")
    if not isinstance(exc, OSError):
        return None
    code = exc.errno
    if code is None:
        found = re.search(r"errno = (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    if code not in _ENVIRONMENT:
        return None
    where = exc.filename or next((m.group(1) for m in [re.search(r"name = '([^']+)'", str(exc))] if m), None)
    if where:  # a result is written to .NAME.XXXXXXXX.tmp beside it (storage.atomic_path): name the result
        where = re.sub(r"(^|/)\.([^/]+)\.\w{8}\.tmp$", r"\1\2", str(where))
    return _ENVIRONMENT[code] + (f" while writing {where}" if where else "")


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acoustic-gmm")
@click.option("--debug", is_flag=True, help="show the Python traceback of an unexpected error")
@click.option("--verbose", "-v", is_flag=True, help="show every note and warning (by default a long run of them is "
                                                    "summarised: a count and the first few)")
def main(debug, verbose) -> None:
    """Gaussian-mixture acoustic modelling of speech."""


def flags(ctx) -> dict:
    """``{parameter name: (flag, takes a value)}`` of every option of every command, this command's first."""
    commands = [ctx.command]
    stack = [ctx.find_root().command]
    while stack:  # every command of every group (this imports them all: only a message to translate asks)
        group = stack.pop()
        for name in group.list_commands(ctx) if isinstance(group, click.Group) else ():
            cmd = group.get_command(ctx, name)
            commands.append(cmd)
            stack.append(cmd)
    flags: dict = {}
    for cmd in commands:
        for p in cmd.params:
            if isinstance(p, click.Option) and p.name not in flags:
                flags[p.name] = (max(p.opts, key=len), not p.is_flag)
    return flags


def message(text: str, ctx=None) -> str:
    """A library message in the command line's words: the library names its parameters as ``name=value``
    (``overwrite=True``, ``cohort_utts=``, ``cmvn='mean'``), the user knows them as flags (``--overwrite``,
    ``--cohort-utts``, ``--cmvn mean``)."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return text
    for name, (flag, valued) in flags(ctx).items():
        if not valued:
            text = re.sub(rf"(?<![\w.-]){name}=True\b", flag, text)
        text = re.sub(rf"(?<![\w.-]){name}=(?:'([^']*)'|(?=[^\s,;)]))", lambda m: f"{flag} {m.group(1) or ''}", text)
        text = re.sub(rf"(?<![\w.-]){name}=", flag, text)
    return text.replace("  ", " ").replace(" )", ")")


def errors_to_messages(command):
    """Errors we diagnosed become one line and exit status 1, never a traceback."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except AcousticGMMError as exc:
            raise click.ClickException(message(str(exc))) from None
    return run


def writes(outputs: tuple, inputs: tuple = ()):
    """The command writes the files named by its parameters ``outputs``: add --overwrite and write under the
    package's one output policy (:func:`acoustic_gmm.storage.writing`) for the whole run, the parameters
    ``inputs`` being its inputs."""
    def wrap(command):
        @functools.wraps(command)
        def run(*args, overwrite=False, **kwargs):
            from ..storage._outputs import writing

            with writing({kwargs[name]: name for name in outputs if kwargs.get(name)},
                         [kwargs.get(name) for name in inputs], overwrite=overwrite):
                return command(*args, **kwargs)
        return click.option("--overwrite", is_flag=True,
                            help="replace existing outputs (each only once its new content is complete)")(run)
    return wrap


SHOWN_NOTES = 3  # of a long run of notes or warnings, this many are shown and the rest counted (all with --verbose)


def echo_warnings(caught, prefix: str = "warning") -> None:
    """The warnings a library call raised, as the package's one-line messages in the command line's words: a run
    of more than ``SHOWN_NOTES + 1`` is summarised (``enroll`` of a thousand one-take models gave a thousand notes)
    unless ``acoustic-gmm --verbose``."""
    ctx = click.get_current_context(silent=True)
    verbose = bool(ctx and ctx.find_root().params.get("verbose"))
    texts = list(dict.fromkeys(message(str(w.message)) for w in caught))  # the same warning once
    shown = texts if verbose or len(texts) <= SHOWN_NOTES + 1 else texts[:SHOWN_NOTES]
    for text in shown:
        click.echo(f"{prefix}: {text}", err=True)
    if len(shown) < len(texts):
        click.echo(f"{prefix}: ... and {len(texts) - len(shown)} more like them (acoustic-gmm --verbose shows "
                   f"every one)", err=True)


def config_options(func=None, *, only=None, view=False):
    """One option per MfccConfig field (``n_mfcc`` -> ``--n-mfcc``), all defaulting to 'not given'; ``only`` these
    fields.  With ``view``, the options read a raw archive another way (gathered into the parameter ``view``):
    their default is the archive's own."""
    if func is None:
        return lambda f: config_options(f, only=only, view=view)
    from ..features._config import MfccConfig

    fields = [f for f in dataclasses.fields(MfccConfig)
              if f.metadata.get("cli", True) and (only is None or f.name in only)]
    for f in reversed(fields):
        flag = "--" + f.name.replace("_", "-")
        help_text = (f"read the archive with: {f.metadata['help']} [default: as it was extracted]" if view
                     else f"{f.metadata['help']} [default: {f.default}]")
        if f.type in ("bool", bool):
            func = click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name, default=None, help=help_text)(func)
            continue
        choices = f.metadata.get("choices")
        if choices:
            kind = click.Choice([str(c) for c in choices])
        else:
            kind = int if "int" in str(f.type) else float if "float" in str(f.type) else str
        func = click.option(flag, f.name, type=kind, default=None, help=help_text)(func)
    if not view:
        return func

    @functools.wraps(func)
    def gathered(*args, **kwargs):
        changes = {f.name: kwargs.pop(f.name) for f in fields}
        changes = {k: type(getattr(MfccConfig(), k))(v) if isinstance(v, str) and k != "cmvn" else v
                   for k, v in changes.items() if v is not None}
        return func(*args, view=changes or None, **kwargs)
    return gathered


def view_options(func):
    """--cmvn, --vad/--no-vad, --n-mfcc, --deltas, --cmvn-window: the view a training command reads a raw archive
    with (:mod:`acoustic_gmm.features._view`), recorded with what it trains."""
    from ..features._config import VIEW_FIELDS

    return config_options(func, only=VIEW_FIELDS, view=True)


def size(ctx, param, value):
    from ..gmm._sources import parse_size

    try:
        return None if value is None else parse_size(value)
    except AcousticGMMError as exc:
        raise click.BadParameter(str(exc)) from None


def max_memory_option(func):
    return click.option("--max-memory", callback=size, metavar="SIZE",
                        help="frames up to this size (4G, 512M; 0: always stream) are read into memory once and EM "
                             "runs there; more are streamed from disk on every pass, with the same result "
                             "[default: a quarter of RAM, at most 4G]")(func)


enroll_list_option = click.option(
    "--enroll", "groups", type=click.Path(exists=True, dir_okay=False),
    help="'model utt1 utt2 ...' per line (Kaldi's spk2utt); default: one model per speaker (utt2spk)")


cohort_overlap_option = click.option(
    "--allow-cohort-overlap", is_flag=True,
    help="let the normalisation cohort hold the trials' own models or test utterances (a warning, not an error)")


scores_option = click.option("--scores", "scores_path", required=True, type=click.Path(dir_okay=False),
                              help="write 'model utterance score' per line")


def id_list(path):
    from ..storage._datadir import read_ids

    return None if path is None else read_ids(path)
