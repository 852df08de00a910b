"""Commands over class models: ``train``, ``evaluate`` and ``classify``, each a call of
:mod:`acoustic_gmm.classes`.
Flags map to :func:`~acoustic_gmm.classes.train_model_set`'s parameters; its defaults are the command's.
"""

from __future__ import annotations

import json
import sys
import warnings

import click

from ._main import echo_warnings, errors_to_messages, id_list, max_memory_option, view_options, writes

__all__ = ['train', 'select', 'adapt_options', 'adapt_settings', 'evaluate', 'classify']


# --------------------------------------------------------------------------- classes

@click.command()
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
@click.option("--lda-mllt", type=click.IntRange(min=1), default=None, metavar="DIM",
              help="train on static features spliced over +-4 frames, an LDA to at most DIM dimensions and MLLT "
                   "(the transform goes with the models)")
@click.option("--sat", is_flag=True, help="speaker-adaptive training: each training speaker's frames through its "
                                         "fMLLR map (evaluate with --adapt --adapt-transform fmllr)")
@click.option("--mmi", type=click.IntRange(min=0), default=0, show_default=True,
              help="then this many iterations of MMI (extended Baum-Welch) on the training utterances")
@click.option("--priors/--no-priors", default=False, show_default=True, help="add each class's log frequency")
@click.option("--reject-quantile", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="open-set threshold: this quantile of the training utterances' margins of the best class "
                   "over the runner-up (about this share of known utterances will be turned away)")
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="train on these utterance ids only")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="classes trained in parallel")
@max_memory_option
@view_options
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="model set to write (HDF5)")
@errors_to_messages
@writes(("out",), ("feats", "utts"))
def train(feats, label_key, components, slices, init, states, state_training, var_floor, lda_mllt, sat, mmi, priors,
          reject_quantile, utts, jobs, max_memory, view, out):
    """Train models of every class of a feature archive FEATS.

    By default each class is a left-to-right HMM of 3 states of 8 Gaussians each, trained by Baum-Welch
    (3 fixed slices for short segments such as phones), with variances floored at 0.3 of the class's: the
    defaults study's choice for speakers the models have not heard (README). --slices 1 gives one GMM per class.
    --cmvn, --vad, --n-mfcc and --deltas read FEATS (a raw archive) another way than it was extracted;
    the models record it, and evaluate and classify read their inputs the same way.
    """
    from ..classes._fit import fit_configuration

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        ms = fit_configuration(feats, {"lda_mllt": lda_mllt, "sat": sat}, label_key=label_key, states=states,
                               n_components=components, slices=slices, state_training=state_training, view=view,
                               ids=id_list(utts), priors=priors, out=out, reject_quantile=reject_quantile, jobs=jobs,
                               init=init, max_memory=max_memory,
                               **({} if var_floor is None else {"var_floor": var_floor}))
        if mmi:
            from ..classes._mmi import train_mmi_from_archive

            ms, history = train_mmi_from_archive(ms, feats, ids=id_list(utts), n_iter=mmi)  # the models' view
            click.echo(f"MMI objective {history.objective[0]:.1f} -> {history.objective[-1]:.1f}, training accuracy "
                       f"{history.train_accuracy[0]:.4f} -> {history.train_accuracy[-1]:.4f}")
    echo_warnings(caught)
    ms.save(out)
    parts = f"{ms.n_slices} HMM state(s) ({state_training})" if ms.log_trans else f"{ms.n_slices} slice(s)"
    click.echo(f"{out}: {len(ms.classes)} classes x {parts} x up to {components} components "
               + (f"on {ms.transform.description} " if ms.transform else "") + f"({label_key}); reject threshold "
               + ("none" if ms.reject_threshold is None else f"{ms.reject_threshold:.4g}"))  # full precision: the file


@click.command("select")
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="train on these utterance ids only")
@click.option("--priors/--no-priors", default=False, show_default=True,
              help="every configuration adds each class's log frequency (as train's)")
@click.option("--reject-quantile", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="open-set threshold of the final models (as train's)")
@click.option("--transforms", is_flag=True,
              help="also try spliced frames with LDA + MLLT (--lda-mllt 40) with HMM states and with slices")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="fits in parallel [default: all cores]")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="model set to write (HDF5)")
@errors_to_messages
@writes(("out",), ("feats", "utts"))
def select(feats, utts, priors, reject_quantile, transforms, jobs, out):
    """Choose normalisation and class models for FEATS (a raw archive) by held-out speakers, then train them.

    Every training speaker (or group of speakers) is held out once; each configuration of a small grid
    (per-speaker or per-utterance CMVN, 3 HMM states x 8, 3 slices x 8 or one GMM x 16, variance floor 0.3 or
    0.1, 13 or 20 cepstra) is trained on the others and scored on it. The earliest configuration (the
    defaults first) that the best does not beat by more than a standard error of their paired fold
    differences is trained on every utterance; the table goes with the models.
    """
    from ..classes._select import select_model_set

    def estimate(seconds):
        click.echo(f"every configuration met once: about {seconds:.0f} s more", err=True)

    ms, report = select_model_set(feats, ids=id_list(utts), priors=priors, transforms=transforms, jobs=jobs,
                                  on_estimate=estimate, reject_quantile=reject_quantile)
    ms.save(out)
    click.echo(report.table())
    click.echo(f"{out}: {report.names[report.chosen]}, {len(ms.classes)} classes; selection took "
               f"{report.seconds:.0f} s")


