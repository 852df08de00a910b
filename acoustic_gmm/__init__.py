"""acoustic_gmm: Gaussian-mixture acoustic modelling of speech.

The package is a house of layers, lowest first, as the data flows (audio -> features -> archive -> statistics ->
model -> scores -> decisions): :mod:`~acoustic_gmm.features` (audio to frames), :mod:`~acoustic_gmm.storage`
(archives, data directories, extraction, the output policy), :mod:`~acoustic_gmm.gmm` (the GMM engine: models,
statistics, updates, EM, the estimator), :mod:`~acoustic_gmm.classes` (class models: GMMs, slices, HMM states, MMI,
adaptation, evaluation) beside :mod:`~acoustic_gmm.speaker` (UBM/MAP verification, i-vectors, PLDA, metrics),
:mod:`~acoustic_gmm.interop` (Kaldi and HTK files) and the command line, :mod:`~acoustic_gmm.cli`.  A layer imports
only from the layers below it.  The names most work starts from are exported here; each layer exports the rest.

>>> from acoustic_gmm import GMM
>>> GMM(8).n_components
8
"""

import lazy_loader

from .errors import (
                     AcousticGMMError,
                     ArchiveError,
                     ComponentWarning,
                     ConvergenceWarning,
                     DataError,
                     ManifestError,
                     ModelFileError,
                     NotFittedError,
                     OutputError,
                     ParameterError,
)

__version__ = "0.1.0"

# imported on first use, as each layer's names are: `import acoustic_gmm` costs nothing until a name is used
__getattr__, __dir__, _lazy = lazy_loader.attach(
    __name__,
    submodules=["features", "storage", "gmm", "classes", "speaker", "interop", "cli"],
    submod_attrs={
        "features": ["MfccConfig", "extract", "extract_file"],
        "storage": ["FeatureArchive", "extract_corpus", "read_data_dir"],
        "gmm": ["GMM", "DiagGMM", "FullGMM"],
        "classes": ["ModelSet", "train_model_set", "evaluate"],
        "speaker": ["train_ubm", "enroll", "verify_trials"],
    },
)

__all__ = sorted(set(_lazy) - {"features", "storage", "gmm", "classes", "speaker", "interop", "cli"}) + [
    "AcousticGMMError", "ParameterError", "DataError", "ArchiveError", "ModelFileError", "ManifestError",
    "OutputError", "NotFittedError", "ConvergenceWarning", "ComponentWarning", "__version__"]
