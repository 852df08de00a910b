"""Normalisation when frames are read: a view of raw frames (Kaldi's ``apply-cmvn`` and ``select-voiced-frames``
applied on the fly rather than baked into the stored features).

A raw feature archive holds each utterance's cepstra and deltas before VAD and CMVN, the voiced-frame mask its
configuration's VAD rule gives, and per-utterance sums for per-speaker statistics.  A *view* is an
:class:`MfccConfig` that differs from the stored one only in what can be done to those frames afterwards:

- ``cmvn`` and ``cmvn_window``: any normalisation, per utterance, per speaker or sliding;
- ``vad``: drop the unvoiced frames or keep them (the mask was made with the stored ``vad_db`` and ``vad_rule``);
- ``n_mfcc`` and ``deltas``: the first cepstra and the lower delta orders of those stored (a cepstrum and its
  deltas do not depend on how many others were computed).

Everything else (the analysis: window, filters, rate ...) is fixed when the frames are computed.
:func:`view_of` checks a view against the stored configuration and gives the columns to keep; :func:`view_frames`
turns one utterance's raw frames into the view's, exactly as extraction with the view's configuration makes them;
:func:`frame_sums` and :func:`speaker_scale` give the statistics of views known before the frames are read.

Examples
--------
>>> stored = MfccConfig(n_mfcc=20, cmvn="speaker")
>>> view = view_config(stored, cmvn="meanvar", n_mfcc=13, vad=True)
>>> view_of(stored, view)[:3], len(view_of(stored, view))
(array([0, 1, 2]), 39)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ParameterError
from ._config import VIEW_FIELDS, MfccConfig
from ._normalise import normalise

__all__ = ["SLIDING", "view_config", "view_of", "view_frames", "frame_sums", "speaker_scale"]


SLIDING = ("sliding", "sliding-var", "warp")  # normalisations over a window of the recording's frames


def view_config(stored: MfccConfig, view=None, **changes) -> MfccConfig:
    """The configuration of a view of frames stored with ``stored``: ``view`` (a configuration, a dict of
    :data:`VIEW_FIELDS`, or None for the stored one) with ``changes`` (None values ignored) applied, checked
    by :func:`view_of`."""
    if isinstance(view, MfccConfig):
        base = view
    else:
        view = dict(view or {})
        unknown = sorted(set(view) - set(VIEW_FIELDS))
        if unknown:
            raise ParameterError(f"a view sets {', '.join(VIEW_FIELDS)}; not {', '.join(unknown)}")
        base = dataclasses.replace(stored, **view)
    changes = {k: v for k, v in changes.items() if v is not None}
    unknown = sorted(set(changes) - set(VIEW_FIELDS))
    if unknown:
        raise ParameterError(f"a view sets {', '.join(VIEW_FIELDS)}; not {', '.join(unknown)}")
    out = dataclasses.replace(base, **changes)
    view_of(stored, out)
    return out


def view_of(stored: MfccConfig, view: MfccConfig) -> np.ndarray:
    """The stored columns the view keeps, in its order; a :class:`ParameterError` saying what the stored frames
    cannot give (another analysis, more cepstra or deltas than stored, another VAD threshold)."""
    if stored.htk or stored.computed_by:
        raise ParameterError("frames from HTK's front end or imported from another toolkit are stored normalised: "
                             "they have no view but their own")
    fixed = [f.name for f in dataclasses.fields(MfccConfig)
             if f.name not in VIEW_FIELDS + ("vad_db", "vad_rule") and getattr(stored, f.name) != getattr(view, f.name)]
    if view.vad and (view.vad_db, view.vad_rule) != (stored.vad_db, stored.vad_rule):
        fixed += [f for f in ("vad_db", "vad_rule") if getattr(stored, f) != getattr(view, f)]
    if fixed:
        raise ParameterError("the frames were computed with another " + ", ".join(
            f"{f} ({getattr(stored, f)!r}, not {getattr(view, f)!r})" for f in fixed) + ": extract them again")
    if view.n_mfcc > stored.n_mfcc or view.deltas > stored.deltas:
        raise ParameterError(f"the frames hold {stored.n_mfcc} cepstra and {stored.deltas} delta order(s); "
                             f"n_mfcc={view.n_mfcc} deltas={view.deltas} asks for more: extract them again")
    return np.concatenate([block * stored.n_mfcc + np.arange(view.n_mfcc) for block in range(1 + view.deltas)])


def frame_sums(frames: np.ndarray) -> np.ndarray:
    """``[count, sum per column, sum of squares per column]`` of frames (float64, 1 + 2D): what per-speaker
    statistics add up, utterance by utterance, in the order :func:`~acoustic_gmm.features.speaker_cmvn` does."""
    Y = np.asarray(frames, dtype=np.float64)
    return np.concatenate([[len(Y)], Y.sum(0), (Y * Y).sum(0)])


def speaker_scale(sums: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, 1 / std)`` of the columns kept, from a speaker's added :func:`frame_sums`: as
    :func:`~acoustic_gmm.features.speaker_cmvn` computes them."""
    D = (len(sums) - 1) // 2
    n = max(sums[0], 1)
    mean = sums[1:1 + D][columns] / n
    sd = np.sqrt(np.maximum(sums[1 + D:][columns] / n - mean * mean, 0))
    return mean, 1.0 / np.where(sd > 0, sd, 1)


def view_frames(raw: np.ndarray, voiced: np.ndarray, view: MfccConfig, columns: np.ndarray) -> np.ndarray:
    """One utterance's frames in a view whose normalisation needs the utterance's own frames: the columns kept,
    the voiced frames (with ``vad``), then :func:`~acoustic_gmm.features.normalise`.

    ``raw`` (T, D stored) and ``voiced`` (T,) as stored; the result (T', D view) float32 is what extraction with
    ``view`` writes, bit for bit: the same steps in the same order.  Views whose statistics are known before the
    frames are read (per speaker, a segment's recording: :func:`speaker_scale`) are made a batch of utterances
    at a time by the archive reader.
    """
    x = raw[:, columns] if len(columns) != raw.shape[1] or (np.diff(columns) != 1).any() else raw.copy()
    if view.vad:
        x = x[voiced]
    return normalise(np.ascontiguousarray(x, dtype=np.float32), view.cmvn, cmvn_window=view.cmvn_window)
