"""The ``acoustic-gmm`` command line: thin, it parses, calls one or two library functions and prints.

Every workflow is a library function (:mod:`acoustic_gmm.storage`, :mod:`acoustic_gmm.classes`,
:mod:`acoustic_gmm.classes`, :mod:`acoustic_gmm.speaker`, :mod:`acoustic_gmm.storage`), so a
Python user can do anything a command does.  Heavy modules (h5py, librosa, scipy, numpy's
users) are imported inside the commands that need them, so ``acoustic-gmm --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import sys
import warnings

import click

from . import __version__
from .errors import AcousticGMMError

__all__ = ["main"]


class _Commands(click.Group):
    """The group that stands between every command and the user: no Python traceback reaches them.

    Ctrl-C prints one line and exits 130 (the shell's convention for SIGINT); an error we did not
    foresee prints one line asking for a report, with the traceback only under ``--debug``.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `acoustic-gmm classify ... | head`: the reader has gone, nothing to say
            sys.stderr.close()
            sys.exit(141)
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            click.echo(f"error: unexpected {type(exc).__name__}: {exc}\nThis is a bug in acoustic-gmm "
                       f"{__version__}: please report it with the command you ran (add --debug after "
                       f"'acoustic-gmm' for the traceback).", err=True)
            sys.exit(2)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acoustic-gmm")
@click.option("--debug", is_flag=True, help="show the Python traceback of an unexpected error")
def main(debug) -> None:
    """Gaussian-mixture acoustic modelling of speech."""


def _errors_to_messages(command):
    """Errors we diagnosed become one line and exit status 1, never a traceback."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except AcousticGMMError as exc:
            raise click.ClickException(str(exc)) from None
    return run


def _writes(outputs: dict, inputs: tuple = ()):
    """The command writes the files in the parameters ``outputs`` (``{parameter: option}``): add
    --overwrite, apply :func:`acoustic_gmm.storage.check_outputs` against the parameters ``inputs``, and
    hold the outputs' locks for the whole run, so two runs on one output cannot both succeed."""
    def wrap(command):
        @functools.wraps(command)
        def run(*args, overwrite=False, **kwargs):
            from .storage._outputs import check_outputs, locked

            outs = {kwargs[name]: flag for name, flag in outputs.items() if kwargs.get(name)}
            check_outputs(outs, [kwargs.get(name) for name in inputs], overwrite=overwrite)
            with contextlib.ExitStack() as stack:
                for path in outs:
                    stack.enter_context(locked(path))
                return command(*args, **kwargs)
        return click.option("--overwrite", is_flag=True,
                            help="replace existing outputs (each only once its new content is complete)")(run)
    return wrap


DEFAULT_STATES = 3  # `train`'s class models when neither --states nor --slices is given (the defaults study)


def _echo_warnings(caught, prefix: str = "warning") -> None:
    for w in caught:
        click.echo(f"{prefix}: {w.message}", err=True)


def _size(ctx, param, value):
    from .gmm._sources import parse_size

    try:
        return None if value is None else parse_size(value)
    except AcousticGMMError as exc:
        raise click.BadParameter(str(exc)) from None


def _max_memory_option(func):
    return click.option("--max-memory", callback=_size, metavar="SIZE",
                        help="frames up to this size (4G, 512M; 0: always stream) are read into memory once and EM "
                             "runs there; more are streamed from disk on every pass, with the same result "
                             "[default: a quarter of RAM, at most 4G]")(func)


_enroll_list_option = click.option(
    "--enroll", "enroll_list", type=click.Path(exists=True, dir_okay=False),
    help="'model utt1 utt2 ...' per line (Kaldi's spk2utt); default: one model per speaker (utt2spk)")


_scores_option = click.option("--scores", "scores_path", required=True, type=click.Path(dir_okay=False),
                              help="write 'model utterance score' per line")


def _ids(path):
    from .storage._datadir import read_ids

    return None if path is None else read_ids(path)


# --------------------------------------------------------------------------- features

def _config_options(func):
    """One option per MfccConfig field (``n_mfcc`` -> ``--n-mfcc``), all defaulting to 'not given'."""
    from .features._config import MfccConfig

    for f in reversed(dataclasses.fields(MfccConfig)):
        if not f.metadata.get("cli", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} [default: {f.default}]"
        if f.type in ("bool", bool):
            func = click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name, default=None, help=help_text)(func)
            continue
        choices = f.metadata.get("choices")
        if choices:
            kind = click.Choice([str(c) for c in choices])
        else:
            kind = int if "int" in str(f.type) else float if "float" in str(f.type) else str
        func = click.option(flag, f.name, type=kind, default=None, help=help_text)(func)
    return func


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="feature archive to write (HDF5)")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="worker processes [default: all cores]")
@click.option("--strict", is_flag=True, help="stop at the first bad utterance instead of skipping it")
@click.option("--overwrite", is_flag=True, help="replace OUT if it exists (only once the new one is complete)")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="MfccConfig as JSON (e.g. the 'config' of 'acoustic-gmm info --json'); options given here override it")
@click.option("--htk-config", type=click.Path(exists=True, dir_okay=False),
              help="an HCopy configuration file (TARGETKIND MFCC or FBANK ...): HTK's front end, HTK's numbers")
