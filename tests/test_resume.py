"""Resumable training: checkpoints as EM goes (every iteration here), and a resumed run equal to an uninterrupted one."""

from __future__ import annotations

import os
import re

import h5py
import numpy as np
import pytest

from acoustic_gmm import GMM
from acoustic_gmm.errors import ArchiveError, ParameterError

# every test here stops at chosen iterations: let every one be saved (conftest.py's save_every_iteration)
pytestmark = pytest.mark.usefixtures("save_every_iteration")


class Interrupt(Exception):
    """Raised from the progress callback: a crash at a chosen EM iteration."""


def stop_at(iteration):
    def progress(it, n_components, loglik):
        if it == iteration:
            raise Interrupt(it)
    return progress


def assert_same_fit(got: GMM, want: GMM) -> None:
    # E-steps are deterministic: a resumed run is the same computation, to the bit
    np.testing.assert_array_equal(got.weights_, want.weights_)
    np.testing.assert_array_equal(got.means_, want.means_)
    np.testing.assert_array_equal(got.covariances_, want.covariances_)
    np.testing.assert_array_equal(got.history_, want.history_)
    np.testing.assert_array_equal(got.history_n_components_, want.history_n_components_)
    assert (got.n_iter_, got.converged_) == (want.n_iter_, want.converged_)


@pytest.fixture(scope="module")
def reference(fsdd_frames):
    """An uninterrupted K = 16 fit on real MFCC frames."""
    return GMM(16).fit(fsdd_frames)


def test_resume_after_crashes_in_a_split_stage_and_the_final_stage(fsdd_frames, reference, tmp_path):
    X, ckpt = fsdd_frames, tmp_path / "ubm.ckpt"
    in_split = 6                                       # second iteration at 4 components
    assert reference.history_n_components_[in_split - 1] == 4

    with pytest.raises(Interrupt):
        GMM(16).fit(X, checkpoint=ckpt, progress=stop_at(in_split))
    with h5py.File(ckpt, "r") as f:                    # saved before progress heard of the iteration
        assert (f.attrs["n_components"], f.attrs["iteration"], f.attrs["n_iter_total"]) == (4, 2, in_split)

    resumed, seen = [], []

    def in_final_stage_overrelaxed(it, k, ll):
        # stop in the final stage once over-relaxed steps are under way: their eta is part of what resumes
        seen.append(it)
        with h5py.File(ckpt, "r") as f:
            if k == 16 and f.attrs["iteration"] >= 2 and f.attrs["eta"] > 1:
                raise Interrupt(it)

    with pytest.raises(Interrupt):
        GMM(16).fit(X, checkpoint=ckpt, progress=in_final_stage_overrelaxed, on_resume=lambda *a: resumed.append(a))
    in_final = seen[-1]
    assert resumed == [(ckpt, 4, in_split)]
    assert seen == list(range(in_split + 1, in_final + 1))   # no iteration done twice, none skipped
    assert in_final < len(reference.history_)

    resumed.clear()
    g = GMM(16).fit(X, checkpoint=ckpt, on_resume=lambda *a: resumed.append(a))
    assert resumed == [(ckpt, 16, in_final)]
    assert_same_fit(g, reference)
    assert not ckpt.exists()
    assert sorted(os.listdir(tmp_path)) == []          # no temporary or lock file left either


def test_resume_from_the_last_iteration(fsdd_frames, reference, tmp_path):
    # The converged state is saved too: resuming it runs no further iteration.
    ckpt = tmp_path / "ubm.ckpt"
    with pytest.raises(Interrupt):
        GMM(16).fit(fsdd_frames, checkpoint=ckpt, progress=stop_at(len(reference.history_)))
    assert_same_fit(GMM(16).fit(fsdd_frames, checkpoint=ckpt, progress=stop_at(len(reference.history_) + 1)),
                    reference)


def test_resume_with_kmeans_init(known_mixture, tmp_path):
    X, ckpt = known_mixture[0], tmp_path / "km.ckpt"
    params = dict(init="kmeans", random_state=0, overrelax=1.5, tol=1e-6)
    want = GMM(6, **params).fit(X)
    assert want.n_iter_ > 3
    with pytest.raises(Interrupt):
        GMM(6, **params).fit(X, checkpoint=ckpt, progress=stop_at(3))
    assert_same_fit(GMM(6, **params).fit(X, checkpoint=ckpt), want)


def test_mismatching_checkpoint_is_refused(fsdd_frames, tmp_path):
    X, ckpt = fsdd_frames, tmp_path / "ubm.ckpt"
    with pytest.raises(Interrupt):
        GMM(16).fit(X, checkpoint=ckpt, progress=stop_at(6))
    saved = ckpt.read_bytes()

    with pytest.raises(ParameterError, match=re.escape(str(ckpt)) + ".*n_components 16 there, 8 here"):
        GMM(8).fit(X, checkpoint=ckpt)
    with pytest.raises(ParameterError, match=re.escape(str(ckpt)) + ".*tol 0.001 there, 0.01 here"):
        GMM(16, tol=1e-2).fit(X, checkpoint=ckpt)
    with pytest.raises(ParameterError, match=re.escape(str(ckpt)) + ".*n_frames"):
        GMM(16).fit(X[:-100], checkpoint=ckpt)
    other = X.copy()
    other[::50] += 1.0                                 # same shape, other frames
    with pytest.raises(ParameterError, match=re.escape(str(ckpt)) + ".*the frames differ"):
        GMM(16).fit(other, checkpoint=ckpt)
    assert ckpt.read_bytes() == saved                  # refused, not replaced

    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ArchiveError, match="foreign.h5.*not a training checkpoint"):
        GMM(16).fit(X, checkpoint=tmp_path / "foreign.h5")
