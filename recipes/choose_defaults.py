#!/usr/bin/env python3
"""The package's fixed defaults, for users who do not run `acoustic-gmm select`, by evidence across corpora.

Each corpus's grid study (recipes/grid_study.py, run by a recipe stage) holds every configuration of select's
grid with its development accuracy (on each of select's speaker-held-out folds: training speakers only) and its
accuracy on the test speakers.  A default has to serve every corpus: a configuration's cost is its largest loss
of mean development accuracy to a corpus's own best configuration.  As in `select`, the earliest configuration
of the grid (today's defaults first) whose cost is within one standard error of the smallest is kept: the
standard error of its development accuracy's paired difference to the cheapest configuration's, over the folds
of the corpus where it loses most.  The test columns show what the choice costs on speakers no choice saw.

    python recipes/choose_defaults.py exp/fsdd/select/grid_study.json exp/timit/select/grid_study.json \
        exp/fsdd_speed/grid_study.json
"""

import json
import sys
from pathlib import Path

import numpy as np


def load(path):
    """(names, development folds (configurations, folds over every split), mean test accuracy per configuration)."""
    study = json.loads(Path(path).read_text())
    folds = np.concatenate([np.asarray(d) for d in study["development"]], axis=1)
    return study["configurations"], folds, np.mean(study["test"], axis=0)


def main():
    corpora = {}
    for p in sys.argv[1:]:
        parent = Path(p).parent
        corpora[parent.parent.name if parent.name == "select" else parent.name] = load(p)
    names = next(iter(corpora.values()))[0]
    if any(c[0] != names for c in corpora.values()):
        sys.exit("the studies ran different grids")
    dev = {k: f.mean(axis=1) for k, (_, f, _) in corpora.items()}
    loss = np.array([dev[k].max() - dev[k] for k in corpora])       # (corpora, configurations)
    cost = loss.max(axis=0)
    cheapest = int(np.argmin(cost))
    chosen = None
    for i in range(len(names)):
        worst = int(np.argmax(loss[:, i]))
        folds = list(corpora.values())[worst][1]
        diff = folds[i] - folds[cheapest]
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
        if cost[i] - cost[cheapest] <= se + 1e-12:
            chosen = i
            break
    head = "".join(f" {k + ' dev':>15} {k + ' test':>15}" for k in corpora)
    print(f"{'configuration':<42}{head} {'worst dev loss':>15}")
    for i in sorted(range(len(names)), key=lambda i: cost[i]):
        cells = "".join(f" {100 * dev[k][i]:15.2f} {100 * t[i]:15.2f}" for k, (_, _, t) in corpora.items())
        print(f"{names[i]:<42}{cells} {100 * cost[i]:15.2f}" + ("  <- chosen" if i == chosen else ""))
    print(f"\nsmallest worst loss: {names[cheapest]} ({100 * cost[cheapest]:.2f} points); chosen: {names[chosen]} "
          f"({100 * cost[chosen]:.2f}); on the test speakers the choice is "
          + ", ".join(f"{k} {100 * (t.max() - t[chosen]):.2f}" for k, (_, _, t) in corpora.items())
          + " points below each corpus's best configuration there")


if __name__ == "__main__":
    main()
