#!/usr/bin/env python3
"""Demo: fit one GMM to real MFCC frames of a few FSDD recordings and watch EM work.

Prints the average per-frame log-likelihood after every EM iteration while the model grows
1 -> 2 -> 4 ... -> K by splitting, then the fitted model's BIC and a save/load check.
This is the stand-in for the full digit-classification recipe that comes next.

    python recipes/fsdd/fit_gmm.py --data ../shared/data/fsdd --components 32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "local"))
import fsdd_data  # noqa: E402

from acoustic_gmm import GMM  # noqa: E402
from acoustic_gmm.features import MfccConfig  # noqa: E402
from acoustic_gmm.storage import extract_files  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/fsdd", help="FSDD folder holding recordings/")
    ap.add_argument("--components", type=int, default=32)
    ap.add_argument("--files", type=int, default=300, help="how many training recordings to use")
    args = ap.parse_args()

    root = fsdd_data.locate(args.data)
    wavs = sorted(p for p in (root / "recordings").glob("*.wav") if fsdd_data.parse_name(p)[2] >= 5)
    wavs = wavs[:: max(1, len(wavs) // args.files)][: args.files]
    t0 = time.perf_counter()
    X = np.vstack([frames for frames, _ in extract_files(wavs, config=MfccConfig(cmvn="mean"))])  # MFCC + d + dd, CMN
    print(f"{len(wavs)} FSDD training recordings -> {X.shape[0]:,} frames x {X.shape[1]} MFCC+d+dd "
          f"({time.perf_counter() - t0:.1f} s)")

    def show(iteration: int, k: int, avg_ll: float) -> None:
        print(f"  iter {iteration:3d}  K={k:3d}  avg log-likelihood/frame {avg_ll:9.4f}")

    t0 = time.perf_counter()
    gmm = GMM(args.components, init="split").fit(X, progress=show)
    print(f"fitted K={args.components} in {time.perf_counter() - t0:.2f} s: converged={gmm.converged_}, "
          f"{gmm.n_iter_} iterations at full size, {len(gmm.history_)} in all")
    print(f"BIC {gmm.bic(X):,.0f}   AIC {gmm.aic(X):,.0f}")
    with tempfile.TemporaryDirectory() as tmp:
        gmm.save(Path(tmp) / "demo.h5")
        same = np.allclose(GMM.load(Path(tmp) / "demo.h5").score_samples(X), gmm.score_samples(X))
    print(f"saved and reloaded: identical scores = {same}")


if __name__ == "__main__":
    main()
