"""The GMM engine: model parameters, statistics, updates, initialisation, EM training and its estimator.

Imports :mod:`acoustic_gmm.storage`, :mod:`acoustic_gmm.features` (configurations only) and
:mod:`acoustic_gmm.errors`.  ``_model`` holds the parameters (:class:`DiagGMM`, :class:`FullGMM`); ``_stats`` the
statistics that add up over chunks, files, processes and machines (:class:`Stats`, :func:`accumulate`, the E-step,
with its fused kernels in ``_kernels``); ``_update`` the updates that are functions of statistics (ML, MAP,
splitting, variance floors, the empty-component policy); ``_init`` k-means and random starts; ``_gselect`` Gaussian selection for large mixtures; ``_train`` EM with
component splitting; ``_sources`` the frame sources EM reads; ``_estimator`` the scikit-learn-style :class:`GMM`;
``_ebw`` the extended Baum-Welch update (MMI's); ``_checkpoint`` resumable training; ``_files`` model files;
``_dask`` the E-step on a Dask cluster.
"""

import lazy_loader

# the public names, each from the module that defines it; imported on first use, so that importing one
# name does not import the whole layer (the CLI starts in a fraction of a second)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "_checkpoint": ['CheckpointFile', 'checkpoint_path'],
    "_dask": ['DaskFrames'],
    "_ebw": ['ebw_update'],
    "_estimator": ['GMM'],
    "_files": ['load_metadata', 'load_models', 'save_models', 'ubm_id'],
    "_gselect": ['GSELECT_MIN_COMPONENTS', 'GSELECT_REFRESH', 'GSELECT_TOP', 'gselect_for', 'select_components'],
    "_init": ['kmeans_init', 'random_init'],
    "_model": ['DiagGMM', 'FullGMM', 'logsumexp'],
    "_sources": ['FrameSource'],
    "_stats": ['Stats', 'accumulate', 'global_mean_var', 'global_stats', 'ordered_map'],
    "_train": ['History', 'run_em', 'train'],
    "_update": ['MAP_UPDATES', 'em_step', 'growth_schedule', 'm_step', 'map_update', 'ml_update', 'split_heaviest', 'variance_floor', 'frames_floor'],
})
