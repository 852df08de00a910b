"""Which trainer a set of training settings asks for: the plain one, LDA + MLLT, or speaker-adaptive training.

``train``'s flags and ``select``'s grid entries are settings of :func:`train_model_set`, plus ``lda_mllt=DIM``
(:func:`train_lda_mllt`) or ``sat=True`` (:func:`train_sat`); :func:`fit_configuration` is the one place that
turns them into a call.

Examples
--------
::

    ms = fit_configuration("train.h5", {"slices": 3, "lda_mllt": 40}, jobs=2)
"""

from __future__ import annotations

from ..errors import ParameterError
from ._training import train_model_set

__all__ = ["fit_configuration"]


def fit_configuration(archive, settings: dict, **options):
    """Train the model set ``settings`` (and ``options``) describe: :func:`train_model_set`, or with ``lda_mllt``
    :func:`~acoustic_gmm.classes.train_lda_mllt`, or with ``sat`` :func:`~acoustic_gmm.classes.train_sat`."""
    settings = {**settings, **options}
    dim, sat = settings.pop("lda_mllt", None), settings.pop("sat", False)
    if dim is not None and sat:
        raise ParameterError("sat=True and lda_mllt= are not combined yet: give one")
    if dim is not None:  # imported only when asked for: the LDA needs scipy.linalg
        from ._lda_mllt import train_lda_mllt

        return train_lda_mllt(archive, dim=dim, **settings)
    if sat:
        from ._sat import train_sat

        return train_sat(archive, **settings)
    return train_model_set(archive, **settings)
