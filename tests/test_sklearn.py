"""GMM is a scikit-learn estimator: check_estimator passes, and it works in Pipeline and GridSearchCV."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from acoustic_gmm import GMM, DataError
from acoustic_gmm.errors import NotFittedError

sklearn = pytest.importorskip("sklearn")


def test_check_estimator_passes():
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EM on the checks' tiny random data warns of empty components
        results = check_estimator(GMM(2), on_fail=None)
    failed = [f"{r['check_name']}: {r['exception']}" for r in results if r["status"] == "failed"]
    assert not failed, "\n".join(failed)
    passed = [r for r in results if r["status"] == "passed"]
    assert len(passed) >= 40  # 40 of 41 in scikit-learn 1.9; the one skipped needs the array API (not ours)


def test_grid_search_over_a_pipeline_on_real_mfcc_frames(fsdd_frames):
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = fsdd_frames[::3]  # 4.5k frames of 39 MFCC + deltas, float32
    search = GridSearchCV(make_pipeline(StandardScaler(), GMM(2, random_state=0)),
                          {"gmm__n_components": [1, 4, 16]}, cv=KFold(3, shuffle=True, random_state=0))
    search.fit(X)
    scores = search.cv_results_["mean_test_score"]  # GMM.score: mean held-out log-likelihood per frame
    assert list(np.argsort(scores)) == [0, 1, 2], scores  # more components fit held-out speech better here
    assert search.best_params_ == {"gmm__n_components": 16}
    assert scores[2] - scores[0] > 4  # nats per frame: measured -55.38 (1) / -53.04 (4) / -50.93 (16)
    best = search.best_estimator_[-1]
    assert best.n_features_in_ == 39 and best.means_.shape == (16, 39)


def test_float32_stays_the_fast_path_and_errors_stay_ours(fsdd_frames):
    g = GMM(4, random_state=0).fit(fsdd_frames)
    assert g.model_.dtype == np.float32
    with pytest.raises(DataError, match="X has 3 features, but GMM is expecting 39 features as input"):
        g.predict(np.ones((5, 3)))
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.utils.validation import check_is_fitted

    unfitted = GMM(2)
    with pytest.raises(SkNotFitted) as caught:  # scikit-learn's tools recognise it once scikit-learn is loaded
        unfitted.predict(np.ones((5, 3)))
    assert isinstance(caught.value, NotFittedError)
    with pytest.raises(SkNotFitted):
        check_is_fitted(unfitted, "model_")


def test_importing_acoustic_gmm_does_not_import_scikit_learn():
    code = "import sys, acoustic_gmm, acoustic_gmm.cli; from acoustic_gmm import GMM; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # it costs a second to import: the command line never pays it