@click.option("--scheduler", help="Dask scheduler address (tcp://host:8786): batches run on its workers, which "
                                  "must see the audio and OUT's folder at the same paths")
@_config_options
@_errors_to_messages
def features(data_dir, out, jobs, strict, overwrite, config_file, htk_config, scheduler, **options):
    """Extract MFCC features for every utterance of a Kaldi-style DATA_DIR.

    DATA_DIR holds wav.scp, and optionally utt2spk, utt2label and segments. Work goes to
    OUT.partial/ first: if interrupted, run the same command again to continue.
    """
    from .features._config import MfccConfig
    from .storage._corpus import extract_corpus

    if htk_config and config_file:
        raise click.ClickException("--htk-config and --config both set the front end: give one")
    config = (MfccConfig.from_htk_config(htk_config, **options) if htk_config
              else MfccConfig.from_options(config_file, **options))
    try:
        report = extract_corpus(data_dir, out, config=config, jobs=jobs, strict=strict, overwrite=overwrite,
                                client=scheduler)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished batches are kept in {out}.partial/; run the same command "
                   f"again to continue", err=True)
        sys.exit(130)
    click.echo(report.summary())


# --------------------------------------------------------------------------- classes

@main.command()
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--label-key", type=click.Choice(["label", "speaker"]), default="label", show_default=True,
              help="what the classes are: utt2label's labels or utt2spk's speakers")
@click.option("--components", "-k", type=click.IntRange(min=1), default=8, show_default=True,
              help="Gaussians per class (and state or slice)")
@click.option("--slices", type=click.IntRange(min=1), default=None,
              help="instead of HMM states: models per class over successive equal parts of an utterance (1: one "
                   "GMM per class; 3: beginning, middle, end)")
@click.option("--init", type=click.Choice(["split", "kmeans"]), default="split", show_default=True)
@click.option("--states", type=click.IntRange(min=1), default=None,
              help="each class a left-to-right HMM of this many emitting states, each a GMM, scored by its best "
                   "path  [default: 3, unless --slices is given]")
@click.option("--state-training", type=click.Choice(["viterbi", "baum-welch"]), default="baum-welch",
              show_default=True, help="with states: re-estimation after the equal-slice start")
@click.option("--var-floor", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="floor every variance at this share of its class's variance  [default: 0.3, chosen by the "
                   "defaults study (README); the GMM estimator's 0.001 fits the training speakers more closely]")
@click.option("--mmi", type=click.IntRange(min=0), default=0, show_default=True,
              help="then this many iterations of MMI (extended Baum-Welch) on the training utterances")
