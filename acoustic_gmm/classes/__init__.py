"""Class models: one GMM, GMM slices or an HMM-state chain per class, trained, scored, adapted and evaluated.

Imports the layers below (:mod:`acoustic_gmm.gmm`, :mod:`acoustic_gmm.storage`, :mod:`acoustic_gmm.features`).
``_model_set`` is :class:`ModelSet` (its scores, the equal-slice rule and the aligner); ``_hmm`` left-to-right
chains, Viterbi and forward-backward; ``_states`` the training of chains on the engine's updates; ``_training``
trains a model set from an archive (:func:`train_model_set`, the defaults the CLI uses); ``_mmi`` MMI
re-estimation; ``_adapt`` MLLR + MAP to one speaker; ``_evaluation`` evaluate and classify; ``_select`` chooses
the normalisation and the models per corpus by held-out speakers.
"""

import lazy_loader

# the public names, each from the module that defines it; imported on first use, so that importing one
# name does not import the whole layer (the CLI starts in a fraction of a second)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "_adapt": ['ADAPT_TRANSFORMS', 'adapt_model_set', 'fmllr_once'],
    "_evaluation": ['classify', 'confusion_png', 'confusion_text', 'evaluate', 'load_inputs', 'score_by_speaker', 'write_metrics'],
    "_lda_mllt": ['CONTEXT', 'MLLT_PASSES', 'train_lda_mllt'],
    "_fit": ['fit_configuration'],
    "_hmm": ['ChainHMM', 'forward_backward', 'score_utterance', 'viterbi'],
    "_mmi": ['MMIHistory', 'mmi_objective', 'mmi_stats', 'mmi_update', 'train_mmi', 'train_mmi_from_archive'],
    "_model_set": ['ModelSet', 'Scores', 'UNKNOWN', 'slice_of_frames', 'split_slices'],
    "_states": ['train_chain'],
    "_sat": ['SAT_ITERATIONS', 'train_sat'],
    "_select": ['GRID', 'MAX_FOLDS', 'MIN_SPEAKERS', 'SelectionReport', 'TRANSFORM_GRID', 'grid_accuracy',
                'one_standard_error', 'select_model_set', 'speaker_folds'],
    "_training": ['DEFAULT_COMPONENTS', 'DEFAULT_STATES', 'SHORT_FRAMES_PER_STATE', 'class_structure',
                  'train_model_set'],
})
