"""acoustic_gmm: Gaussian-mixture acoustic modelling of speech.

>>> from acoustic_gmm import GMM
>>> GMM(8).n_components
8
"""

from .errors import (
                     AcousticGMMError,
                     ArchiveError,
                     ComponentWarning,
                     ConvergenceWarning,
                     DataError,
                     ManifestError,
                     ModelFileError,
                     NotFittedError,
                     ParameterError,
)
from .gmm._estimator import GMM
from .gmm._model import DiagGMM, FullGMM

__version__ = "0.1.0"

__all__ = ["GMM", "DiagGMM", "FullGMM", "AcousticGMMError", "ParameterError", "DataError",
           "ArchiveError", "ModelFileError", "ManifestError", "NotFittedError", "ConvergenceWarning", "ComponentWarning", "__version__"]