@click.option("--priors/--no-priors", default=False, show_default=True, help="add each class's log frequency")
@click.option("--reject-quantile", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="open-set threshold: this quantile of the training utterances' margins of the best class "
                   "over the runner-up (about this share of known utterances will be turned away)")
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="train on these utterance ids only")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="classes trained in parallel")
@_max_memory_option
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="model set to write (HDF5)")
@_errors_to_messages
@_writes({"out": "--out"}, ("feats", "utts"))
def train(feats, label_key, components, slices, init, states, state_training, var_floor, mmi, priors,
          reject_quantile, utts, jobs, max_memory, out):
    """Train models of every class of a feature archive FEATS.

    By default each class is a left-to-right HMM of 3 states of 8 Gaussians each, trained by Baum-Welch,
    with variances floored at 0.3 of the class's: the defaults study's choice for speakers the models
    have not heard (README, "Choosing the defaults"). --slices 1 gives one GMM per class.
    """
    from .classes._training import train_model_set

    states, slices = _class_parts(states, slices, init)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        ms = train_model_set(feats, label_key=label_key, n_components=components, n_slices=states or slices,
                             ids=_ids(utts), priors=priors, reject_quantile=reject_quantile, jobs=jobs, init=init,
                             max_memory=max_memory, states=state_training if states else None,
                             **({} if var_floor is None else {"var_floor": var_floor}))
        if mmi:
            from .classes._mmi import train_mmi_from_archive

            ms, history = train_mmi_from_archive(ms, feats, ids=_ids(utts), n_iter=mmi)
            click.echo(f"MMI objective {history.objective[0]:.1f} -> {history.objective[-1]:.1f}, training accuracy "
                       f"{history.train_accuracy[0]:.4f} -> {history.train_accuracy[-1]:.4f}")
    _echo_warnings(caught)
    ms.save(out)
    parts = f"{states} HMM state(s) ({state_training})" if states else f"{slices} slice(s)"
    click.echo(f"{out}: {len(ms.classes)} classes x {parts} x up to {components} components "
               f"({label_key}); reject threshold {ms.reject_threshold}")


def _class_parts(states, slices, init) -> tuple[int | None, int]:
    """``train``'s --states and --slices resolved: (HMM states or None, slices); states by default."""
    if states and slices:
        raise click.ClickException("--states and --slices both cut a class into parts: give one")
    if not states and not slices:
        states = DEFAULT_STATES
    if states and init == "kmeans":
        raise click.ClickException("--init kmeans is for slices: HMM states grow their GMMs by splitting "
                                   "(give --slices N, or leave --init)")
    return states, slices or 1


def _adapt_options(func):
    """--adapt, --adapt-iterations, --relevance: unsupervised speaker adaptation before scoring."""
    func = click.option("--relevance", "-r", type=click.FloatRange(min=0), default=16.0, show_default=True,
                        help="MAP relevance factor of the adaptation ('inf': MLLR only)")(func)
    func = click.option("--adapt-iterations", type=click.IntRange(min=1), default=3, show_default=True,
                        help="classify, adapt, classify again: this many times")(func)
    return click.option("--adapt", is_flag=True,
                        help="adapt the models (MLLR + MAP of the means, no labels) to each speaker's utterances "
                             "before the final classification")(func)


def _adapt_settings(adapt, adapt_iterations, relevance) -> dict | None:
    if not adapt:
        return None
    # an infinite relevance leaves the means where MLLR put them: skip the MAP pass
    return {"iterations": adapt_iterations, "relevance": relevance if relevance < float("inf") else None}


@main.command()
@click.argument("models", type=click.Path(exists=True, dir_okay=False))
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="evaluate these utterance ids only")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False), help="write the metrics as JSON")
@click.option("--confusion", type=click.Path(dir_okay=False), help="draw the confusion matrix to a PNG")
@click.option("--show-confusion", is_flag=True, help="print the confusion matrix")
@_adapt_options
@_errors_to_messages
@_writes({"metrics_path": "--metrics", "confusion": "--confusion"}, ("models", "feats", "utts"))
def evaluate(models, feats, utts, metrics_path, confusion, show_confusion, adapt, adapt_iterations, relevance):
    """Accuracy of a model set on a labelled feature archive.

    With --adapt the models are adapted, without labels, to each test speaker (the archive's
    utt2spk) before the utterances are classified.
    """
    from .classes._evaluation import confusion_png, confusion_text, write_metrics
    from .classes._evaluation import evaluate as run
    from .classes._model_set import ModelSet

    m = run(ModelSet.load(models), feats, _ids(utts), adapt=_adapt_settings(adapt, adapt_iterations, relevance))
    if metrics_path:
        write_metrics(m, metrics_path)
    if confusion:
        confusion_png(m, confusion)
    click.echo(f"accuracy {100 * m['accuracy']:.2f} % ({m['n'] - len(m['errors'])}/{m['n']}), "
               f"frame accuracy {100 * m['frame_accuracy']:.2f} %")
    if show_confusion:
        click.echo(confusion_text(m))


