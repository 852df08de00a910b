"""i-vectors over feature archives: extractor training and extraction, i-vector and back-end files, trials.

The workflows ``acoustic-gmm ivector`` runs: :func:`train_extractor_from_archive` and :func:`extract_archive`
(statistics streamed in bounded memory or on Dask, :class:`DaskStats`), :class:`Ivectors` with
:func:`save_ivectors` / :func:`load_ivectors`, :func:`fit_backend` with :func:`save_backend` /
:func:`load_backend`, and :func:`score_ivector_trials`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from ..errors import ArchiveError, DataError, ParameterError
from ..gmm._model import DiagGMM
from ..storage._archive import opened
from ..storage._outputs import check_free_space
from ._bw_stats import StatsStream, utterance_stats
from ._files import load_bundle, save_bundle
from ._ivector import IvectorExtractor, train_extractor

__all__ = ["Ivectors", "save_ivectors", "load_ivectors", "train_extractor_from_archive", "extract_archive", "fit_backend", "save_backend", "load_backend", "score_ivector_trials"]


@dataclass
class Ivectors:
    """i-vectors with their utterances' ids, speakers and labels and the extractor that made them."""

    ids: list
    vectors: np.ndarray
    speakers: list
    labels: list
    extractor: str
    path: str = ""  # the file they were read from, named in errors

    def __len__(self) -> int:
        return len(self.ids)

    def by_speaker(self) -> dict:
        """``{speaker: (n_utts, R) vectors}``."""
        out: dict = {}
        for i, s in enumerate(self.speakers):
            out.setdefault(s, []).append(i)
        return {s: self.vectors[idx] for s, idx in out.items()}

    def rows(self, ids) -> np.ndarray:
        """The vectors of ``ids``; :class:`~acoustic_gmm.errors.DataError` naming those not here."""
        where = {u: i for i, u in enumerate(self.ids)}
        missing = [u for u in ids if u not in where]
        if missing:
            raise DataError(f"{self.path + ': ' if self.path else ''}{len(missing)} utterance(s) have no "
                            f"i-vector: {', '.join(missing[:5])}"
                            + (", ..." if len(missing) > 5 else ""))
        return self.vectors[[where[u] for u in ids]]


def save_ivectors(path, ivectors: Ivectors, *, metadata: dict | None = None) -> None:
    """Write i-vectors (with ids, speakers, labels and the extractor's fingerprint) to an HDF5 file."""
    save_bundle(path, "ivectors", arrays={"vectors": ivectors.vectors},
                texts={"ids": ivectors.ids, "speakers": ivectors.speakers, "labels": ivectors.labels},
                metadata={"extractor": ivectors.extractor, **(metadata or {})})


def load_ivectors(path) -> Ivectors:
    """Read an i-vector file (every field checked)."""
    arrays, texts, meta = load_bundle(path, "ivectors")
    V = arrays.get("vectors")
    ids = texts.get("ids")
    if V is None or ids is None or V.ndim != 2:
        raise ArchiveError(f"{path}: damaged i-vector file (no 2-D 'vectors' or no 'ids')")
    for key in ("ids", "speakers", "labels"):
        if len(texts.get(key, [])) != len(V):
            raise ArchiveError(f"{path}: {len(texts.get(key, []))} {key} for {len(V)} i-vectors")
    if len(set(ids)) != len(ids):
        raise ArchiveError(f"{path}: utterance ids occur more than once")
    if not isinstance(meta.get("extractor"), str):
        raise ArchiveError(f"{path}: no extractor fingerprint in the metadata")
    return Ivectors(ids, V, texts["speakers"], texts["labels"], meta["extractor"], str(path))


def _shard_tv_stats(path: str, ids: list, top_c, extractor, view):
    return extractor.accumulate(StatsStream(extractor.ubm, path, ids, top_c=top_c, view=view))


