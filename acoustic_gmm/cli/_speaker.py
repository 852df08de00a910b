"""Commands of speaker recognition: ``ubm``, ``enroll``, ``verify``, ``eer`` and the ``ivector`` group,
each a call or two of :mod:`acoustic_gmm.speaker`.
Checkpoints, cohorts and resumption are the library's rules; the commands only name the files.
"""

from __future__ import annotations

import sys
import warnings

import click

from ..errors import AcousticGMMError
from ._main import (
    cohort_overlap_option,
    echo_warnings,
    enroll_list_option,
    errors_to_messages,
    id_list,
    max_memory_option,
    scores_option,
    size,
    view_options,
    writes,
)

__all__ = ['ubm', 'em_progress', 'enroll', 'verify', 'echo_trial_metrics', 'echo_metrics', 'eer', 'ivector', 'ivector_train', 'ivector_extract', 'ivector_backend', 'ivector_score']


# --------------------------------------------------------------------------- verification

@click.command()
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--components", "-k", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="train on these utterance ids only")
@click.option("--subsample", type=click.IntRange(min=1), default=1, show_default=True, help="keep every n-th frame")
@click.option("--scheduler", "client", help="Dask scheduler address (tcp://host:8786): E-steps run on its workers, "
                                            "which must see FEATS at the same path; without it, FEATS is read here")
@max_memory_option
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="continue from the checkpoint OUT.ckpt a killed run left (saved after every growth stage and "
                   "every 30 s, removed when training ends); --no-resume starts afresh and replaces it")
@click.option("--gselect", default="auto", show_default=True, callback=lambda ctx, param, value: _gselect(value),
              help="Gaussian selection: each frame's E-step over its N best components (N, e.g. 30), 0 for exact EM; "
                   "auto selects from 1,024 components on")
@view_options
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False))
@errors_to_messages
@writes(("out",), ("feats", "utts"))
def ubm(feats, components, utts, subsample, client, max_memory, resume, gselect, view, out):
    """Train a universal background model on the pooled frames of FEATS.

    --cmvn, --vad, --n-mfcc and --deltas read FEATS (a raw archive) another way than it was extracted (for
    speaker recognition: --cmvn mean --vad); the UBM records it, and enrol, verify and ivector read their
    archives the same way.

    Training saves its state to OUT.ckpt after every growth stage and every 30 s: run the same command
    again after a crash or a kill and it continues where it stopped, to the model an uninterrupted run gives.
    """
    from ..gmm._checkpoint import checkpoint_path
    from ..speaker._gmm_ubm import train_ubm

    def resuming(path, size, iteration):
        click.echo(f"resuming from {path}: stage {size} components, iteration {iteration}", err=True)

    with warnings.catch_warnings(record=True) as caught:  # the package's one-line warnings, not Python's
        warnings.simplefilter("always", UserWarning)
        model, meta = train_ubm(feats, components, ids=id_list(utts), subsample=subsample, client=client,
                                max_memory=max_memory, progress=em_progress(components), checkpoint=checkpoint_path(out),
                                resume=resume, on_resume=resuming, view=view, gselect=gselect)
    echo_warnings(caught)
    model.save(out, name="ubm", metadata=meta)
    click.echo(f"{out}: UBM of {components} components on {meta['n_frames']:,} frames; ubm_id {meta['ubm_id']}")


def _gselect(value: str):
    """``--gselect``: "auto", or a number of components (0: exact EM)."""
    if value != "auto" and not value.isdigit():
        raise click.BadParameter(f"{value!r} is neither 'auto' nor a number of components (0 for exact EM)")
    return value if value == "auto" else int(value)


def em_progress(k):
    if not sys.stderr.isatty():
        return None
    return lambda it, size, ll: click.echo(f"\r  EM iteration {it} ({size}/{k} components) "
                                           f"log-likelihood {ll:.3f}", nl=False, err=True)


@click.command()
@click.argument("ubm_path", metavar="UBM", type=click.Path(exists=True, dir_okay=False))
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--relevance", "-r", type=click.FloatRange(min=0), default=16.0, show_default=True)
@click.option("--adapt", type=click.Choice(["m", "mw", "mwv"]), default="m", show_default=True,
              help="adapt means, and weights, and variances")
@enroll_list_option
@click.option("--ml", is_flag=True, help="instead of MAP, train each speaker's GMM from scratch (the baseline "
                                         "GMM-UBM beats; scored exactly)")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False))
