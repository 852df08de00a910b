"""Class models on spliced frames with LDA + MLLT (Kaldi's ``train_lda_mllt.sh``, for whole-unit classes).

The static features of every frame are spliced over +-``CONTEXT`` frames; an LDA (:mod:`acoustic_gmm.transforms`)
keeps the ``dim`` directions that best separate the LDA classes, which are the parts of the class models (each
class's equal slices: its HMM states' starting alignment, or its fixed slices; whole classes for one GMM), at
most one fewer than their number.  Models are trained on the projected frames; then ``MLLT_PASSES`` times an
MLLT is estimated from the frames aligned to the models' parts (their best paths for HMM states), the models are
moved through it and re-estimated on the frames through it.  The transform goes with the models (:class:`ModelSet`'s
``transform``); ``evaluate``, ``classify``, adaptation and MMI map frames through it.

On small corpora it can lose: with a few training speakers the discriminant learns their voices (README gives
the figures); :func:`~acoustic_gmm.classes.select_model_set` can try it per corpus.

Examples
--------
::

    ms = train_lda_mllt("train.h5", dim=40)      # acoustic-gmm train train.h5 --lda-mllt 40
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, ParameterError
from ..storage._archive import opened
from ..transforms._feature_transform import FeatureTransform
from ..transforms._lda import LdaStats, estimate_lda
from ..transforms._mllt import MlltStats, estimate_mllt
from ..transforms._splice import splice
from ._model_set import slice_of_frames
from ._training import class_ids, class_structure, train_model_set

__all__ = ["train_lda_mllt", "CONTEXT", "MLLT_PASSES"]


CONTEXT = 4       # frames each side, as Kaldi's splice-feats --left-context=4 --right-context=4


MLLT_PASSES = 2   # MLLT estimates, each followed by training the models again


BATCH = 2048      # utterances read at a time while accumulating


def train_lda_mllt(archive, *, dim: int = 40, view=None, ids=None, label_key: str = "label", states=None,
                   slices=None, **train_options):
    """Train a model set on LDA + MLLT-transformed spliced static features (see the module); returns the ModelSet.

    ``dim`` the LDA's output dimension (at most the number of LDA classes minus one, and the spliced width);
    ``view`` the archive's view as for :func:`train_model_set` (its deltas are replaced by the statics alone);
    the other options are :func:`train_model_set`'s.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ParameterError(f"lda_mllt must be an integer >= 1 (the LDA's dimension), got {dim!r}")
    view = {**(view or {}), "deltas": 0}
    with opened(archive, view) as fa:
        groups = class_ids(fa, label_key, None if ids is None else fa.check_ids(ids))
        if not groups:
            raise DataError(f"{fa.path}: no utterances to train on")
        median = float(np.median([fa.n_frames[u] for g in groups.values() for u in g]))
        _, n_parts = class_structure(states, slices, train_options.get("init", "split"), median_frames=median)
        classes = sorted(groups)
        lda = LdaStats(fa.n_features * (2 * CONTEXT + 1), len(classes) * n_parts)
        for c_index, c in enumerate(classes):
            for a in range(0, len(groups[c]), BATCH):
                for u in fa.utterances(groups[c][a:a + BATCH]):
                    lda.add(splice(u, context=CONTEXT), c_index * n_parts + slice_of_frames(len(u), n_parts))
        path = fa.path
    dim = int(min(dim, np.count_nonzero(lda.counts) - 1, lda.sums.shape[1]))
    M, offset = estimate_lda(lda, dim)
    transform = FeatureTransform(CONTEXT, M, offset, f"splice +-{CONTEXT}, LDA to {dim}")
    options = dict(view=view, ids=ids, label_key=label_key, states=states, slices=slices, **train_options)
    interim = {**options, "reject_quantile": None}  # the reject margin is calibrated on the final models only
    ms = train_model_set(archive, transform=transform, **(interim if MLLT_PASSES else options))
    for n in range(1, MLLT_PASSES + 1):
        stats = MlltStats(dim)
        inner = ms.untransformed()  # aligns frames already mapped
        with opened(path, view) as fa:
            for c in classes:
                for a in range(0, len(groups[c]), BATCH):
                    for u in ms.inputs(fa.utterances(groups[c][a:a + BATCH])):
                        parts = inner.align(u, c)
                        for s in np.unique(parts):
                            stats.add((c, int(s)), ms.models[c][s].copy("float64"), u[parts == s])
        A, _ = estimate_mllt(stats)
        transform = transform.then(A, f"splice +-{CONTEXT}, LDA to {dim}, MLLT x {n}")
        ms = train_model_set(archive, transform=transform, start=_rotated(ms, A),
                             **(options if n == MLLT_PASSES else interim))
    ms.metadata["transform"] = transform.description
    return ms


def _rotated(ms, A: np.ndarray):
    """The model set moved into the space after the MLLT ``A``: means ``A mu``, variances the diagonal of
    ``A diag(sigma2) A^T``; training then re-estimates them there (Kaldi's gmm-transform-means, then EM)."""
    from ..gmm._model import DiagGMM

    def moved(g):
        return DiagGMM(g.weights, g.means.astype(np.float64) @ A.T, g.variances.astype(np.float64) @ (A * A).T,
                       dtype=g.dtype)
    return ms.with_models({c: [moved(g) for g in parts] for c, parts in ms.models.items()})

