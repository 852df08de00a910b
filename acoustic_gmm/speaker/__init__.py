"""Speaker recognition: GMM-UBM verification, trials and their metrics, i-vectors and their back end.

Imports the layers below it (:mod:`acoustic_gmm.gmm`, :mod:`acoustic_gmm.storage`, :mod:`acoustic_gmm.features`),
never :mod:`acoustic_gmm.classes`.  ``_gmm_ubm`` trains UBMs and enrols speakers (MAP or ML) and scores them;
``_files`` speaker files and the i-vector bundles; ``_trials`` trial lists, score files and z/t/s-norm;
``_metrics`` EER, minDCF and DET curves; ``_bw_stats`` Baum-Welch statistics; ``_ivector`` the total-variability extractor;
``_ivector_files`` i-vector files and the i-vector workflows over archives; ``_vectors`` centring, LDA, WCCN,
length norm and cosine scores; ``_plda`` two-covariance PLDA; ``_backend`` the back end that chains them.
"""

import lazy_loader

# the public names, each from the module that defines it; imported on first use, so that importing one
# name does not import the whole layer (the CLI starts in a fraction of a second)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "_backend": ['Backend'],
    "_files": ['load_speakers', 'save_speakers'],
    "_gmm_ubm": ['Enrolled', 'Scorer', 'enroll', 'load_ubm', 'map_adapt', 'train_ubm', 'ubm_config'],
    "_bw_stats": ['BWStats', 'StatsStream', 'utterance_stats'],
    "_ivector": ['IvectorExtractor', 'load_extractor', 'train_extractor'],
    "_ivector_files": ['Ivectors', 'extract_archive', 'fit_backend', 'load_backend', 'load_ivectors', 'save_backend', 'save_ivectors', 'score_ivector_trials', 'train_extractor_from_archive'],
    "_metrics": ['det_png', 'eer', 'min_dcf', 'verification_metrics'],
    "_plda": ['PLDA'],
    "_trials": ['Trials', 'read_scores', 'score_file_metrics', 'score_trials', 'verify_trials', 'write_scores'],
    "_vectors": ['cosine_scores', 'lda', 'length_norm', 'wccn'],
})