@errors_to_messages
@writes(("out",), ("ubm_path", "feats", "groups"))
def enroll(ubm_path, feats, relevance, adapt, groups, ml, out):
    """Enrol speakers by MAP adaptation of the UBM to their frames in FEATS."""
    from pathlib import Path

    from ..speaker._files import save_speakers
    from ..speaker._gmm_ubm import enroll as run
    from ..speaker._gmm_ubm import load_ubm, ubm_config
    from ..storage._datadir import read_spk2utt

    ubm_model = load_ubm(ubm_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        speakers = run(ubm_model, feats, read_spk2utt(groups) if groups else None, relevance=relevance,
                       adapt=adapt, method="ml" if ml else "map", view=ubm_config(ubm_path))
    echo_warnings(caught, "note")
    save_speakers(out, speakers, ubm_model, adapt="ml" if ml else adapt, relevance=relevance,
                  metadata={"ubm": str(Path(ubm_path).resolve())})
    click.echo(f"{out}: {len(speakers)} speaker model(s), {'ML from scratch' if ml else f'MAP {adapt}, r={relevance:g}'}")


@click.command()
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
@cohort_overlap_option
@scores_option
@errors_to_messages
@writes(("scores_path",), ("speakers_path", "trials_path", "feats", "ubm_path", "cohort_utts", "cohort_models"))
def verify(speakers_path, trials_path, feats, ubm_path, top_c, exact, norm, cohort_utts, cohort_models,
           allow_cohort_overlap, scores_path):
    """Score verification TRIALS ('model utterance [target|nontarget]') on the utterances of FEATS."""
    from ..speaker._trials import Trials, verify_trials, write_scores

    trials = Trials.read(trials_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        scores, how = verify_trials(speakers_path, trials, feats, ubm=ubm_path, top_c=None if exact else top_c,
                                    norm=norm, cohort_utts=id_list(cohort_utts), cohort_models=cohort_models,
                                    allow_cohort_overlap=allow_cohort_overlap)
    echo_warnings(caught)
    write_scores(scores_path, trials, scores)
    c = how["top_c"]
    click.echo(f"{scores_path}: {len(scores):,} of {len(trials.models):,} trials scored in {how['seconds']:.2f} s "
               f"({'exact' if c is None else f'top-{c}'}{'' if norm == 'none' else f', {norm}-norm'})")
    echo_trial_metrics(scores, trials)


def echo_trial_metrics(scores, trials) -> None:
    """EER and minDCF of freshly scored trials, when the trials say which are targets."""
    from ..speaker._metrics import verification_metrics

    if all(t is not None for t in trials.targets):
        try:
            echo_metrics(verification_metrics(scores, trials.targets), "")
        except AcousticGMMError as exc:
            click.echo(f"note: {exc}", err=True)


def echo_metrics(m: dict, what: str) -> None:
    click.echo(f"EER {100 * m['eer']:.2f} %  minDCF(0.01) {m['min_dcf_0.01']:.3f}  minDCF(0.001) "
               f"{m['min_dcf_0.001']:.3f}  ({m['n_target']} target, {m['n_nontarget']} non-target{what})")


@click.command()
@click.argument("scores_path", metavar="SCORES", type=click.Path(exists=True, dir_okay=False))
@click.argument("trials_path", metavar="TRIALS", type=click.Path(exists=True, dir_okay=False))
@click.option("--det", type=click.Path(dir_okay=False), help="draw the DET curve to a PNG")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False), help="write the metrics as JSON")
@click.option("--allow-missing", is_flag=True, help="compute the metrics over the scored trials when SCORES misses "
                                                    "some of TRIALS (a warning instead of an error)")
@errors_to_messages
@writes(("det", "metrics_path",), ("scores_path", "trials_path"))
def eer(scores_path, trials_path, det, metrics_path, allow_missing):
    """EER and minDCF of a score file ('model utterance score') against the TRIALS' labels."""
    from ..speaker._trials import score_file_metrics
    from ..storage._hdf5 import write_json

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        m = score_file_metrics(scores_path, trials_path, det=det, allow_missing=allow_missing)
    echo_warnings(caught)
    if metrics_path:
        write_json(metrics_path, m)
    echo_metrics(m, f" trials; {m['n_scored']:,} of {m['n_trials']:,} labelled trials scored")


# --------------------------------------------------------------------------- i-vectors

@click.group()
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
@click.option("--max-memory", callback=size, metavar="SIZE",
              help="the utterances' statistics up to this size (4G, 512M) are kept in memory; more are computed "
                   "again from FEATS on every iteration, with the same result [default: a quarter of RAM, at "
                   "most 4G]")
@click.option("--scheduler", "client", help="Dask scheduler address (tcp://host:8786): E-steps run on its workers, which "
                                   "must see FEATS at the same path")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="extractor to write (HDF5)")
