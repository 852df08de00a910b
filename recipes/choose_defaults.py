#!/usr/bin/env python3
"""The package's defaults from the two halves of the defaults study: FSDD digits and TIMIT-sample phones.

Each half judged every configuration on its training speakers alone (development accuracy, the test
speakers never used). A default has to serve both, so the choice is the configuration (front end | model)
with the best mean development accuracy over the two corpora, among those both halves ran.

    python recipes/choose_defaults.py exp/fsdd/study/defaults_study.json exp/timit/study/defaults_study.json
"""

import json
import sys

import numpy as np


def development(path):
    results = json.load(open(path))["results"]
    return {name: float(np.mean(list(r["inner"].values()) if isinstance(r["inner"], dict) else r["inner"]))
            for name, r in results.items()}


def main():
    fsdd, timit = development(sys.argv[1]), development(sys.argv[2])
    both = [c for c in fsdd if c in timit]
    mean = {c: (fsdd[c] + timit[c]) / 2 for c in both}
    print(f"{'front end | model':<74} {'FSDD dev':>9} {'TIMIT dev':>10} {'mean':>7}")
    for c in sorted(both, key=lambda c: -mean[c]):
        print(f"{c:<74} {100 * fsdd[c]:9.2f} {100 * timit[c]:10.2f} {100 * mean[c]:7.2f}")
    print(f"\nchosen: {max(both, key=lambda c: mean[c])}")


if __name__ == "__main__":
    main()
