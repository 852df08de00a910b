"""A model set's input transform: frames spliced over +-context, then an affine projection.

``y_t = M splice(x)_t + offset`` with ``M`` (D_out, (2 context + 1) D_in): an LDA, an LDA followed by MLLT
(``then(A)``), or an MLLT alone (context 0).  Models trained on ``y`` keep it with them, and score only frames of
``D_in`` features, mapped through it (Kaldi keeps ``final.mat`` beside ``final.mdl`` the same way).

Examples
--------
>>> import numpy as np
>>> t = FeatureTransform(1, np.ones((1, 3)), np.zeros(1), "sum of three frames")
>>> t.apply(np.arange(3.0)[:, None]).ravel().tolist()
[1.0, 3.0, 5.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ._splice import splice

__all__ = ["FeatureTransform"]


@dataclass(frozen=True)
class FeatureTransform:
    """``y = matrix splice(x, context) + offset``; ``description`` says how it was made."""

    context: int
    matrix: np.ndarray          # (n_out, (2 context + 1) n_in)
    offset: np.ndarray          # (n_out,)
    description: str = ""

    def __post_init__(self):
        M, b = np.asarray(self.matrix, dtype=np.float64), np.asarray(self.offset, dtype=np.float64)
        width = 2 * self.context + 1
        if M.ndim != 2 or M.shape[1] % width or b.shape != (M.shape[0],) or not (np.isfinite(M).all()
                                                                                 and np.isfinite(b).all()):
            raise ParameterError(f"a feature transform needs a finite (n_out, {width} n_in) matrix and an (n_out,) "
                                 f"offset, got {M.shape} and {b.shape}")
        object.__setattr__(self, "matrix", M)
        object.__setattr__(self, "offset", b)

    @property
    def n_in(self) -> int:
        return self.matrix.shape[1] // (2 * self.context + 1)

    @property
    def n_out(self) -> int:
        return self.matrix.shape[0]

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """(T, n_in) -> (T, n_out), float32."""
        X = splice(frames, context=self.context) if self.context else np.asarray(frames)
        return (X @ self.matrix.T + self.offset).astype(np.float32)

    def then(self, A: np.ndarray, description: str) -> "FeatureTransform":
        """This transform followed by the square ``A`` (an MLLT): ``y = A (M s + b)``."""
        return FeatureTransform(self.context, A @ self.matrix, A @ self.offset, description)

    def to_dict(self) -> dict:
        return {"context": self.context, "matrix": self.matrix.tolist(), "offset": self.offset.tolist(),
                "description": self.description}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureTransform":
        """Read :meth:`to_dict`'s output; a :class:`~acoustic_gmm.errors.ParameterError` says what is wrong."""
        try:
            context = d["context"]
            if isinstance(context, bool) or not isinstance(context, int) or context < 0:
                raise ParameterError(f"context is {context!r}, expected an integer >= 0")
            return cls(context, np.array(d["matrix"], dtype=np.float64), np.array(d["offset"], dtype=np.float64),
                       str(d.get("description", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"not a feature transform ({exc!r})") from None
