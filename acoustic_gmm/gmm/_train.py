"""Training a Gaussian mixture by EM: the whole schedule, from a start to convergence, resumable.

:func:`train` grows 1 -> 2 -> 4 ... -> K by splitting (or starts from k-means or random frames) with a few EM
iterations after each growth step, then runs EM to convergence (:func:`run_em`, with over-relaxed steps where they
help); :class:`TrainState` is what a checkpoint saves so that a killed fit resumes bit for bit.  The statistics
and updates it uses are ``_stats``' and ``_update``'s.

Frames come as an array or any frame source (``_sources``: a feature archive streamed from disk, a Dask
cluster); nothing here reads files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError
from ._gselect import GSELECT_REFRESH, gselect_for
from ._init import kmeans_init, random_init
from ._model import DiagGMM, FullGMM
from ._sources import RemoteEStep, as_frames
from ._stats import Stats, accumulate, global_mean_var, global_stats
from ._update import growth_schedule, m_step, ml_update, split_heaviest, variance_floor

__all__ = ["History", "run_em", "train"]


# train(checkpoint=...): within a stage, the state is saved at most this often (and always at the stage's
# end).  Saving every iteration cost ~6 ms each, a quarter of a small fit (FSDD, K = 64); a kill now
# loses at most this much work.
CHECKPOINT_SECONDS = 30.0


# Growth factor of over-relaxed EM's step (run_em).  Measured on real corpora to convergence (tol 1e-3):
# FSDD K=64 51 -> 30 iterations at full size, 16 kHz corpus K=128 69 -> 28 (1.5); 2.0 did no better.
OVERRELAX = 1.5


# --------------------------------------------------------------------------- EM loop

@dataclass
class History:
    """Average per-frame log-likelihood after every EM iteration, and the size at the time."""

    loglik: list[float] = field(default_factory=list)
    n_components: list[int] = field(default_factory=list)


def run_em(model, X, *, floor, n_iter: int, tol: float, history: History, chunk=None,
           stats: Stats | None = None, progress=None, min_iter: int = 0, overrelax: float = 1.0,
           start: int = 0, eta: float = 1.0, on_iteration=None, gselect: int | None = None):
    """Up to ``n_iter`` EM iterations; after ``min_iter``, stop once the per-frame gain is below ``tol``.

    ``stats`` may hold the E-step of ``model`` already done by the caller.  Returns
    ``(model, stats_of_model, converged)``; every iteration's log-likelihood (of the
    parameters it produced) is appended to ``history``.

    A run interrupted after iteration ``start`` continues from the model and statistics it had then,
    with ``start`` and the over-relaxation's ``eta`` at that point; it then makes the same iterations the
    uninterrupted run would.  ``on_iteration(model, stats, iteration, eta, converged)``, if given, is
    called after every iteration (before ``progress``) with what such a continuation needs
    (``iteration`` counts from the first of this run, ``converged`` says the run stops there).

    ``overrelax`` > 1 runs adaptive over-relaxed EM (Salakhutdinov & Roweis, ICML 2003) on a
    diagonal model: each update goes ``eta`` times as far as EM's, in log weights, means and log
    variances; ``eta`` grows by the factor ``overrelax`` after every such update that raises the
    likelihood, and one that does not is thrown away for the plain EM update (one E-step more),
    with ``eta`` back to 1.  The likelihood still rises at every iteration; EM's slow tail is
    crossed in fewer of them.  Full covariances always take plain EM steps.

    ``gselect`` C: Gaussian selection (:mod:`acoustic_gmm.gmm._gselect`).  One E-step in ``GSELECT_REFRESH`` is
    exact and finds each frame's C best components as it goes; the others visit only those.  After components
    are replaced (empty ones), the next E-step is exact again.
    """
    selection, since = None, 0

    def e_step(m):
        nonlocal selection, since
        if not gselect:
            return accumulate(m, X, chunk=chunk)
        if selection is None or since >= GSELECT_REFRESH:
            fresh = np.empty((as_frames(X).n_frames_total, gselect), dtype=np.int32)
            s = accumulate(m, X, chunk=chunk, select_into=fresh)
            selection, since = fresh, 1
            return s
        since += 1
        return accumulate(m, X, chunk=chunk, selection=selection)

    if stats is None:
        stats = e_step(model)
    K = model.n_components
    converged = False
    accelerate = overrelax > 1 and model.covariance_type == "diag"
    for it in range(start, n_iter):
        new, replaced = ml_update(stats, model, floor=floor)
        if replaced:
            since = GSELECT_REFRESH  # new components are in no frame's selection yet
            eta = 1.0  # components were replaced: the old and new models do not define a direction
        new_stats = None
        if accelerate and eta > 1:
            bold = _overrelaxed(model, new, eta, floor)
            bold_stats = e_step(bold)
            if bold_stats.avg_loglik > stats.avg_loglik:
                new, new_stats = bold, bold_stats
                eta *= overrelax
            else:
                eta = 1.0
        elif accelerate:
            eta = overrelax
        if new_stats is None:
            new_stats = e_step(new)
        gain = new_stats.avg_loglik - stats.avg_loglik
        model, stats = new, new_stats
        history.loglik.append(stats.avg_loglik)
        history.n_components.append(K)
        converged = it + 1 >= min_iter and abs(gain) < tol
        # Saved before progress is told: an iteration whose report fails (or is interrupted) is not lost.
        if on_iteration is not None:
            on_iteration(model, stats, it + 1, eta, converged)
        if progress is not None:
            progress(len(history.loglik), K, stats.avg_loglik)
        if converged:
            break
    return model, stats, converged


def _overrelaxed(old: DiagGMM, new: DiagGMM, eta: float, floor: np.ndarray) -> DiagGMM:
    """``old`` moved ``eta`` times the step from ``old`` to ``new``: log weights (renormalised), means,
    log variances (floored).  Log coordinates keep weights and variances positive at any ``eta``."""
    log_w = (1 - eta) * np.log(old.weights) + eta * np.log(new.weights)
    w = np.exp(log_w - log_w.max())
    means = old.means + eta * (new.means - old.means)
    log_var = (1 - eta) * np.log(old.variances) + eta * np.log(new.variances)
    return DiagGMM(w / w.sum(), means, np.maximum(np.exp(log_var), floor), dtype=old.dtype)


def train(X, n_components: int, *, covariance_type="diag", init="split", max_iter=100, tol=1e-3,
          var_floor=1e-3, split_iter=4, schedule=None, dtype="float32", random_state=None,
          chunk=None, progress=None, overrelax=OVERRELAX, checkpoint=None, on_resume=None, floor=None,
          gselect="auto"):
    """Fit a mixture to frames ``X``; returns ``(model, history, converged, n_iter)``.

    ``init="split"`` grows from one Gaussian through ``schedule`` (doubling by default)
    with ``split_iter`` EM iterations after each growth step; then EM runs at full size
    for at most ``max_iter`` iterations until the per-frame gain drops below ``tol``.
    ``n_iter`` counts the iterations at full size.  EM at full size is over-relaxed by
    ``overrelax`` (see :func:`run_em`; 1 gives plain EM); the short intermediate stages are plain EM.

    Parameters
    ----------
    checkpoint : object, optional
        Where the training's state is kept, so that a run that was killed can be continued (a file:
        :class:`acoustic_gmm.gmm.CheckpointFile`; this module knows nothing of files).  Three methods:
        ``load(params, fingerprint)`` returns the saved :class:`TrainState`, or None to start afresh, and
        raises if it was saved by a run of other hyper-parameters (``params``, a JSON-able dict) or other
        frames (``fingerprint``: ``n_frames``, ``n_features``, and the frames' global ``mean`` and ``var``);
        ``save(params, fingerprint, state)`` at the end of every stage and, within one, at most every
        ``CHECKPOINT_SECONDS``; ``remove()`` once training ends.  A
        continued run ends with the model, history and iteration count of an uninterrupted one.
    on_resume : callable, optional
        Called once as ``on_resume(n_components, iteration)`` when training continues from ``checkpoint``:
        the size of the stage it was in, and the EM iterations done before (counted as ``progress`` counts
        them).
    floor : ndarray (n_features,), optional
        The variances' floor itself, instead of ``var_floor`` times these frames' variance: an HMM state's
        GMM is floored at its class's variance, not its own frames'.
    gselect : "auto", None or int
        Gaussian selection in the E-steps of stages of ``GSELECT_MIN_COMPONENTS`` components and more
        (``"auto"``), never (None), or with that many components a frame at every size above it (float32
        diagonal models; not on a cluster, whose tasks run the exact E-step): see :mod:`acoustic_gmm.gmm._gselect`.
        The selection is not checkpointed: a run resumed within a stage starts with an exact E-step, so it ends
        at a model as good as the uninterrupted one's, not the same bits (exact EM, and every stage boundary,
        still resume bit for bit).
    """
    X = as_frames(X)
    glob = global_stats(X, covariance_type)
    gmean, gvar = global_mean_var(glob)
    floor = variance_floor(gvar, var_floor) if floor is None else np.asarray(floor, dtype=np.float64)
    if init == "split":
        stages = growth_schedule(n_components, schedule=schedule)
    elif init in ("kmeans", "random"):
        stages = [n_components]  # one stage, at full size
    else:
        raise ParameterError(f"init must be 'split', 'kmeans' or 'random', got {init!r}")
    history = History()
    state = None
    if checkpoint is not None:
        params = {"n_components": int(n_components), "covariance_type": covariance_type, "init": init,
                  "max_iter": int(max_iter), "tol": float(tol), "var_floor": float(var_floor),
                  "overrelax": float(overrelax), "dtype": np.dtype(dtype).name,
                  "chunk": None if chunk is None else int(chunk)}
        if floor is not None:  # given, not derived from var_floor
            params["floor"] = [float(v) for v in floor]
        if init == "split":
            params.update(schedule=stages, split_iter=int(split_iter))
        if gselect_for(gselect, n_components):  # a selected E-step is another computation
            params["gselect"] = str(gselect)
        elif random_state is None or isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
            params["random_state"] = None if random_state is None else int(random_state)
        # The frames' fingerprint: a checkpoint of other frames must not be continued on these.
        fingerprint = {"n_frames": int(glob.n_frames), "n_features": len(gvar), "mean": gmean, "var": gvar}
        state = checkpoint.load(params, fingerprint)
    if state is not None:
        # The saved floor, not the one just computed: the global sums may differ in their last bits (the
        # frames read in other blocks) and the resumed run must be the same computation.
        history, floor, model, stats = state.history, state.floor, state.model, state.stats
        first, start, eta, converged = state.stage, state.iteration, state.eta, state.converged
        if on_resume is not None:
            on_resume(stages[first], len(history.loglik))
    else:
        first, start, eta, converged, stats = 0, 0, 1.0, False, None
        if init == "split":
            model = m_step(glob, floor=floor, dtype=dtype)
        elif init == "kmeans":
            model = kmeans_init(X, n_components, floor=floor, covariance_type=covariance_type, dtype=dtype,
                                rng=random_state)
        else:
            model = random_init(X, n_components, glob_model=m_step(glob, floor=floor, dtype=dtype), dtype=dtype,
                                rng=random_state)
    n_iter, saved_at = 0, time.monotonic()
    for index in range(first, len(stages)):
        size = stages[index]
        if index > first:
            start, eta, converged = 0, 1.0, False
        if size != model.n_components:
            model = split_heaviest(model, size)
            stats = None
        # Right after a split the halves sit near a saddle point, where the first gains are tiny
        # and say nothing about convergence: like HTK's re-estimation after each mix-up, every
        # intermediate stage runs exactly split_iter iterations, and the final one at least that.
        if index == len(stages) - 1:
            length, stage_tol, relax = max_iter, tol, overrelax
            min_iter = min(split_iter, max_iter) if init == "split" else 0
        elif size > 1:
            length, stage_tol, relax, min_iter = split_iter, -1.0, 1.0, 0
        else:  # one Gaussian needs no EM: the global mean and variance are its ML fit
            continue
        if converged or start >= length:  # resumed from the stage's last iteration
            n_iter = start
            continue
        before = len(history.loglik) - start

        def save(model, stats, iteration, eta, converged, stage=index, length=length):
            nonlocal saved_at
            if not (converged or iteration == length) and time.monotonic() - saved_at < CHECKPOINT_SECONDS:
                return
            checkpoint.save(params, fingerprint, TrainState(stage, iteration, eta, converged, model, stats,
                                                            history, floor))
            saved_at = time.monotonic()

        selected = isinstance(model, DiagGMM) and model.dtype == np.float32 and not isinstance(X, RemoteEStep)
        model, stats, converged = run_em(model, X, floor=floor, n_iter=length, tol=stage_tol, history=history,
                                         chunk=chunk, stats=stats, progress=progress, min_iter=min_iter,
                                         overrelax=relax, start=start, eta=eta,
                                         on_iteration=None if checkpoint is None else save,
                                         gselect=gselect_for(gselect, size) if selected else None)
        n_iter = len(history.loglik) - before
    if checkpoint is not None:
        checkpoint.remove()
    return model, history, converged, n_iter


@dataclass
class TrainState:
    """Where a :func:`train` run stands after an EM iteration: enough to continue it as the same computation.

    ``stage`` indexes the growth schedule (one stage at full size for ``init="kmeans"``/``"random"``),
    ``iteration`` counts the EM iterations done in it, ``eta`` is the over-relaxation's factor for the next
    one, ``converged`` says the stage ended there; ``model`` and its E-step ``stats``, the ``history`` so
    far and the variance ``floor`` in use complete it.
    """

    stage: int
    iteration: int
    eta: float
    converged: bool
    model: DiagGMM | FullGMM
    stats: Stats
    history: History
    floor: np.ndarray