@main.command()
@click.argument("models", type=click.Path(exists=True, dir_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="how many best classes to show")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per input and line")
@click.option("--reject", is_flag=True,
              help="label <unknown> the inputs whose best class beats the runner-up by less than the calibrated margin")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--one-speaker", is_flag=True,
              help="the audio files are one speaker's: with models trained on per-speaker CMVN (the default) they "
                   "are normalised together, as that speaker's utterances were in training")
@_adapt_options
@_errors_to_messages
def classify(models, inputs, top, as_json, reject, jobs, one_speaker, adapt, adapt_iterations, relevance):
    """Classify audio files (or every utterance of a feature archive) with a model set.

    Audio is turned into features with the configuration the models were trained on.
    Files that cannot be read are reported; the others are still classified, and the exit
    status is then 1.  With per-speaker CMVN (the default front end), an audio file is normalised
    on its own unless --one-speaker says the files are one speaker's: give several of a speaker's
    files together when you can (on FSDD's unseen speakers, 92 % against 79 % one file at a time).
    With --adapt, the audio files are taken to be one speaker's (an archive's utterances are
    grouped by its utt2spk), and the models are adapted to each speaker first.
    """
    from .classes._evaluation import classify as run
    from .classes._evaluation import load_inputs
    from .classes._model_set import ModelSet

    ms = ModelSet.load(models)
    if reject and ms.reject_threshold is None:
        raise click.ClickException(f"{models}: has no reject threshold (train with --reject-quantile)")
    ids, feats, speakers, problems = load_inputs(ms, inputs, jobs=jobs, one_speaker=one_speaker or adapt)
    if feats:
        for r in run(ms, ids, feats, speakers, top=top, reject=reject,
                     adapt=_adapt_settings(adapt, adapt_iterations, relevance)):
            click.echo(json.dumps(r) if as_json else f"{r['id']}\t{r['label']}\t{r['score']:.2f}\t"
                       + " ".join(f"{c}:{v:.1f}" for c, v in r["top"]))
    for utt, reason in problems:
        click.echo(f"error: {utt}: {reason}", err=True)
    if problems:
        sys.exit(1)


@main.command()
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="new archive (must not exist)")
@_errors_to_messages
def convert(feats, out):
    """Rewrite a feature archive of an earlier format (1: one dataset per utterance) in the current one (2:
    frames stored contiguously, read and streamed several times faster)."""
    from .storage._archive import convert_archive

    n = convert_archive(feats, out)
    click.echo(f"{out}: {n} utterances, feature archive format 2")


# --------------------------------------------------------------------------- other toolkits

_FORMATS = click.Choice(["kaldi", "htk"])


@main.command("export")
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=_FORMATS, required=True)
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="these utterance ids only")
@click.option("--compress", is_flag=True, help="htk: HTK's 16-bit compressed parameter files (_C)")
@click.option("--out", "-o", required=True, type=click.Path(),
              help="kaldi: the .ark to write (the .scp goes beside it); htk: a folder for <utt>.htk files")
@click.option("--overwrite", is_flag=True, help="replace existing outputs")
@_errors_to_messages
def export(feats, fmt, utts, compress, out, overwrite):
    """Write the features of FEATS for Kaldi (ark + scp) or HTK (one parameter file per utterance)."""
    from .interop._toolkits import export_features

    click.echo(export_features(feats, out, fmt=fmt, ids=_ids(utts), compress=compress, overwrite=overwrite))


@main.command("import")
@click.argument("listing", metavar="FEATURES", type=click.Path(exists=True, dir_okay=False))
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=_FORMATS, default="kaldi", show_default=True,
              help="kaldi: FEATURES is a feats.scp or .ark; htk: a list of parameter files ('file' or 'utt file')")
