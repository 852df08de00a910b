"""What the two halves of the defaults study share (recipes/*/local/defaults_study.py): the models they try,
and one configuration's accuracy."""

import warnings

import numpy as np

from acoustic_gmm.classes import train_model_set

# name -> (Gaussians, slices or states, None: fixed slices or the HMM re-estimation, variance floor)
MODELS = {"16 components": (16, 1, None, 1e-3), "32 components": (32, 1, None, 1e-3),
          "16 components, floor 0.3": (16, 1, None, 0.3),
          "3 slices x 16": (16, 3, None, 1e-3),
          "3 slices x 8, floor 0.3": (8, 3, None, 0.3),
          "3 states x 8 (Baum-Welch)": (8, 3, "baum-welch", 1e-3),
          "3 states x 8 (Baum-Welch), floor 0.3": (8, 3, "baum-welch", 0.3)}


def accuracy(train, train_ids, test, test_ids, model, *, priors: bool = False) -> float:
    """Train ``model`` on ``train_ids`` of archive ``train``; the share of ``test_ids`` of ``test`` it gets right."""
    k, s, states, floor = MODELS[model]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ms = train_model_set(train, n_components=k, states=s if states else None, slices=None if states else s,
                             state_training=states or "baum-welch", ids=train_ids, priors=priors,
                             reject_quantile=None, progress=False, var_floor=floor)
    predicted = ms.predict(test.utterances(test_ids))
    return float(np.mean([p == test.labels[u] for p, u in zip(predicted, test_ids)]))