def adapt_options(func):
    """--adapt, --adapt-transform, --adapt-iterations, --relevance: unsupervised speaker adaptation before scoring."""
    func = click.option("--adapt-transform", type=click.Choice(["mllr", "fmllr"]), default=None,
                        help="move the models' means (mllr) or map the speaker's frames (fmllr), then MAP "
                             "[default: mllr]")(func)
    func = click.option("--relevance", "-r", type=click.FloatRange(min=0), default=16.0, show_default=True,
                        help="MAP relevance factor of the adaptation ('inf': MLLR only)")(func)
    func = click.option("--adapt-iterations", type=click.IntRange(min=1), default=None,
                        help="classify, adapt, classify again: until no label changes, at most this many times "
                             "[default: 10]")(func)
    return click.option("--adapt", is_flag=True,
                        help="adapt the models (MLLR + MAP of the means, no labels) to each speaker's utterances "
                             "before the final classification")(func)


def adapt_settings(adapt, adapt_iterations, relevance, adapt_transform=None) -> dict | None:
    if not adapt:
        return None
    given = {"iterations": adapt_iterations, "transform": adapt_transform}
    return {"relevance": relevance} | {k: v for k, v in given.items() if v is not None}


@click.command()
@click.argument("models", type=click.Path(exists=True, dir_okay=False))
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="evaluate these utterance ids only")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False), help="write the metrics as JSON")
@click.option("--confusion", type=click.Path(dir_okay=False), help="draw the confusion matrix to a PNG")
@click.option("--show-confusion", is_flag=True, help="print the confusion matrix")
@adapt_options
@errors_to_messages
@writes(("metrics_path", "confusion",), ("models", "feats", "utts"))
def evaluate(models, feats, utts, metrics_path, confusion, show_confusion, adapt, adapt_iterations, relevance,
             adapt_transform):
    """Accuracy of a model set on a labelled feature archive.

    With --adapt the models are adapted, without labels, to each test speaker (the archive's
    utt2spk) before the utterances are classified.
    """
    from ..classes._evaluation import confusion_png, confusion_text, write_metrics
    from ..classes._evaluation import evaluate as run
    from ..classes._model_set import ModelSet

    m = run(ModelSet.load(models), feats, id_list(utts),
            adapt=adapt_settings(adapt, adapt_iterations, relevance, adapt_transform))
    if metrics_path:
        write_metrics(m, metrics_path)
    if confusion:
        confusion_png(m, confusion)
    click.echo(f"accuracy {100 * m['accuracy']:.2f} % ({m['n'] - len(m['errors'])}/{m['n']}), "
               f"frame accuracy {100 * m['frame_accuracy']:.2f} %")
    if show_confusion:
        click.echo(confusion_text(m))


@click.command()
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
@adapt_options
@errors_to_messages
def classify(models, inputs, top, as_json, reject, jobs, one_speaker, adapt, adapt_iterations, relevance,
             adapt_transform):
    """Classify audio files (or every utterance of a feature archive) with a model set.

    Audio is turned into features with the configuration the models were trained on.
    Files that cannot be read are reported; the others are still classified, and the exit
    status is then 1.  With per-speaker CMVN (the default front end), an audio file is normalised
    on its own unless --one-speaker says the files are one speaker's: give several of a speaker's
    files together when you can (on FSDD's unseen speakers, 92 % against 79 % one file at a time).
    With --adapt, the audio files are taken to be one speaker's (an archive's utterances are
    grouped by its utt2spk), and the models are adapted to each speaker first.
    """
    from ..classes._evaluation import classify as run
    from ..classes._evaluation import load_inputs
    from ..classes._model_set import ModelSet

    ms = ModelSet.load(models)
    if reject:
        ms.check_reject()  # before the audio is read
    ids, feats, speakers, problems = load_inputs(ms, inputs, jobs=jobs, one_speaker=one_speaker or adapt)
    if feats:
        for r in run(ms, ids, feats, speakers, top=top, reject=reject,
                     adapt=adapt_settings(adapt, adapt_iterations, relevance, adapt_transform)):
            click.echo(json.dumps(r) if as_json else f"{r['id']}\t{r['label']}\t{r['score']:.2f}\t"
                       + " ".join(f"{c}:{v:.1f}" for c, v in r["top"]))
    for utt, reason in problems:
        click.echo(f"error: {utt}: {reason}", err=True)
    if problems:
        sys.exit(1)
