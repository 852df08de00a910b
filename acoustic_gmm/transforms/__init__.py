"""Feature transforms learned from data: spliced frames, LDA, MLLT (semi-tied covariances) and fMLLR.

Imports :mod:`acoustic_gmm.gmm` (its diagonal models and responsibilities) and :mod:`acoustic_gmm.errors`;
used by :mod:`acoustic_gmm.classes`.  ``_splice`` puts each frame beside its neighbours; ``_lda`` the linear
discriminant analysis of labelled frames; ``_mllt`` the square transform that makes diagonal covariances fit;
``_fmllr`` a speaker's affine feature transform; ``_feature_transform`` the transform a model set keeps
with it (splice, then an affine projection).  Each holds statistics that add up (``+=``) apart from the
estimate that is a function of them, as the GMM engine does.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "_feature_transform": ['FeatureTransform'],
    "_fmllr": ['FMLLR_KINDS', 'FmllrStats', 'apply_fmllr', 'estimate_fmllr'],
    "_lda": ['LdaStats', 'estimate_lda'],
    "_mllt": ['MlltStats', 'estimate_mllt'],
    "_splice": ['splice'],
})