@click.option("--sample-rate", type=click.IntRange(min=1), help="the audio's rate [default: read from DATA_DIR's audio]")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="feature archive to write")
@click.option("--overwrite", is_flag=True, help="replace OUT (only once the new archive is complete)")
@_errors_to_messages
def import_(listing, data_dir, fmt, sample_rate, out, overwrite):
    """Make a feature archive of features computed by Kaldi or HTK, with DATA_DIR's speakers and labels."""
    from .interop._toolkits import import_features

    report = import_features(listing, data_dir, out, fmt=fmt, sample_rate=sample_rate, overwrite=overwrite)
    click.echo(f"{out}: {report.n_utterances} utterances imported"
               + (f"; {len(report.missing)} of {data_dir} had no features (listed by 'acoustic-gmm info')"
                  if report.missing else ""))


@main.command("export-model")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="which model of a model file that holds several")
@click.option("--format", "fmt", type=_FORMATS, required=True)
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="kaldi: DiagGmm text (then gmm-global-copy to binary); htk: an MMF")
@_errors_to_messages
@_writes({"out": "--out"}, ("model_path",))
def export_model(model_path, name, fmt, out):
    """Write a diagonal GMM in Kaldi's DiagGmm text format or as an HTK MMF (one emitting state)."""
    from .interop._toolkits import export_model as run

    run(model_path, out, fmt=fmt, name=name)
    click.echo(f"{out}: {fmt} model")


@main.command("import-model")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=_FORMATS, required=True)
@click.option("--name", help="htk: which ~h model of the MMF; the name in the model file written")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="model file to write (HDF5)")
@_errors_to_messages
@_writes({"out": "--out"}, ("path",))
def import_model(path, fmt, name, out):
    """Make an acoustic_gmm model file of a Kaldi DiagGmm (text) or a GMM state of an HTK MMF."""
    from .interop._toolkits import import_model as run

    model = run(path, out, fmt=fmt, name=name)
    click.echo(f"{out}: {model.n_components} components x {model.n_features} features")


# --------------------------------------------------------------------------- verification

@main.command()
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--components", "-k", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="train on these utterance ids only")
@click.option("--subsample", type=click.IntRange(min=1), default=1, show_default=True, help="keep every n-th frame")
@click.option("--scheduler", help="Dask scheduler address (tcp://host:8786): E-steps run on its workers, which "
                                  "must see FEATS at the same path; without it, FEATS is read here")
@_max_memory_option
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="continue from the checkpoint OUT.ckpt a killed run left (saved after every growth stage and "
                   "every 30 s, removed when training ends); --no-resume starts afresh and replaces it")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False))
@_errors_to_messages
@_writes({"out": "--out"}, ("feats", "utts"))
def ubm(feats, components, utts, subsample, scheduler, max_memory, resume, out):
    """Train a universal background model on the pooled frames of FEATS.

    Training saves its state to OUT.ckpt after every growth stage and every 30 s: run the same command
    again after a crash or a kill and it continues where it stopped, to the model an uninterrupted run gives.
    """
    from pathlib import Path

    from .speaker._gmm_ubm import train_ubm

    if scheduler and subsample != 1:
        raise click.ClickException("--subsample is not available with --scheduler")
    ckpt = Path(f"{out}.ckpt")  # beside OUT, and held under OUT's lock with it: no other run uses it meanwhile
    if not resume and ckpt.is_file():
        ckpt.unlink()

    def resuming(path, size, iteration):
        click.echo(f"resuming from {path}: stage {size} components, iteration {iteration}", err=True)

    model, meta = train_ubm(feats, components, ids=_ids(utts), subsample=subsample, client=scheduler,
                            max_memory=max_memory, progress=_em_progress(components), checkpoint=ckpt,
                            on_resume=resuming)
    model.save(out, name="ubm", metadata=meta)
    click.echo(f"{out}: UBM of {components} components on {meta['n_frames']:,} frames; ubm_id {meta['ubm_id']}")


def _em_progress(k):
    if not sys.stderr.isatty():
        return None
    return lambda it, size, ll: click.echo(f"\r  EM iteration {it} ({size}/{k} components) "
                                           f"log-likelihood {ll:.3f}", nl=False, err=True)


@main.command()
@click.argument("ubm_path", metavar="UBM", type=click.Path(exists=True, dir_okay=False))
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--relevance", "-r", type=click.FloatRange(min=0), default=16.0, show_default=True)
@click.option("--adapt", type=click.Choice(["m", "mw", "mwv"]), default="m", show_default=True,
              help="adapt means, and weights, and variances")