class DaskStats:
    """Utterance statistics of a feature archive whose i-vector E-steps run as Dask tasks, one per shard.

    Pass it to :func:`acoustic_gmm.speaker.train_extractor` in place of the statistics: every
    iteration, each task computes its utterances' statistics against the UBM and the extractor's
    accumulators, summed as a tree; the M-step runs on the client.  The PCA start's sample of
    utterances is computed on the client.

    Examples
    --------
    ::

        stats = DaskStats("feats.h5", ubm, client)
        extractor = train_extractor(ubm, stats, 400)
    """

    def __init__(self, path, ubm, client, ids=None, *, top_c: int | None = None, n_shards: int | None = None,
                 view=None):
        self.local = StatsStream(ubm, path, ids, top_c=top_c, view=view)
        self.path, self.client, self.ubm, self.top_c = str(self.local.path.resolve()), client, ubm, top_c
        self.ubm_id, self.ids = self.local.ubm_id, self.local.ids
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        n_shards = n_shards or 4 * n_workers
        self.shards = [list(s) for s in np.array_split(np.array(self.ids, dtype=object), n_shards) if len(s)]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index):
        return self.local.take(index)

    def __iter__(self):  # extraction and anything else that wants the statistics themselves: on the client
        return iter(self.local)

    def accumulate_tv(self, extractor):
        """The extractor's E-step over every shard, on the cluster; accumulators summed as a tree."""
        remote = self.client.scatter(extractor, broadcast=True, hash=False)  # see gmm._dask: a new key each pass
        parts = [self.client.submit(_shard_tv_stats, self.path, ids, self.top_c, remote, self.local.view, pure=False)
                 for ids in self.shards]
        while len(parts) > 1:
            paired = [self.client.submit(operator.add, a, b) for a, b in zip(parts[::2], parts[1::2])]
            parts = paired + ([parts[-1]] if len(parts) % 2 else [])
        return parts[0].result()


# --------------------------------------------------------------------------- workflows (what the CLI runs)

def _statistics(ubm: DiagGMM, archive, ids, top_c, max_memory, progress, view):
    """All statistics in memory when they fit ``max_memory`` bytes (default: the frames' budget), else a
    :class:`StatsStream`."""
    from ..gmm._sources import default_max_memory

    stream = StatsStream(ubm, archive, ids, top_c=top_c, view=view)
    size = len(stream) * ubm.n_components * (ubm.n_features + 1) * 8
    if size > (default_max_memory() if max_memory is None else max_memory):
        return stream
    return utterance_stats(ubm, archive, stream.ids, top_c=top_c, progress=progress, view=view)


def train_extractor_from_archive(ubm: DiagGMM, archive, dim: int, *, ids=None, n_iter: int = 10, top_c: int | None = None,
                       init: str = "pca", max_memory: int | None = None, client=None, progress: bool = False,
                       callback=None, out=None, view=None) -> IvectorExtractor:
    """Statistics of ``ids`` (default all) of ``archive``, then :func:`train_extractor` on them: kept in
    memory when they fit ``max_memory`` bytes, else computed again on every iteration (same result); with
    ``client`` (a Dask client or scheduler address) every iteration's E-step runs on the cluster.  ``out``, the
    file the extractor is for, has its free space checked before the work; ``view``, how the archive is read (the
    UBM's: :func:`~acoustic_gmm.speaker.ubm_config`), is recorded with the extractor and used by extraction."""
    if out is not None:  # at least the total-variability matrix and the UBM it carries
        C, D = ubm.n_components, ubm.n_features
        check_free_space(out, (C * D * (dim + 2) + C) * 8, what=f"an extractor of dimension {dim}")
    with opened(archive, view) as fa:
        features = {"config": fa.config.to_dict(), "sample_rate": fa.sample_rate}
        view = fa.config
    if client is not None:
        from ..storage._parallel import connect

        with connect(client) as c:
            stats = DaskStats(archive, ubm, c, ids, top_c=top_c, view=view)
            extractor = train_extractor(ubm, stats, dim, n_iter=n_iter, init=init, callback=callback)
    else:
        stats = _statistics(ubm, archive, ids, top_c, max_memory, progress, view)
        extractor = train_extractor(ubm, stats, dim, n_iter=n_iter, init=init, callback=callback)
    extractor.features, extractor.top_c = features, top_c
    return extractor


def extract_archive(extractor: IvectorExtractor, archive, *, ids=None, top_c: int | None = None,
                    progress: bool = False) -> Ivectors:
    """The i-vector of every utterance of ``archive`` (or of ``ids``), with its speaker and label; one
    batch of statistics in memory at a time."""
    from ..features._config import MfccConfig
    from ._trials import warn_speaker_cmvn

    # the frames as the extractor's training data was read (a raw archive gives that view; any other archive
    # must have been made so, or it is refused naming the difference)
    view = None if extractor.features is None else MfccConfig.from_dict(extractor.features["config"])
    with opened(archive, view) as fa:
        warn_speaker_cmvn(fa)
        ids = fa.ids if ids is None else fa.check_ids(ids)
        if extractor.features is not None and extractor.features.get("sample_rate") not in (None, fa.sample_rate):
            raise DataError(f"{fa.path} was extracted at {fa.sample_rate} Hz, the extractor's training data at "
                            f"{extractor.features['sample_rate']} Hz")
        top_c = extractor.top_c if top_c is None else top_c
        W = extractor.extract(StatsStream(extractor.ubm, fa, ids, top_c=top_c), progress=progress)
        return Ivectors(list(ids), W, [fa.speakers[u] for u in ids], [fa.labels[u] for u in ids],
                        extractor.fingerprint)


