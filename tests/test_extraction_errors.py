"""Feature extraction when things go wrong: failed batches.  The command's side (nothing usable, mixed sample
rates, two runs on one output, failures and Ctrl-C: no leftovers, no worker tracebacks, no orphaned workers) is in
cli/test_features.py."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_gmm.storage import FeatureArchive, extract_corpus

from .conftest import tone


def good_signals(n, seconds=0.3):
    return {f"{i % 3}_utt{i:03d}": tone(seconds + 0.01 * (i % 7), freq=200 + 37 * i, seed=i) for i in range(n)}


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_batch_in_which_everything_fails_is_reported(make_corpus, tmp_path, jobs):
    signals = good_signals(256, seconds=0.05)
    bad = {f"9_bad{i}": np.zeros(800, np.float32) for i in range(3)}
    data, paths = make_corpus({**signals, **bad})
    report = extract_corpus(data, tmp_path / "f.h5", jobs=jobs, progress=False)  # batches of 256: 256 good, 3 bad
    assert report.n_utterances == 256
    assert sorted(u for u, _, _ in report.skipped) == sorted(bad)
    assert all(p == str(paths[u]) for u, p, _ in report.skipped)
    assert "skipped 3 utterance(s) (3 digital silence):" in report.summary()
    with FeatureArchive(tmp_path / "f.h5") as fa:
        assert sorted(s[0] for s in fa.skipped) == sorted(bad) and len(fa) == 256
    # Small batches: the first and the last are all bad, one in the middle too.
    mixed = {"0_bad_a": np.zeros(800, np.float32), "0_bad_b": tone(0.01), **good_signals(4),
             "5_bad_c": np.zeros(900, np.float32), "5_bad_d": b"junk", "6_ok": tone(0.3),
             "9_bad_e": tone(0.005), "9_bad_f": None}
    data, _ = make_corpus(mixed, name="mixed")
    report = extract_corpus(data, tmp_path / "g.h5", jobs=jobs, batch_size=2, progress=False)
    bad_ids = sorted(u for u in mixed if "bad" in u)
    assert report.n_utterances == 5 and sorted(u for u, _, _ in report.skipped) == bad_ids
    with FeatureArchive(tmp_path / "g.h5") as fa:
        assert sorted(s[0] for s in fa.skipped) == bad_ids
