"""The plain alternative, for the results table: what a researcher writes with scikit-learn and librosa alone.

One ``GaussianMixture(16, covariance_type="diag")`` per class on librosa's 20 MFCC (its defaults otherwise) with
deltas and delta-deltas, each utterance's frames normalised to zero mean and unit variance; an utterance goes to
the class whose GMM gives its frames the highest total log-likelihood.  Reads Kaldi data directories (wav.scp,
utt2label, optional segments: a segment is loaded alone).  Prints the accuracy on the test utterances.

    python recipes/sklearn_baseline.py TRAIN_DIR TEST_DIR [TRAIN_IDS TEST_IDS]
"""

import sys
import warnings
from pathlib import Path

import librosa
import numpy as np
from sklearn.mixture import GaussianMixture

warnings.filterwarnings("ignore", message="n_fft=")  # short utterances: librosa says so for each


def table(path):
    path = Path(path)
    return dict(line.split(None, 1) for line in path.read_text().splitlines() if line.strip()) if path.exists() else {}


def utterances(data, ids=None):
    """``{utt: (frames, label)}`` of a data directory (``ids`` only, when given)."""
    wav, label, segments = (table(Path(data) / name) for name in ("wav.scp", "utt2label", "segments"))
    out = {}
    for u in ids or label:
        if u not in label:
            continue
        rec, start, end = segments[u].split() if u in segments else (u, 0, None)
        y, sr = librosa.load(wav[rec].strip(), sr=None, offset=float(start),
                             duration=None if end is None else float(end) - float(start))
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
        x = np.vstack([m, librosa.feature.delta(m, mode="nearest"),
                       librosa.feature.delta(m, order=2, mode="nearest")]).T
        out[u] = ((x - x.mean(0)) / (x.std(0) + 1e-8), label[u].strip())
    return out


def main(train_dir, test_dir, train_ids=None, test_ids=None):
    ids = [None if f is None else [line.split()[0] for line in Path(f).read_text().splitlines() if line.strip()]
           for f in (train_ids, test_ids)]  # an id list, or the first column of a utt2spk
    train, test = utterances(train_dir, ids[0]), utterances(test_dir, ids[1])
    models = {}
    for c in sorted({c for _, c in train.values()}):
        X = np.vstack([x for x, label in train.values() if label == c])
        models[c] = GaussianMixture(min(16, len(X)), covariance_type="diag", random_state=0).fit(X)
    right = sum(max(models, key=lambda c: models[c].score_samples(x).sum()) == label for x, label in test.values())
    print(f"accuracy {100 * right / len(test):.2f} % ({right}/{len(test)})")


if __name__ == "__main__":
    main(*sys.argv[1:5])
