"""EM on a Dask LocalCluster gives the single-process model."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_gmm import GMM
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.storage import write_features

from .conftest import draw_mixture

pytestmark = pytest.mark.slow  # a real Dask cluster in every test

distributed = pytest.importorskip("dask.distributed")


def test_fit_on_a_local_cluster_equals_the_single_process_fit(client, tmp_path):
    from acoustic_gmm.gmm import DaskFrames

    rng = np.random.default_rng(4)
    X, _ = draw_mixture(rng.dirichlet(np.full(6, 5)), rng.normal(0, 3, (6, 5)), rng.uniform(0.5, 2, (6, 5)),
                        30_000, seed=4)
    X = X.astype(np.float32)
    pieces = np.array_split(X, 57)  # 57 utterances, spread over 8 shards
    write_features(tmp_path / "f.h5", [(f"u{i:03d}", p, None, None) for i, p in enumerate(pieces)],
                   config=MfccConfig(n_mfcc=5, deltas=0), sample_rate=8000)
    local = GMM(12, dtype="float64").fit(X)
    frames = DaskFrames(tmp_path / "f.h5", client)
    try:
        assert len(frames.shards) == 8
        remote = GMM(12, dtype="float64").fit(frames)
        # the same model's E-step twice in a row: its scattered copy once had the same key as the last pass's,
        # lost while that one was released, and the pass was cancelled
        from acoustic_gmm.gmm import accumulate

        again = [accumulate(remote.model_, frames) for _ in range(3)]
        assert again[0].loglik == again[2].loglik
    finally:
        frames.close()
    assert remote.n_iter_ == local.n_iter_ and len(remote.history_) == len(local.history_)
    np.testing.assert_allclose(remote.weights_, local.weights_, rtol=1e-5)
    np.testing.assert_allclose(remote.means_, local.means_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(remote.covariances_, local.covariances_, rtol=1e-5)


def test_feature_extraction_on_a_local_cluster_gives_the_same_archive(client, make_corpus, tmp_path):
    from click.testing import CliRunner

    from acoustic_gmm.cli import main
    from acoustic_gmm.storage import FeatureArchive, extract_corpus

    from .conftest import tone

    data, _ = make_corpus({f"{i % 3}_u{i:02d}": tone(0.3 + 0.05 * i, freq=200 + 90 * i, seed=i) for i in range(11)})
    extract_corpus(data, tmp_path / "local.h5", jobs=1, batch_size=2)
    extract_corpus(data, tmp_path / "dask.h5", batch_size=2, client=client)
    r = CliRunner().invoke(main, ["features", str(data), "-o", str(tmp_path / "cli.h5"), "--scheduler",
                                  client.scheduler.address])
    assert r.exit_code == 0 and "11 utterances" in r.output, r.output
    with FeatureArchive(tmp_path / "local.h5") as a, FeatureArchive(tmp_path / "dask.h5") as b, \
            FeatureArchive(tmp_path / "cli.h5") as c:
        assert a.ids == b.ids == c.ids and a.labels == b.labels
        assert all(np.array_equal(a[u], b[u]) and np.array_equal(a[u], c[u]) for u in a.ids)


def test_ivector_extractor_on_a_local_cluster_equals_the_single_process_one(client, tmp_path):
    from click.testing import CliRunner

    from acoustic_gmm.cli import main
    from acoustic_gmm.gmm import DiagGMM
    from acoustic_gmm.speaker import load_extractor, train_extractor, utterance_stats
    from acoustic_gmm.speaker._ivector_files import DaskStats

    rng = np.random.default_rng(6)
    utts = [(f"s{i % 5}-{i}", (rng.normal(size=(int(rng.integers(50, 150)), 4)) + i % 5).astype(np.float32),
             None, f"s{i % 5}") for i in range(23)]
    write_features(tmp_path / "f.h5", utts, config=MfccConfig(n_mfcc=4, deltas=0), sample_rate=8000)
    ubm = DiagGMM(np.full(6, 1 / 6), rng.normal(size=(6, 4)) * 2, np.ones((6, 4)))
    local = train_extractor(ubm, utterance_stats(ubm, tmp_path / "f.h5"), 3, n_iter=3)
    remote = train_extractor(ubm, DaskStats(tmp_path / "f.h5", ubm, client), 3, n_iter=3)
    np.testing.assert_allclose(remote.T, local.T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(remote.history, local.history, rtol=1e-12)
    # the CLI on a scheduler
    GMM(6, dtype="float64").fit(np.concatenate([u[1] for u in utts])).save(tmp_path / "ubm.h5", name="ubm")
    r = CliRunner().invoke(main, ["ivector", "train", str(tmp_path / "ubm.h5"), str(tmp_path / "f.h5"), "--dim", "3",
                                  "--scheduler", client.scheduler.address, "--out", str(tmp_path / "ex.h5")])
    assert r.exit_code == 0, r.output
    assert load_extractor(tmp_path / "ex.h5").dim == 3
