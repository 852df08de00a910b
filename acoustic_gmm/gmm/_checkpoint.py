"""Training checkpoints: the state of :func:`acoustic_gmm.gmm.train` in an HDF5 file, so a killed run continues.

:func:`~acoustic_gmm.gmm.train` hands its :class:`~acoustic_gmm.gmm.TrainState` to a checkpoint after each
stage (and at most every ``_train.CHECKPOINT_SECONDS`` within one) and asks it for one when it starts (training
itself knows nothing of files); :class:`CheckpointFile` keeps it in one HDF5 file, rewritten atomically
(``storage._hdf5.atomic_h5``), and refuses to hand back a state saved by a run of other frames or other
hyper-parameters.  ``GMM.fit(X, checkpoint=path)`` and ``acoustic-gmm ubm`` (:func:`checkpoint_path`: ``OUT.ckpt``)
use it.

Layout (``content="em-checkpoint"``, ``format_version`` 1)::

    /                    attrs: content, format_version, params (JSON: the hyper-parameters that shape the
                         run), data (JSON: n_frames, n_features), stage (index into the growth schedule),
                         n_components (that stage's size), iteration (EM iterations done in the stage),
                         n_iter_total (in all stages), eta (the over-relaxation's factor for the next
                         iteration), converged (the stage ended at this iteration)
    /data_mean, /data_var    (n_features,) float64: the frames' global mean and variance (their fingerprint,
                             with n_frames and n_features)
    /floor                   (n_features,) float64: the variance floor in use
    /history/loglik, /history/n_components     one entry per EM iteration so far
    /model/                  attrs covariance_type, dtype; weights, means, covariances (float64)
    /stats/                  attrs loglik, n_frames; shift, occ, sum_x, sum_xx: the model's E-step
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from ..errors import AcousticGMMError, ArchiveError, OutputError, ParameterError
from ._model import make_model
from ._stats import Stats
from ._train import History, TrainState

__all__ = ["checkpoint_path", "CheckpointFile"]


CONTENT = "em-checkpoint"  # the ``content`` attribute, as every acoustic_gmm HDF5 file has (``storage._hdf5``)


FORMAT_VERSION = 1


# Largest difference of the frames' global mean (in standard deviations) and variance (relative) for which a
# checkpoint is taken to be of the same frames: far above the rounding of the same frames summed in other
# blocks (streamed rather than in memory), far below what a changed corpus moves.
FINGERPRINT_TOL = 1e-9


class CheckpointFile:
    """A :func:`~acoustic_gmm.gmm.train` checkpoint kept in the HDF5 file ``path`` (layout: see the module).

    Parameters
    ----------
    path : str or path-like
        The checkpoint file; its directory must exist.  It need not exist: ``load`` then returns None.

    Examples
    --------
    ::

        from acoustic_gmm import em
        model, history, converged, n_iter = train(X, 64, checkpoint=CheckpointFile("run.ckpt"))
    """

    def __init__(self, path):
        self.path = Path(path)
        where = self.path.parent if str(self.path.parent) else Path(".")
        # Said now rather than when the first iteration is saved, possibly hours in.
        if self.path.is_dir():
            raise OutputError(f"{self.path}: checkpoint is a directory; give a file name")
        if not where.is_dir():
            raise OutputError(f"{self.path}: the checkpoint's directory {where} does not exist")

    def save(self, params: dict, fingerprint: dict, state: TrainState) -> None:
        """Write ``state`` (replacing the file atomically: a kill leaves the previous state or this one)."""
        from ..storage._hdf5 import atomic_h5

        model, stats, history = state.model, state.stats, state.history
        with atomic_h5(self.path) as f:
            f.attrs.update(content=CONTENT, format_version=FORMAT_VERSION, params=json.dumps(params),
                           data=json.dumps({"n_frames": int(fingerprint["n_frames"]),
                                            "n_features": int(fingerprint["n_features"])}),
                           stage=int(state.stage), n_components=int(model.n_components),
                           iteration=int(state.iteration), n_iter_total=len(history.loglik), eta=float(state.eta),
                           converged=bool(state.converged))
            f["data_mean"] = np.asarray(fingerprint["mean"], dtype=np.float64)
            f["data_var"] = np.asarray(fingerprint["var"], dtype=np.float64)
            f["floor"] = np.asarray(state.floor, dtype=np.float64)
            f["history/loglik"] = np.array(history.loglik, dtype=np.float64)
            f["history/n_components"] = np.array(history.n_components, dtype=np.int64)
            g = f.create_group("model")
            g.attrs.update(covariance_type=model.covariance_type, dtype=np.dtype(model.dtype).name)
            g["weights"], g["means"], g["covariances"] = model.weights, model.means, model.covariances
            g = f.create_group("stats")
            g.attrs.update(loglik=float(stats.loglik), n_frames=int(stats.n_frames))
            g["shift"], g["occ"], g["sum_x"], g["sum_xx"] = stats.shift, stats.occ, stats.sum_x, stats.sum_xx

    def load(self, params: dict, fingerprint: dict) -> TrainState | None:
        """The saved state, or None if there is no checkpoint.

        Raises :class:`~acoustic_gmm.errors.ParameterError` naming the file and every difference if it was
        saved by a run of other hyper-parameters or frames (continuing it would give neither run's model),
        and :class:`~acoustic_gmm.errors.ArchiveError` if it is not a checkpoint or is damaged.
        """
        from ..storage._hdf5 import open_h5

        if not self.path.exists():
            return None
        with open_h5(self.path) as f:  # a folder, not HDF5, truncated: an ArchiveError naming the file
            try:
                if f.attrs.get("content") != CONTENT:
                    raise ArchiveError(f"{self.path}: an HDF5 file but not a training checkpoint of acoustic_gmm; "
                                       f"move it away or give another checkpoint path")
                version = int(f.attrs["format_version"])
                if version > FORMAT_VERSION:
                    raise ArchiveError(f"{self.path}: checkpoint format_version {version} is newer than this "
                                       f"acoustic_gmm understands ({FORMAT_VERSION})")
                differences = _differences(json.loads(f.attrs["params"]), params, json.loads(f.attrs["data"]),
                                           f["data_mean"][()], f["data_var"][()], fingerprint)
                if differences:
                    raise ParameterError(f"{self.path}: a training checkpoint of another run ("
                                         + "; ".join(differences) + "); delete it to start over, or give "
                                         "that run's frames and parameters to continue it")
                m, s = f["model"], f["stats"]
                covariance_type = str(m.attrs["covariance_type"])
                model = make_model(covariance_type, m["weights"][()], m["means"][()], m["covariances"][()],
                                   params["dtype"])
                stats = Stats(s["shift"][()], s["occ"][()], s["sum_x"][()], s["sum_xx"][()],
                              float(s.attrs["loglik"]), int(s.attrs["n_frames"]), covariance_type)
                # Python floats and ints, as a run that was not interrupted appends them
                history = History([float(v) for v in f["history/loglik"][()]],
                                  [int(k) for k in f["history/n_components"][()]])
                state = TrainState(int(f.attrs["stage"]), int(f.attrs["iteration"]), float(f.attrs["eta"]),
                                   bool(f.attrs["converged"]), model, stats, history, f["floor"][()])
            except AcousticGMMError:
                raise
            except (KeyError, ValueError, TypeError, OSError, np.linalg.LinAlgError) as exc:
                raise ArchiveError(f"{self.path}: a damaged training checkpoint ({exc}); delete it to start "
                                   f"over") from None
        sizes = params.get("schedule") or [params["n_components"]]
        if not (0 <= state.stage < len(sizes) and model.n_components == sizes[state.stage]
                and stats.occ.shape == (model.n_components,) and len(history.loglik) >= state.iteration):
            raise ArchiveError(f"{self.path}: a damaged training checkpoint (its stage, model and history do not "
                               f"agree); delete it to start over")
        return state

    def remove(self) -> None:
        """Delete the checkpoint: training has ended."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _differences(saved: dict, params: dict, data: dict, mean: np.ndarray, var: np.ndarray,
                 fingerprint: dict) -> list[str]:
    """What differs between the run that saved a checkpoint and this one, one phrase each."""
    out = [f"{key} {saved.get(key)!r} there, {value!r} here" for key, value in params.items()
           if saved.get(key) != value]
    out += [f"{key} {saved[key]!r} there, not recorded here" for key in saved if key not in params]
    sizes = {key: data.get(key) for key in ("n_frames", "n_features")}
    if any(sizes[key] != fingerprint[key] for key in sizes):
        return out + [f"{key} {sizes[key]!r} in its frames, {fingerprint[key]!r} here"
                      for key in sizes if sizes[key] != fingerprint[key]]
    now_mean, now_var = np.asarray(fingerprint["mean"]), np.asarray(fingerprint["var"])
    if mean.shape != now_mean.shape or var.shape != now_var.shape:
        return out + ["its frames' statistics have another shape"]
    off = max(float(np.max(np.abs(mean - now_mean) / np.sqrt(now_var))),
              float(np.max(np.abs(var - now_var) / now_var)))
    if not off <= FINGERPRINT_TOL:
        out.append(f"the frames differ: their global mean or variance moved by {off:.3g} (relative)")
    return out


def checkpoint_path(out) -> Path:
    """Where a model written to ``out`` keeps its training checkpoint: ``OUT.ckpt`` beside it (held under ``out``'s
    lock with it, so no other run uses it meanwhile).

    Examples
    --------
    >>> checkpoint_path("exp/ubm.h5").as_posix()
    'exp/ubm.h5.ckpt'
    """
    return Path(f"{out}.ckpt")