@_enroll_list_option
@click.option("--ml", is_flag=True, help="instead of MAP, train each speaker's GMM from scratch (the baseline "
                                         "GMM-UBM beats; scored exactly)")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False))
@_errors_to_messages
@_writes({"out": "--out"}, ("ubm_path", "feats", "enroll_list"))
def enroll(ubm_path, feats, relevance, adapt, enroll_list, ml, out):
    """Enrol speakers by MAP adaptation of the UBM to their frames in FEATS."""
    from pathlib import Path

    from .speaker._files import save_speakers
    from .speaker._gmm_ubm import enroll as run
    from .speaker._gmm_ubm import load_ubm
    from .storage._datadir import read_spk2utt

    ubm_model = load_ubm(ubm_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        speakers = run(ubm_model, feats, read_spk2utt(enroll_list) if enroll_list else None, relevance=relevance,
                       adapt=adapt, method="ml" if ml else "map")
    _echo_warnings(caught, "note")
    save_speakers(out, speakers, ubm_model, adapt="ml" if ml else adapt, relevance=relevance,
                  metadata={"ubm": str(Path(ubm_path).resolve())})
    click.echo(f"{out}: {len(speakers)} speaker model(s), {'ML from scratch' if ml else f'MAP {adapt}, r={relevance:g}'}")


@main.command()
@click.argument("speakers_path", metavar="SPEAKERS", type=click.Path(exists=True, dir_okay=False))
@click.argument("trials_path", metavar="TRIALS", type=click.Path(exists=True, dir_okay=False))
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--ubm", "ubm_path", type=click.Path(exists=True, dir_okay=False),
              help="the UBM the speakers were adapted from [default: the one recorded at enrolment]")
@click.option("--top-c", type=click.IntRange(min=1), default=5, show_default=True,
              help="score each frame on its C best UBM components")
@click.option("--exact", is_flag=True, help="score on every component (slower; the reference for top-C)")
@click.option("--norm", type=click.Choice(["none", "z", "t", "s"]), default="none", show_default=True)
@click.option("--cohort-utts", type=click.Path(exists=True, dir_okay=False),
              help="impostor utterance ids in FEATS for z-norm (and s-norm)")
@click.option("--cohort-models", type=click.Path(exists=True, dir_okay=False),
              help="impostor speaker models (same UBM) for t-norm (and s-norm)")
@_scores_option
@_errors_to_messages
@_writes({"scores_path": "--scores"}, ("speakers_path", "trials_path", "feats", "ubm_path", "cohort_utts",
                                       "cohort_models"))
def verify(speakers_path, trials_path, feats, ubm_path, top_c, exact, norm, cohort_utts, cohort_models, scores_path):
    """Score verification TRIALS ('model utterance [target|nontarget]') on the utterances of FEATS."""
    from .speaker._trials import Trials, verify_trials, write_scores

    if norm in ("z", "s") and not cohort_utts:
        raise click.ClickException(f"--norm {norm} needs --cohort-utts")
    if norm in ("t", "s") and not cohort_models:
        raise click.ClickException(f"--norm {norm} needs --cohort-models")
    trials = Trials.read(trials_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        scores, how = verify_trials(speakers_path, trials, feats, ubm=ubm_path, top_c=None if exact else top_c,
                                    norm=norm, cohort_utts=_ids(cohort_utts), cohort_models=cohort_models)
    _echo_warnings(caught)
    write_scores(scores_path, trials, scores)
    c = how["top_c"]
    click.echo(f"{scores_path}: {len(scores):,} of {len(trials.models):,} trials scored in {how['seconds']:.2f} s "
               f"({'exact' if c is None else f'top-{c}'}{'' if norm == 'none' else f', {norm}-norm'})")
    _echo_trial_metrics(scores, trials)


def _echo_trial_metrics(scores, trials) -> None:
    """EER and minDCF of freshly scored trials, when the trials say which are targets."""
    from .speaker._metrics import verification_metrics

    if all(t is not None for t in trials.targets):
        try:
            _echo_metrics(verification_metrics(scores, trials.targets), "")
        except AcousticGMMError as exc:
            click.echo(f"note: {exc}", err=True)


def _echo_metrics(m: dict, what: str) -> None:
    click.echo(f"EER {100 * m['eer']:.2f} %  minDCF(0.01) {m['min_dcf_0.01']:.3f}  minDCF(0.001) "
               f"{m['min_dcf_0.001']:.3f}  ({m['n_target']} target, {m['n_nontarget']} non-target{what})")


@main.command()
@click.argument("scores_path", metavar="SCORES", type=click.Path(exists=True, dir_okay=False))
@click.argument("trials_path", metavar="TRIALS", type=click.Path(exists=True, dir_okay=False))
@click.option("--det", type=click.Path(dir_okay=False), help="draw the DET curve to a PNG")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False), help="write the metrics as JSON")
@click.option("--allow-missing", is_flag=True, help="compute the metrics over the scored trials when SCORES misses "
                                                    "some of TRIALS (a warning instead of an error)")