@errors_to_messages
@writes(("out",), ("ubm_path", "feats", "utts"))
def ivector_train(ubm_path, feats, dim, iterations, init, top_c, utts, max_memory, client, out):
    """Train a total-variability (i-vector) extractor on the utterances of FEATS."""
    from pathlib import Path

    from ..speaker._gmm_ubm import load_ubm, ubm_config
    from ..speaker._ivector_files import train_extractor_from_archive

    def report(it, objective, seconds):
        click.echo(f"  iteration {it:3d}: objective {objective:12.4f} per utterance  ({seconds:.2f} s)", err=True)

    extractor = train_extractor_from_archive(load_ubm(ubm_path), feats, dim, ids=id_list(utts), n_iter=iterations, top_c=top_c,
                                   init=init, max_memory=max_memory, client=client, progress=None,
                                   callback=report, out=out, view=ubm_config(ubm_path))
    extractor.save(out, metadata={"ubm": str(Path(ubm_path).resolve())})
    click.echo(f"{out}: i-vector extractor, dimension {dim}, UBM {extractor.ubm.n_components} x "
               f"{extractor.ubm.n_features}, {iterations} iterations")


@ivector.command("extract")
@click.argument("extractor_path", metavar="EXTRACTOR", type=click.Path(exists=True, dir_okay=False))
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="these utterance ids only")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="i-vectors to write (HDF5)")
@errors_to_messages
@writes(("out",), ("extractor_path", "feats", "utts"))
def ivector_extract(extractor_path, feats, utts, out):
    """The i-vector of every utterance of FEATS."""
    from ..speaker._ivector import load_extractor
    from ..speaker._ivector_files import extract_archive, save_ivectors

    extractor = load_extractor(extractor_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        ivectors = extract_archive(extractor, feats, ids=id_list(utts), progress=None)
    echo_warnings(caught)
    save_ivectors(out, ivectors, metadata={"features": feats})
    click.echo(f"{out}: {len(ivectors):,} i-vectors of dimension {extractor.dim}")


@ivector.command("backend")
@click.argument("ivectors_path", metavar="IVECTORS", type=click.Path(exists=True, dir_okay=False))
@click.option("--lda-dim", type=click.IntRange(min=1), default=None, help="reduce by LDA to this dimension first")
@click.option("--scoring", type=click.Choice(["plda", "cosine"]), default="plda", show_default=True)
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="train on these utterance ids only")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="back end to write (HDF5)")
@errors_to_messages
@writes(("out",), ("ivectors_path", "utts"))
def ivector_backend(ivectors_path, lda_dim, scoring, utts, out):
    """Train the scoring back end (centring, LDA, length norm, PLDA or cosine) on IVECTORS' speakers."""
    from ..speaker._ivector_files import fit_backend, load_ivectors, save_backend

    ivectors, ids = load_ivectors(ivectors_path), id_list(utts)
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
@enroll_list_option
@click.option("--norm", type=click.Choice(["none", "z", "t", "s"]), default="none", show_default=True)
@click.option("--cohort-utts", type=click.Path(exists=True, dir_okay=False),
              help="impostor utterance ids in TEST_IVECTORS for z-, t- and s-norm")
@cohort_overlap_option
@scores_option
@errors_to_messages
@writes(("scores_path",), ("backend_path", "trials_path", "enroll_path", "test_path", "groups", "cohort_utts"))
def ivector_score(backend_path, trials_path, enroll_path, test_path, groups, norm, cohort_utts, allow_cohort_overlap,
                  scores_path):
    """Score verification TRIALS: models from ENROLL_IVECTORS, test utterances from TEST_IVECTORS."""
    from ..speaker._ivector_files import load_backend, load_ivectors, score_ivector_trials
    from ..speaker._trials import Trials, write_scores
    from ..storage._datadir import read_spk2utt

    backend, extractor = load_backend(backend_path)
    trials = Trials.read(trials_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        scores = score_ivector_trials(backend, extractor, trials, load_ivectors(enroll_path),
                                      load_ivectors(test_path), groups=read_spk2utt(groups) if groups else None,
                                      norm=norm, cohort_utts=id_list(cohort_utts),
                                      allow_cohort_overlap=allow_cohort_overlap)
    echo_warnings(caught)
    write_scores(scores_path, trials, scores)
    click.echo(f"{scores_path}: {len(scores):,} of {len(trials.models):,} trials scored"
               f"{'' if norm == 'none' else f' ({norm}-norm)'}")
    echo_trial_metrics(scores, trials)
