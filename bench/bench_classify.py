"""Classification speed: a cold ``acoustic-gmm classify`` on one file, and scoring many utterances.

* cold start: wall time of ``acoustic-gmm classify MODELS one.wav`` as a new process (imports, model
  loading, feature extraction, scoring), best of ``--repeat``;
* throughput: the 300 FSDD test utterances (features already extracted) scored against 10 digit
  models of 16 components, ``ModelSet.score`` (all classes stacked into one matrix product per chunk)
  side by side with scikit-learn's ``GaussianMixture.score_samples`` called per utterance and class
  with the very same parameters.

Run from the repository root (it trains the models it needs, in a temporary folder)::

    .venv/bin/python bench/bench_classify.py [--data ../shared/data/fsdd]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from acoustic_gmm.classes import train_model_set  # noqa: E402
from acoustic_gmm.storage import (
    FeatureArchive,  # noqa: E402
    extract_corpus,  # noqa: E402
    write_data_dir,  # noqa: E402
)


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    wavs = sorted((Path(args.data).resolve() / "recordings").glob("*.wav"))  # wav.scp paths: absolute
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_data_dir(tmp / "data", {w.stem: w for w in wavs}, utt2label={w.stem: w.stem.split("_")[0] for w in wavs})
        extract_corpus(tmp / "data", tmp / "f.h5", progress=False)
        fa = FeatureArchive(tmp / "f.h5")
        train = [u for u in fa.ids if int(u.split("_")[2]) >= 5]
        test = [u for u in fa.ids if int(u.split("_")[2]) < 5]
        ms = train_model_set(fa, label_key="label", slices=1, n_components=16, ids=train, progress=False)
        ms.save(tmp / "models.h5")
        cli = Path(sys.executable).with_name("acoustic-gmm")
        cold = best_of(lambda: subprocess.run([str(cli), "classify", str(tmp / "models.h5"), str(wavs[0])],
                                              check=True, capture_output=True), args.repeat)
        utts = [fa[u] for u in test]
        ours = best_of(lambda: ms.score(utts), args.repeat)

        from sklearn.mixture import GaussianMixture

        sk = {}
        for c in ms.classes:
            m = ms.models[c][0]
            g = GaussianMixture(m.n_components, covariance_type="diag")
            g.weights_, g.means_, g.covariances_ = m.weights, m.means, m.variances
            g.precisions_cholesky_ = 1 / np.sqrt(m.variances)
            sk[c] = g

        def sklearn_loop():
            return [[sk[c].score_samples(u).sum() for c in ms.classes] for u in utts]

        theirs = best_of(sklearn_loop, args.repeat)
        agree = np.allclose(np.array(sklearn_loop()), ms.score(utts).total, rtol=1e-4)
    print(f"cold 'acoustic-gmm classify' of one wav: {cold:.2f} s (best of {args.repeat})")
    print(f"scoring {len(utts)} utterances x {len(ms.classes)} classes: ours {len(utts) / ours:,.0f} utt/s, "
          f"scikit-learn loop {len(utts) / theirs:,.0f} utt/s ({theirs / ours:.1f}x); same scores: {agree}")


if __name__ == "__main__":
    main()
