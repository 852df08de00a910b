#!/usr/bin/env python3
"""Every configuration of `acoustic-gmm select`'s grid on a corpus's test speakers, beside what select saw.

    python recipes/grid_study.py TRAIN_FEATS --split TRAIN_LIST TEST_LIST [--split ...] [--test-feats FEATS]
        [--selected MODELS ...] [--priors] [--jobs N] --out study.json

For each split (training ids, test ids), every configuration of `acoustic_gmm.classes.GRID` is trained on
the training ids of TRAIN_FEATS (a raw archive, read through the configuration's view) and scored on the test
ids of --test-feats (default TRAIN_FEATS).  --selected gives, per split, the models `acoustic-gmm select`
chose on that split's training speakers: their selection table (each configuration's accuracy on each of
select's held-out speaker folds) is the configurations' development accuracy (training speakers only).  Writes both, per configuration and split, for recipes/choose_defaults.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from acoustic_gmm.classes import GRID, ModelSet, grid_accuracy
from acoustic_gmm.storage import FeatureArchive, read_ids

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("train", type=Path)
parser.add_argument("--split", nargs=2, action="append", required=True, metavar=("TRAIN_LIST", "TEST_LIST"))
parser.add_argument("--test-feats", type=Path)
parser.add_argument("--selected", nargs="+", type=Path, default=[])
parser.add_argument("--priors", action="store_true")
parser.add_argument("--jobs", type=int)
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()

with FeatureArchive(args.train) as fa:
    grid = [g for g in GRID if g[1].get("n_mfcc", 0) <= fa.stored_config.n_mfcc]
names = [g[0] for g in grid]
splits = [(read_ids(a), read_ids(b)) for a, b in args.split]
test = grid_accuracy(args.train, splits, grid, test_archive=args.test_feats, priors=args.priors, jobs=args.jobs)
development = []  # per split, per configuration: the accuracy on each of select's held-out speaker folds
for path in args.selected:
    selection = ModelSet.load(path).metadata["selection"]
    by_name = dict(zip(selection["configurations"], selection["accuracy"]))
    development.append([by_name[n] for n in names])
result = {"configurations": names, "test": test.T.tolist(), "development": development,
          "splits": [list(s) for s in args.split], "priors": args.priors}
tmp = args.out.with_suffix(".tmp")
tmp.write_text(json.dumps(result, indent=1))
tmp.rename(args.out)
print(f"{'configuration':<42} {'dev %':>7} {'test %':>7}")
for i, n in enumerate(names):
    dev = f"{100 * sum(sum(d[i]) / len(d[i]) for d in development) / len(development):7.2f}" if development else "      —"
    print(f"{n:<42} {dev} {100 * test[i].mean():7.2f}")
