#!/usr/bin/env python3
"""The package's fixed defaults, for users who do not run `acoustic-gmm select`, by evidence across corpora.

Each corpus's grid study (recipes/grid_study.py, run by a recipe stage) holds every configuration of select's
grid with its development accuracy (select's speaker-held-out folds, training speakers only) and its accuracy
on the test speakers.  A default has to serve every corpus, so the choice minimises the largest loss of
development accuracy to each corpus's own best configuration (ties: the better mean); the test columns show
what that costs on speakers no choice saw.

    python recipes/choose_defaults.py exp/fsdd/select/grid_study.json exp/timit/select/grid_study.json \
        exp/fsdd_speed/grid_study.json
"""

import json
import sys
from pathlib import Path

import numpy as np


def load(path):
    study = json.loads(Path(path).read_text())
    dev = np.mean(study["development"], axis=0)
    test = np.mean(study["test"], axis=0)
    return dict(zip(study["configurations"], zip(dev, test)))


def main():
    corpora = {Path(p).parent.name if Path(p).parent.name != "select" else Path(p).parent.parent.name: load(p)
               for p in sys.argv[1:]}
    names = [c for c in next(iter(corpora.values())) if all(c in s for s in corpora.values())]
    best = {k: max(s[c][0] for c in names) for k, s in corpora.items()}
    best_test = {k: max(s[c][1] for c in names) for k, s in corpora.items()}
    loss = {c: max(best[k] - s[c][0] for k, s in corpora.items()) for c in names}
    mean = {c: np.mean([s[c][0] for s in corpora.values()]) for c in names}
    head = "".join(f" {k + ' dev':>16} {k + ' test':>16}" for k in corpora)
    print(f"{'configuration':<42}{head} {'worst dev loss':>15}")
    for c in sorted(names, key=lambda c: (loss[c], -mean[c])):
        cells = "".join(f" {100 * s[c][0]:16.2f} {100 * s[c][1]:16.2f}" for s in corpora.values())
        print(f"{c:<42}{cells} {100 * loss[c]:15.2f}")
    chosen = min(names, key=lambda c: (loss[c], -mean[c]))
    print(f"\nchosen: {chosen} (largest development loss to a corpus's best: {100 * loss[chosen]:.2f} points; on the "
          "test speakers: " + ", ".join(f"{k} {100 * (best_test[k] - s[chosen][1]):.2f}" for k, s in corpora.items())
          + " points below the best configuration there)")


if __name__ == "__main__":
    main()