@_errors_to_messages
@_writes({"det": "--det", "metrics_path": "--metrics"}, ("scores_path", "trials_path"))
def eer(scores_path, trials_path, det, metrics_path, allow_missing):
    """EER and minDCF of a score file ('model utterance score') against the TRIALS' labels."""
    from .speaker._trials import score_file_metrics
    from .storage._hdf5 import write_json

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        m = score_file_metrics(scores_path, trials_path, det=det, allow_missing=allow_missing)
    _echo_warnings(caught)
    if metrics_path:
        write_json(metrics_path, m)
    _echo_metrics(m, f" trials; {m['n_scored']:,} of {m['n_trials']:,} labelled trials scored")


# --------------------------------------------------------------------------- i-vectors

@main.group()
def ivector() -> None:
    """i-vector speaker verification: train an extractor, extract, train a back end, score trials."""


@ivector.command("train")
@click.argument("ubm_path", metavar="UBM", type=click.Path(exists=True, dir_okay=False))
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--dim", required=True, type=click.IntRange(min=1), help="i-vector dimension")
@click.option("--iterations", type=click.IntRange(min=1), default=10, show_default=True, help="EM iterations")
@click.option("--init", type=click.Choice(["pca", "random"]), default="pca", show_default=True,
              help="the starting subspace")
@click.option("--top-c", type=click.IntRange(min=1), default=None,
              help="prune each frame's posteriors to its C best UBM components [default: exact]")
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="train on these utterance ids only")
@click.option("--max-memory", callback=_size, metavar="SIZE",
              help="the utterances' statistics up to this size (4G, 512M) are kept in memory; more are computed "
                   "again from FEATS on every iteration, with the same result [default: a quarter of RAM, at "
                   "most 4G]")
@click.option("--scheduler", help="Dask scheduler address (tcp://host:8786): E-steps run on its workers, which "
                                   "must see FEATS at the same path")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="extractor to write (HDF5)")
@_errors_to_messages
@_writes({"out": "--out"}, ("ubm_path", "feats", "utts"))
def ivector_train(ubm_path, feats, dim, iterations, init, top_c, utts, max_memory, scheduler, out):
    """Train a total-variability (i-vector) extractor on the utterances of FEATS."""
    from pathlib import Path

    from .speaker._gmm_ubm import load_ubm
    from .speaker._ivector_files import train_extractor_from_archive

    def report(it, objective, seconds):
        click.echo(f"  iteration {it:3d}: objective {objective:12.4f} per utterance  ({seconds:.2f} s)", err=True)

    extractor = train_extractor_from_archive(load_ubm(ubm_path), feats, dim, ids=_ids(utts), n_iter=iterations, top_c=top_c,
                                   init=init, max_memory=max_memory, client=scheduler, progress=True,
                                   callback=report)
    extractor.save(out, metadata={"ubm": str(Path(ubm_path).resolve())})
    click.echo(f"{out}: i-vector extractor, dimension {dim}, UBM {extractor.ubm.n_components} x "
               f"{extractor.ubm.n_features}, {iterations} iterations")


