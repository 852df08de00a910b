#!/usr/bin/env python3
"""How much of a new speaker's audio adaptation needs: leave-one-speaker-out, random groups of N utterances.

    python recipes/fsdd/local/adapt_amount.py EXP [--sizes 20 50 100 500] [--groups 5] [--seed 0]
        [--transform mllr fmllr] [--relevance R] [--models TEMPLATE]

For every fold's models (EXP/loso-SPK/models.h5, trained on the other five speakers, read from
EXP/defaults.h5 as they were trained), the held-out speaker's 500 test utterances are cut into
random groups of N; each group is classified after adapting the models to it alone (no labels),
as `evaluate --adapt` would with a utt2spk holding only that group.  Prints the accuracy per size
and fold, plain and adapted (each --transform: MLLR of the means or fMLLR of the frames, then MAP with
relevance R; 'inf' for none).  --models names each fold's model file, {speaker} for the held-out speaker
(default EXP/loso-{speaker}/models.h5; e.g. models of `train --sat`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from acoustic_gmm.classes import ModelSet, adapt_model_set
from acoustic_gmm.storage import FeatureArchive

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("exp", type=Path)
parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100, 500])
parser.add_argument("--groups", type=int, default=5, help="random groups per size and fold (at most 500 / N)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--transform", nargs="+", default=["mllr"], choices=["mllr", "fmllr"])
parser.add_argument("--relevance", type=float, default=16.0)
parser.add_argument("--models", help="each fold's models, {speaker} for the held-out one")
args = parser.parse_args()

rng = np.random.default_rng(args.seed)
relevance = None if args.relevance == float("inf") else args.relevance
folds = sorted(p.stem for p in (args.exp / "data" / "loso").glob("*.test"))
rows = {(t, n): {} for t in args.transform for n in args.sizes}
plain = {}
for spk in folds:
    ms = ModelSet.load(args.models.format(speaker=spk) if args.models else args.exp / f"loso-{spk}" / "models.h5")
    ids = [line.split()[0] for line in open(args.exp / "data" / "loso" / f"{spk}.test")]
    with FeatureArchive(args.exp / "defaults.h5", view=ms.config) as fa:
        utts, truth = fa.utterances(ids), np.array([fa.labels[u] for u in ids])
    plain[spk] = float(np.mean(np.array(ms.predict(utts)) == truth))
    for n in args.sizes:
        order = rng.permutation(len(ids))
        groups = [order[i:i + n] for i in range(0, len(ids) - n + 1, n)][:args.groups]
        for t in args.transform:  # the same groups for every transform
            right = total = 0
            for g in groups:
                _, scores = adapt_model_set(ms, [utts[i] for i in g], transform=t, relevance=relevance)
                right += int(np.sum(np.array(scores.predict()) == truth[g]))
                total += len(g)
            rows[t, n][spk] = right / total
print(f"{'adapted on':>10}  {'mean %':>7}  " + "  ".join(f"{s:>8}" for s in folds))
print(f"{'plain':>10}  {100 * np.mean(list(plain.values())):7.2f}  " + "  ".join(f"{100 * plain[s]:8.1f}" for s in folds))
for (t, n), accs in rows.items():
    print(f"{t + ' ' + str(n):>10}  {100 * np.mean(list(accs.values())):7.2f}  "
          + "  ".join(f"{100 * accs[s]:8.1f}" for s in folds))
