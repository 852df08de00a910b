"""The ``acoustic-gmm`` command line: thin, it parses, calls the library and prints.

Heavy modules (h5py, librosa, scipy) are imported inside the commands that need them,
so ``acoustic-gmm --help`` starts fast.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import typing
from collections import Counter
from pathlib import Path

import click

from . import __version__
from .errors import AcousticGMMError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acoustic-gmm")
def main() -> None:
    """Gaussian-mixture acoustic modelling of speech."""


def _fail(exc: Exception) -> typing.NoReturn:
    raise click.ClickException(str(exc))


# --------------------------------------------------------------------------- features

def _config_options(func):
    """One option per MfccConfig field (``n_mfcc`` -> ``--n-mfcc``), all defaulting to 'not given'."""
    from .features import MfccConfig  # light: numpy and scipy.ndimage only at parse time

    for f in reversed(dataclasses.fields(MfccConfig)):
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


def _make_config(config_file, options: dict):
    from .features import MfccConfig

    values = {}
    if config_file:
        try:
            values = MfccConfig.from_json(Path(config_file).read_text()).to_dict()
        except AcousticGMMError as exc:
            _fail(f"{config_file}: {exc}")
    for name, value in options.items():
        if value is not None:
            values[name] = int(value) if name == "deltas" else value
    return MfccConfig.from_dict(values)


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="feature archive to write (HDF5)")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="worker processes [default: all cores]")
@click.option("--strict", is_flag=True, help="stop at the first bad utterance instead of skipping it")
@click.option("--overwrite", is_flag=True, help="replace OUT if it exists (only once the new one is complete)")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="MfccConfig as JSON (e.g. the 'config' of 'acoustic-gmm info --json'); options given here override it")
@click.option("--scheduler", help="Dask scheduler address (tcp://host:8786): batches run on its workers, which "
                                  "must see the audio and OUT's folder at the same paths")
@_config_options
def features(data_dir, out, jobs, strict, overwrite, config_file, scheduler, **options):
    """Extract MFCC features for every utterance of a Kaldi-style DATA_DIR.

    DATA_DIR holds wav.scp, and optionally utt2spk, utt2label and segments. Work goes to
    OUT.partial/ first: if interrupted, run the same command again to continue.
    """
    from .corpus import extract_corpus

    try:
        config = _make_config(config_file, options)
        if scheduler:
            from dask.distributed import Client

            with Client(scheduler) as client:
                report = extract_corpus(data_dir, out, config, jobs=jobs, strict=strict, overwrite=overwrite,
                                        client=client)
        else:
            report = extract_corpus(data_dir, out, config, jobs=jobs, strict=strict, overwrite=overwrite)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished batches are kept in {out}.partial/; run the same command "
                   f"again to continue", err=True)
        sys.exit(130)
    except AcousticGMMError as exc:
        _fail(exc)
    click.echo(report.summary())


# --------------------------------------------------------------------------- classes

def _read_ids(path) -> list[str] | None:
    if path is None:
        return None
    ids = [ln.split()[0] for ln in Path(path).read_text().splitlines() if ln.strip()]
    if not ids:
        _fail(f"{path}: lists no utterance ids")
    return ids


def _subset(fa, ids):
    if ids is None:
        return None
    unknown = [u for u in ids if u not in fa]
    if unknown:
        _fail(f"{len(unknown)} listed utterance(s) are not in {fa.path}: {', '.join(unknown[:5])}")
    return ids


@main.command()
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--label-key", type=click.Choice(["label", "speaker"]), default="label", show_default=True,
              help="what the classes are: utt2label's labels or utt2spk's speakers")
@click.option("--components", "-k", type=click.IntRange(min=1), default=16, show_default=True,
              help="Gaussians per class (and slice)")
@click.option("--slices", type=click.IntRange(min=1), default=1, show_default=True,
              help="models per class over successive equal parts of an utterance (3: beginning, middle, end)")
@click.option("--init", type=click.Choice(["split", "kmeans"]), default="split", show_default=True)
@click.option("--priors/--no-priors", default=False, show_default=True, help="add each class's log frequency")
@click.option("--reject-quantile", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="open-set threshold: this quantile of the training utterances' margins of the best class "
                   "over the runner-up (about this share of known utterances will be turned away)")
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="train on these utterance ids only")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="classes trained in parallel")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="model set to write (HDF5)")
def train(feats, label_key, components, slices, init, priors, reject_quantile, utts, jobs, out):
    """Train one GMM per class of a feature archive FEATS."""
    import warnings

    from .archive import FeatureArchive
    from .classify import train_model_set

    try:
        with FeatureArchive(feats) as fa, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            ms = train_model_set(fa, label_key, components, n_slices=slices, ids=_subset(fa, _read_ids(utts)),
                                 priors=priors, reject_quantile=reject_quantile, jobs=jobs, init=init)
        for w in caught:
            click.echo(f"warning: {w.message}", err=True)
        ms.save(out)
    except AcousticGMMError as exc:
        _fail(exc)
    click.echo(f"{out}: {len(ms.classes)} classes x {slices} slice(s) x up to {components} components "
               f"({label_key}); reject threshold {ms.reject_threshold}")


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
def evaluate(models, feats, utts, metrics_path, confusion, show_confusion, adapt, adapt_iterations, relevance):
    """Accuracy of a model set on a labelled feature archive.

    With --adapt the models are adapted, without labels, to each test speaker (the archive's
    utt2spk) before the utterances are classified.
    """
    from .archive import FeatureArchive
    from .classify import ModelSet, confusion_png, confusion_text, evaluate as run, write_metrics

    try:
        ms = ModelSet.load(models)
        with FeatureArchive(feats) as fa:
            m = run(ms, fa, _subset(fa, _read_ids(utts)), adapt=_adapt_settings(adapt, adapt_iterations, relevance))
        if metrics_path:
            write_metrics(m, metrics_path)
        if confusion:
            confusion_png(m, confusion)
    except AcousticGMMError as exc:
        _fail(exc)
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
@_adapt_options
def classify(models, inputs, top, as_json, reject, jobs, adapt, adapt_iterations, relevance):
    """Classify audio files (or every utterance of a feature archive) with a model set.

    Audio is turned into features with the configuration the models were trained on.
    Files that cannot be read are reported; the others are still classified, and the exit
    status is then 1.  With --adapt, the audio files are taken to be one speaker's (an
    archive's utterances are grouped by its utt2spk): they share that speaker's CMVN when the
    models were trained with --cmvn speaker, and the models are adapted to each speaker first.
    """
    from .classify import UNKNOWN, ModelSet

    try:
        ms = ModelSet.load(models)
        ids, feats, speakers, problems = _classify_inputs(ms, inputs, jobs, one_speaker=adapt)
        if reject and ms.reject_threshold is None:
            _fail(f"{models}: has no reject threshold (train with --reject-quantile)")
        if feats:
            if adapt:
                from .adapt import score_by_speaker

                scores = score_by_speaker(ms, feats, speakers, **_adapt_settings(adapt, adapt_iterations, relevance))
            else:
                scores = ms.score(feats)
            labels = scores.predict()
            if reject:
                labels = [UNKNOWN if r else lab for lab, r in zip(labels, ms.rejected(scores))]
            avg = scores.average.max(1)
            for i, (utt, label, best) in enumerate(zip(ids, labels, scores.top(top))):
                if as_json:
                    click.echo(json.dumps({"id": utt, "label": label, "score": best[0][1],
                                           "avg_frame_score": float(avg[i]), "n_frames": int(scores.n_frames[i]),
                                           "top": [[c, v] for c, v in best]}))
                else:
                    click.echo(f"{utt}\t{label}\t{best[0][1]:.2f}\t" + " ".join(f"{c}:{v:.1f}" for c, v in best))
    except AcousticGMMError as exc:
        _fail(exc)
    for utt, reason in problems:
        click.echo(f"error: {utt}: {reason}", err=True)
    if problems:
        sys.exit(1)


def _classify_inputs(ms, inputs, jobs, one_speaker=False):
    """Features of the inputs, audio files (extracted with the models' config) or feature archives, and
    their speakers (an archive's utt2spk; audio files are all one speaker, the empty name).

    With ``one_speaker`` and models trained on per-speaker CMVN, the audio files are normalised together, as
    one speaker's utterances are in an archive; otherwise each file is its own speaker.
    """
    from .archive import FeatureArchive, file_kind
    from .classify import check_compatible
    from .corpus import extract_files

    ids, feats, speakers, problems, audio = [], [], [], [], []
    for path in inputs:
        p = Path(path)
        if p.suffix in (".h5", ".hdf5") and p.is_file() and file_kind(p) == "features":
            with FeatureArchive(p) as fa:
                check_compatible(ms, fa)
                ids += fa.ids
                feats += [fa[u] for u in fa.ids]
                speakers += [f"{p}:{fa.speakers.get(u) or u}" for u in fa.ids]
        else:
            audio.append(path)
    if audio:
        if ms.config is None:
            _fail("the model set does not record its feature configuration; classify a feature archive instead")
        for path, (frames, reason) in zip(audio, extract_files(audio, ms.config, jobs=jobs, sample_rate=ms.sample_rate,
                                                               one_speaker=one_speaker)):
            if frames is None:
                problems.append((path, reason))
            else:
                ids.append(path)
                feats.append(frames)
                speakers.append("")
    return ids, feats, speakers, problems


# --------------------------------------------------------------------------- verification

def _load_ubm(path):
    from .estimator import GMM

    ubm = GMM.load(path)
    if ubm.covariance_type != "diag":
        _fail(f"{path}: a UBM must have diagonal covariances")
    return ubm


@main.command()
@click.argument("feats", type=click.Path(exists=True, dir_okay=False))
@click.option("--components", "-k", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--utts", type=click.Path(exists=True, dir_okay=False), help="train on these utterance ids only")
@click.option("--subsample", type=click.IntRange(min=1), default=1, show_default=True, help="keep every n-th frame")
@click.option("--scheduler", help="Dask scheduler address (tcp://host:8786): E-steps run on its workers, which "
                                  "must see FEATS at the same path; without it, FEATS is streamed from disk here")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False))
def ubm(feats, components, utts, subsample, scheduler, out):
    """Train a universal background model on the pooled frames of FEATS."""
    from .archive import FeatureArchive
    from .estimator import GMM
    from .verify import ubm_id

    try:
        with FeatureArchive(feats) as fa:
            ids = _subset(fa, _read_ids(utts))
            if scheduler:
                if subsample != 1:
                    _fail("--subsample is not available with --scheduler")
                from dask.distributed import Client

                from .distributed import DaskFrames

                with Client(scheduler) as client:
                    X = DaskFrames(feats, client, ids=ids)
                    model = GMM(components).fit(X, progress=_em_progress(components))
                    n = X.n_frames_total
                    X.close()
            else:
                X = fa.frames(ids)[::subsample] if ids is not None or subsample != 1 else fa
                model = GMM(components).fit(X, progress=_em_progress(components))
                n = X.n_frames_total if X is fa else len(X)
            model.save(out, name="ubm", metadata={"kind": "ubm", "ubm_id": ubm_id(model.model_),
                                                 "feature_config": fa.config.to_dict(), "sample_rate": fa.sample_rate,
                                                 "trained_on": str(fa.path), "n_frames": n})
    except AcousticGMMError as exc:
        _fail(exc)
    click.echo(f"{out}: UBM of {components} components on {n:,} frames; ubm_id {ubm_id(model.model_)}")


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
@click.option("--enroll", "enroll_list", type=click.Path(exists=True, dir_okay=False),
              help="'model utt1 utt2 ...' per line (Kaldi's spk2utt); default: one model per speaker (utt2spk)")
@click.option("--ml", is_flag=True, help="instead of MAP, train each speaker's GMM from scratch (the baseline "
                                         "GMM-UBM beats; scored exactly)")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False))
def enroll(ubm_path, feats, relevance, adapt, enroll_list, ml, out):
    """Enrol speakers by MAP adaptation of the UBM to their frames in FEATS."""
    from .archive import FeatureArchive
    from .estimator import GMM
    from .verify import Enrolled, map_adapt, save_speakers

    try:
        ubm_model = _load_ubm(ubm_path).model_
        with FeatureArchive(feats) as fa:
            if enroll_list:
                groups = {}
                for lineno, line in enumerate(Path(enroll_list).read_text().splitlines(), 1):
                    parts = line.split()
                    if len(parts) < 2:
                        _fail(f"{enroll_list}:{lineno}: expected 'model utt1 [utt2 ...]'")
                    groups[parts[0]] = _subset(fa, parts[1:])
            else:
                groups = {}
                for u in fa.ids:
                    if not fa.speakers[u]:
                        _fail(f"{fa.path}: utterance {u} has no speaker; pass --enroll")
                    groups.setdefault(fa.speakers[u], []).append(u)
            speakers = {}
            for name, ids in groups.items():
                frames = [fa[u] for u in ids]
                if ml:
                    import warnings

                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        g = GMM(ubm_model.n_components).fit(np.vstack(frames)).model_
                    if caught:
                        click.echo(f"note: {name}: the ML GMM met {len(caught)} warning(s) (too few frames for "
                                   f"{ubm_model.n_components} components?): {caught[0].message}", err=True)
                    speakers[name] = Enrolled(g.means, g.weights, g.variances, sum(map(len, frames)))
                else:
                    speakers[name] = map_adapt(ubm_model, frames, relevance, adapt)
                n = speakers[name].n_frames
                if n < ubm_model.n_components:
                    click.echo(f"note: {name}: {n} enrolment frames, fewer than the UBM's {ubm_model.n_components} "
                               f"components; MAP still works (occupied components: "
                               f"{int((speakers[name].occupancy > 1).sum())})", err=True)
        save_speakers(out, speakers, ubm_model, "ml" if ml else adapt, relevance,
                      {"ubm": str(Path(ubm_path).resolve())})
    except AcousticGMMError as exc:
        _fail(exc)
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
@click.option("--scores", "scores_path", required=True, type=click.Path(dir_okay=False),
              help="write 'model utterance score' per line")
def verify(speakers_path, trials_path, feats, ubm_path, top_c, exact, norm, cohort_utts, cohort_models, scores_path):
    """Score verification TRIALS ('model utterance [target|nontarget]') on the utterances of FEATS."""
    import time

    from .archive import FeatureArchive
    from .verify import (Scorer, Trials, load_speakers, normalise_trials, require_ubm, score_trials,
                         verification_metrics)

    try:
        speakers, info = load_speakers(speakers_path)
        ubm_model = _load_ubm(ubm_path or json.loads(info["metadata"]).get("ubm", "")).model_
        require_ubm(speakers_path, info, ubm_model)
        c = None if exact or info["adapt"] == "ml" else top_c
        trials = Trials.read(trials_path)
        with FeatureArchive(feats) as fa:
            t0 = time.perf_counter()
            scorer = Scorer(ubm_model, speakers)
            raw = score_trials(scorer, trials, fa, c)
            seconds = time.perf_counter() - t0
            if norm != "none":
                z_stats = t_stats = None
                if norm in ("z", "s"):
                    if not cohort_utts:
                        _fail(f"--norm {norm} needs --cohort-utts")
                    imp = scorer.score_many([fa[u] for u in _subset(fa, _read_ids(cohort_utts))], c)  # (I, N)
                    z_stats = {m: (imp[:, i].mean(), imp[:, i].std()) for m, i in scorer.index.items()}
                if norm in ("t", "s"):
                    if not cohort_models:
                        _fail(f"--norm {norm} needs --cohort-models")
                    cohort = Scorer(ubm_model, load_speakers(cohort_models, ubm_model)[0])
                    utts = list(dict.fromkeys(trials.utterances))
                    coh = cohort.score_many([fa[u] for u in utts], c)                               # (U, Nc)
                    t_stats = {u: (coh[i].mean(), coh[i].std()) for i, u in enumerate(utts)}
                raw = normalise_trials(trials, raw, norm, z_stats, t_stats)
        Path(scores_path).write_text("".join(f"{m} {u} {x:.6f}\n" for m, u, x in
                                             zip(trials.models, trials.utterances, raw)))
    except AcousticGMMError as exc:
        _fail(exc)
    click.echo(f"{scores_path}: {len(raw):,} trials scored in {seconds:.2f} s "
               f"({'exact' if c is None else f'top-{c}'}{'' if norm == 'none' else f', {norm}-norm'})")
    if all(t is not None for t in trials.targets):
        try:
            m = verification_metrics(raw, trials.targets)
            click.echo(f"EER {100 * m['eer']:.2f} %  minDCF(0.01) {m['min_dcf_0.01']:.3f}  "
                       f"minDCF(0.001) {m['min_dcf_0.001']:.3f}  ({m['n_target']} target, {m['n_nontarget']} non-target)")
        except AcousticGMMError as exc:
            click.echo(f"note: {exc}", err=True)


@main.command()
@click.argument("scores_path", metavar="SCORES", type=click.Path(exists=True, dir_okay=False))
@click.argument("trials_path", metavar="TRIALS", type=click.Path(exists=True, dir_okay=False))
@click.option("--det", type=click.Path(dir_okay=False), help="draw the DET curve to a PNG")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False), help="write the metrics as JSON")
def eer(scores_path, trials_path, det, metrics_path):
    """EER and minDCF of a score file ('model utterance score') against the TRIALS' labels."""
    from .verify import Trials, det_png, read_scores, verification_metrics

    try:
        pairs, values = read_scores(scores_path)
        trials = Trials.read(trials_path)
        label = {(m, u): t for m, u, t in zip(trials.models, trials.utterances, trials.targets)}
        missing = [p for p in pairs if label.get(p) is None]
        if missing:
            _fail(f"{len(missing)} scored pair(s) have no target/nontarget label in {trials_path}: "
                  + ", ".join(" ".join(p) for p in missing[:3]))
        targets = [label[p] for p in pairs]
        m = verification_metrics(values, targets)
        if det:
            det_png({Path(scores_path).stem: (values[np.array(targets)], values[~np.array(targets)])}, det)
    except AcousticGMMError as exc:
        _fail(exc)
    if metrics_path:
        Path(metrics_path).write_text(json.dumps(m, indent=1))
    click.echo(f"EER {100 * m['eer']:.2f} %  minDCF(0.01) {m['min_dcf_0.01']:.3f}  minDCF(0.001) "
               f"{m['min_dcf_0.001']:.3f}  ({m['n_target']} target, {m['n_nontarget']} non-target trials)")


# --------------------------------------------------------------------------- info

def _counts(counts: dict, limit: int = 12) -> str:
    shown = ", ".join(f"{k} ({n})" for k, n in sorted(counts.items())[:limit])
    return f"{len(counts)}: {shown}" + (", ..." if len(counts) > limit else "")


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print the facts as one JSON object")
def info(path, as_json):
    """Say what an acoustic_gmm HDF5 file holds (feature archive or models)."""
    from .archive import FeatureArchive, file_kind, load_models

    try:
        kind = file_kind(path)
        if kind == "features":
            with FeatureArchive(path) as fa:
                facts = {"path": str(path), "content": "features", "utterances": len(fa),
                         "frames": sum(fa.n_frames.values()), "n_features": fa.n_features,
                         "sample_rate": fa.sample_rate, "config": fa.config.to_dict(),
                         "labels": dict(Counter(v for v in fa.labels.values() if v)),
                         "speakers": dict(Counter(v for v in fa.speakers.values() if v)),
                         "skipped": fa.skipped, "data_dir": fa.data_dir}
        elif kind == "speakers":
            from .verify import load_speakers

            speakers, attrs = load_speakers(path)
            facts = {"path": str(path), "content": "speakers", "speakers": sorted(speakers),
                     "ubm_id": attrs["ubm_id"], "adapt": attrs["adapt"], "relevance": attrs["relevance"],
                     "metadata": json.loads(attrs["metadata"])}
            click.echo(json.dumps(facts, indent=1) if as_json else
                       f"{path}: speakers ({facts['adapt']}, r={facts['relevance']}), UBM {facts['ubm_id']}\n"
                       f"  {len(speakers)}: {', '.join(facts['speakers'][:20])}")
            return
        else:
            models, meta = load_models(path)
            facts = {"path": str(path), "content": "models", "metadata": meta,
                     "models": {name: {"n_components": m.n_components, "n_features": m.n_features,
                                       "covariance_type": m.covariance_type} for name, m in models.items()}}
    except AcousticGMMError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(facts, indent=1))
        return
    click.echo(f"{path}: {facts['content']}")
    if kind == "features":
        click.echo(f"  utterances  {facts['utterances']}  ({facts['frames']:,} frames x {facts['n_features']} "
                   f"features, {facts['sample_rate']} Hz)")
        if facts["labels"]:
            click.echo(f"  labels      {_counts(facts['labels'])}")
        if facts["speakers"]:
            click.echo(f"  speakers    {_counts(facts['speakers'])}")
        click.echo(f"  skipped     {len(facts['skipped'])}"
                   + "".join(f"\n    {u}: {r}" for u, _, r in facts["skipped"][:5]))
        click.echo(f"  source      {facts['data_dir']}")
        click.echo("  config      " + " ".join(f"{k}={v}" for k, v in facts["config"].items()))
    else:
        for name, m in list(facts["models"].items())[:20]:
            click.echo(f"  {name}: {m['n_components']} components x {m['n_features']} features "
                       f"({m['covariance_type']})")
        if len(facts["models"]) > 20:
            click.echo(f"  ... {len(facts['models']) - 20} more models")
        click.echo(f"  metadata    {json.dumps(facts['metadata'])}")


if __name__ == "__main__":  # pragma: no cover
    main()
