"""Spliced frames: each frame with its neighbours, the input of an LDA (Kaldi's ``splice-feats``).

A frame alone says little about the transitions that tell phones apart; ``splice(X, context=4)`` puts frames
``t - 4 .. t + 4`` side by side, (T, D) -> (T, 9 D), repeating the first and last frame at the edges (as Kaldi
does), so an utterance keeps its length.  An LDA then keeps the few directions of that wide vector that
separate the classes.

Examples
--------
>>> import numpy as np
>>> splice(np.arange(3.0)[:, None], context=1)
array([[0., 0., 1.],
       [0., 1., 2.],
       [1., 2., 2.]])
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError, check_frames

__all__ = ["splice"]


def splice(frames: np.ndarray, *, context: int = 4) -> np.ndarray:
    """Frames ``t - context .. t + context`` side by side: (T, D) -> (T, (2 context + 1) D), edges repeated.

    The block of frame ``t + k`` is columns ``(k + context) D .. (k + context + 1) D``; the dtype is kept.
    """
    if not isinstance(context, (int, np.integer)) or isinstance(context, bool) or context < 0:
        raise ParameterError(f"context must be an integer >= 0, got {context!r}")
    X = check_frames(frames, what="frames")
    if context == 0 or len(X) == 0:
        return X.copy()
    rows = np.clip(np.arange(len(X))[:, None] + np.arange(-context, context + 1)[None, :], 0, len(X) - 1)
    return X[rows].reshape(len(X), -1)