def fit_backend(ivectors: Ivectors, *, ids=None, lda_dim: int | None = None, scoring: str = "plda",
                plda_iter: int = 10):
    """A :class:`~acoustic_gmm.speaker.Backend` trained on ``ivectors`` (or those of ``ids``), speakers
    from their utt2spk."""
    from ._backend import Backend

    if ids is None:
        X, speakers = ivectors.vectors, list(ivectors.speakers)
    else:
        X = ivectors.rows(ids)  # DataError naming those not there
        spk = dict(zip(ivectors.ids, ivectors.speakers))
        speakers = [spk[u] for u in ids]
    try:
        return Backend(lda_dim=lda_dim, scoring=scoring, plda_iter=plda_iter).fit(X, speakers)
    except DataError as exc:  # too few speakers, one utterance each ...: say which file
        raise DataError(f"{ivectors.path + ': ' if ivectors.path else ''}{exc}") from None


def save_backend(path, backend, extractor: str, *, metadata: dict | None = None) -> None:
    """Write a back end with the fingerprint of the extractor whose i-vectors it was trained on."""
    save_bundle(path, "backend", arrays=backend.to_arrays(),
                metadata={"params": backend.params(), "extractor": extractor, **(metadata or {})})


def load_backend(path):
    """Read a back end: ``(backend, extractor fingerprint)``."""
    from ._backend import Backend

    arrays, _, meta = load_bundle(path, "backend")
    if not isinstance(meta.get("params"), dict) or not isinstance(meta.get("extractor"), str):
        raise ArchiveError(f"{path}: damaged i-vector back end (no params or extractor in its metadata)")
    try:
        return Backend.from_arrays(arrays, meta["params"]), meta["extractor"]
    except (KeyError, ValueError, TypeError) as exc:
        raise ArchiveError(f"{path}: damaged i-vector back end ({type(exc).__name__}: {exc})") from None


def score_ivector_trials(backend, extractor: str, trials, enrolment: Ivectors, test: Ivectors, *,
                 groups: dict | None = None, norm: str = "none", cohort_utts=None,
                 allow_cohort_overlap: bool = False) -> np.ndarray:
    """Scores of ``trials`` (:class:`~acoustic_gmm.speaker.Trials`): each model enrolled with its
    utterances in ``enrolment`` (grouped by ``groups`` ``{model: [utt, ...]}``, default by speaker),
    against the test utterance's i-vector.  Every i-vector must come from the extractor ``extractor``.

    ``norm`` z, t or s normalises as :func:`acoustic_gmm.speaker.normalise_trials` does, with the
    impostor utterances ``cohort_utts`` of ``test``: each model scored against them (z), each test
    utterance against each of them as a one-utterance model (t), or both averaged (s)."""
    from ._trials import NORMS, check_cohort, normalise_trials

    if norm not in NORMS:
        raise ParameterError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    if norm != "none":  # the cohort's utterances stand for impostor tests (z) and impostor models (t) alike
        check_cohort(norm, "cohort_utts", cohort_utts or [], trials.utterances, allow_overlap=allow_cohort_overlap)
    for name, iv in (("enrolment", enrolment), ("test", test)):
        if iv.extractor != extractor:
            raise DataError(f"{iv.path + ': ' if iv.path else ''}the {name} i-vectors come from another extractor ({iv.extractor}) than the one the "
                            f"back end was trained for ({extractor})")
    if groups is None:
        groups = {}
        for u, s in zip(enrolment.ids, enrolment.speakers):
            groups.setdefault(s, []).append(u)
    missing = sorted(set(trials.models) - set(groups))
    if missing:
        raise DataError(f"{len(missing)} trial model(s) have no enrolment utterances: {', '.join(missing[:5])}")
    wanted = sorted(set(trials.models))
    models = {m: enrolment.rows(groups[m]) for m in wanted}
    utts = sorted(set(trials.utterances))
    names, S = backend.score(models, test.rows(utts))
    row = {m: i for i, m in enumerate(names)}
    col = {u: j for j, u in enumerate(utts)}
    raw = np.array([S[row[m], col[u]] for m, u in zip(trials.models, trials.utterances)])
    if norm == "none":
        return raw
    cohort = test.rows(cohort_utts)
    z_stats = t_stats = None
    if norm in ("z", "s"):
        names, Z = backend.score(models, cohort)                                  # (models, cohort)
        z_stats = {m: (Z[i].mean(), Z[i].std()) for i, m in enumerate(names)}
    if norm in ("t", "s"):
        _, Tc = backend.score({f"cohort{i}": v[None] for i, v in enumerate(cohort)}, test.rows(utts))
        t_stats = {u: (Tc[:, j].mean(), Tc[:, j].std()) for u, j in col.items()}  # (cohort, tests)
    return normalise_trials(trials, raw, norm, z_stats, t_stats)
