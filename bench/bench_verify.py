"""Verification scoring at scale: 300,000 trials, top-C against exact, side by side.

A 256-component UBM on FSDD's training takes; 1,000 speaker models, each MAP-adapted (means,
r = 16) to 100 random training takes of one speaker, ten of every digit (a cohort-sized model set); the 300 test takes
scored against every model: 300,000 trials.  Both scorings run on the same models and utterances;
the EER of each (target: the model's speaker said the test take) shows what top-C costs in accuracy.

Run from the repository root::

    .venv/bin/python bench/bench_verify.py [--data ../shared/data/fsdd] [--models 1000] [--top-c 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from acoustic_gmm import GMM  # noqa: E402
from acoustic_gmm.features import MfccConfig  # noqa: E402
from acoustic_gmm.speaker import Scorer, eer, map_adapt  # noqa: E402
from acoustic_gmm.storage import (
    FeatureArchive,  # noqa: E402
    extract_corpus,  # noqa: E402
    write_data_dir,  # noqa: E402
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"))
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--components", type=int, default=256)
    ap.add_argument("--top-c", type=int, default=5)
    args = ap.parse_args()
    wavs = sorted((Path(args.data).resolve() / "recordings").glob("*.wav"))  # wav.scp paths: absolute
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        write_data_dir(Path(tmp) / "d", {w.stem: w for w in wavs}, utt2spk={w.stem: w.stem.split("_")[1] for w in wavs})
        extract_corpus(Path(tmp) / "d", Path(tmp) / "f.h5", config=MfccConfig(n_mfcc=20, deltas=1, cmvn="mean", vad=True, vad_db=30),
                       progress=False)
        fa = FeatureArchive(Path(tmp) / "f.h5")
        train = [u for u in fa.ids if int(u.split("_")[2]) >= 5]
        test = [u for u in fa.ids if int(u.split("_")[2]) < 5]
        t0 = time.perf_counter()
        ubm = GMM(args.components).fit(fa.frames(train)).model_
        t_ubm = time.perf_counter() - t0
        by_spk = {}
        for u in train:
            by_spk.setdefault(fa.speakers[u], []).append(u)
        names = sorted(by_spk)
        owner, models = {}, {}
        t0 = time.perf_counter()
        for i in range(args.models):
            s = names[i % len(names)]
            # ten random takes of every digit: the models differ by speaker, not by the words they heard (with
            # one take of each, 10 takes, MAP barely moves a 256-component UBM: EER 47 %; 50 takes 19 %, 200 3.6 %)
            pick = [u for d in range(10) for u in rng.choice([u for u in by_spk[s] if u.startswith(f"{d}_")], 10,
                                                             replace=False)]
            models[f"m{i:04d}"] = map_adapt(ubm, [fa[u] for u in pick], relevance=16.0)
            owner[f"m{i:04d}"] = s
        t_enrol = time.perf_counter() - t0
        utts = [fa[u] for u in test]
        scorer = Scorer(ubm, models)
        target = np.array([[fa.speakers[u] == owner[m] for m in scorer.names] for u in test])
        rows = []
        for how, c in ((f"top-{args.top_c}", args.top_c), ("exact", None)):
            t0 = time.perf_counter()
            S = scorer.score_many(utts, top_c=c)
            rows.append((how, time.perf_counter() - t0, eer(S[target], S[~target])))
    n = len(test) * args.models
    print(f"UBM {args.components} on {len(train)} takes: {t_ubm:.1f} s; {args.models} MAP enrolments: {t_enrol:.1f} s")
    print(f"{n:,} trials ({len(test)} test takes x {args.models} models, {int(target.sum()):,} target):")
    for how, sec, e in rows:
        print(f"  {how:7s} {sec:7.2f} s  ({n / sec:,.0f} trials/s)  EER {100 * e:.2f} %")
    print(f"  top-{args.top_c} is {rows[1][1] / rows[0][1]:.1f}x faster than exact; "
          f"EER difference {100 * abs(rows[0][2] - rows[1][2]):.2f} % absolute")


if __name__ == "__main__":
    main()