@ivector.command("extract")
@click.argument("extractor_path", metavar="EXTRACTOR", type=click.Path(exists=True, dir_okay=False))
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="these utterance ids only")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="i-vectors to write (HDF5)")
@_errors_to_messages
@_writes({"out": "--out"}, ("extractor_path", "feats", "utts"))
def ivector_extract(extractor_path, feats, utts, out):
    """The i-vector of every utterance of FEATS."""
    from .speaker._ivector import load_extractor
    from .speaker._ivector_files import extract_archive, save_ivectors

    extractor = load_extractor(extractor_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        ivectors = extract_archive(extractor, feats, ids=_ids(utts), progress=True)
    _echo_warnings(caught)
    save_ivectors(out, ivectors, metadata={"features": feats})
    click.echo(f"{out}: {len(ivectors):,} i-vectors of dimension {extractor.dim}")


@ivector.command("backend")
@click.argument("ivectors_path", metavar="IVECTORS", type=click.Path(exists=True, dir_okay=False))
@click.option("--lda-dim", type=click.IntRange(min=1), default=None, help="reduce by LDA to this dimension first")
@click.option("--scoring", type=click.Choice(["plda", "cosine"]), default="plda", show_default=True)
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="train on these utterance ids only")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="back end to write (HDF5)")
@_errors_to_messages
@_writes({"out": "--out"}, ("ivectors_path", "utts"))
def ivector_backend(ivectors_path, lda_dim, scoring, utts, out):
    """Train the scoring back end (centring, LDA, length norm, PLDA or cosine) on IVECTORS' speakers."""
    from .speaker._ivector_files import fit_backend, load_ivectors, save_backend

    ivectors, ids = load_ivectors(ivectors_path), _ids(utts)
    backend = fit_backend(ivectors, ids=ids, lda_dim=lda_dim, scoring=scoring)
    save_backend(out, backend, ivectors.extractor)
    n = len(ivectors) if ids is None else len(ids)
    click.echo(f"{out}: {scoring} back end{'' if lda_dim is None else f', LDA to {lda_dim}'}, trained on {n:,} "
               f"i-vectors")


@ivector.command("score")
@click.argument("backend_path", metavar="BACKEND", type=click.Path(exists=True, dir_okay=False))
@click.argument("trials_path", metavar="TRIALS", type=click.Path(exists=True, dir_okay=False))
@click.argument("enroll_path", metavar="ENROLL_IVECTORS", type=click.Path(exists=True, dir_okay=False))
@click.argument("test_path", metavar="TEST_IVECTORS", type=click.Path(exists=True, dir_okay=False))
@_enroll_list_option
@click.option("--norm", type=click.Choice(["none", "z", "t", "s"]), default="none", show_default=True)
@click.option("--cohort-utts", type=click.Path(exists=True, dir_okay=False),
              help="impostor utterance ids in TEST_IVECTORS for z-, t- and s-norm")
@_scores_option
@_errors_to_messages
@_writes({"scores_path": "--scores"}, ("backend_path", "trials_path", "enroll_path", "test_path", "enroll_list",
                                       "cohort_utts"))
def ivector_score(backend_path, trials_path, enroll_path, test_path, enroll_list, norm, cohort_utts, scores_path):
    """Score verification TRIALS: models from ENROLL_IVECTORS, test utterances from TEST_IVECTORS."""
    from .speaker._ivector_files import (
        load_backend,
        load_ivectors,
        score_ivector_trials,
    )
    from .speaker._trials import Trials, write_scores
    from .storage._datadir import read_spk2utt

    backend, extractor = load_backend(backend_path)
    trials = Trials.read(trials_path)
    scores = score_ivector_trials(backend, extractor, trials, load_ivectors(enroll_path), load_ivectors(test_path),
                          groups=read_spk2utt(enroll_list) if enroll_list else None, norm=norm,
                          cohort_utts=_ids(cohort_utts))
    write_scores(scores_path, trials, scores)
    click.echo(f"{scores_path}: {len(scores):,} of {len(trials.models):,} trials scored"
               f"{'' if norm == 'none' else f' ({norm}-norm)'}")
    _echo_trial_metrics(scores, trials)


# --------------------------------------------------------------------------- info

@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print the facts as one JSON object")
@_errors_to_messages
def info(path, as_json):
    """Say what an acoustic_gmm HDF5 file holds (feature archive, models or speakers)."""
    from .interop._describe import describe, format_description

    facts = describe(path)
    click.echo(json.dumps(facts, indent=1) if as_json else format_description(facts))


if __name__ == "__main__":  # pragma: no cover
    main()
