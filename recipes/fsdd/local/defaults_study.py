#!/usr/bin/env python3
"""Which front end and model for digits spoken by unseen speakers: a nested leave-one-speaker-out study on FSDD.

Outer loop: each of the 6 speakers is held out in turn (the test set: all 500 of its recordings). For that
fold, every configuration is judged only on the other 5 speakers: leave one of them out in turn (train on 4,
test on the 5th) and average; the configuration with the best inner accuracy is then trained on all 5 and
scored on the held-out speaker. The held-out speaker never takes part in the choice. (A training on 4
speakers serves two inner folds of two outer folds: 15 per configuration.)

Prints every configuration's inner (development) accuracy per outer fold, its plain leave-one-speaker-out
accuracy for the record, and the nested result: the mean over the 6 held-out speakers of the choice each
fold made. Writes ``defaults_study.json``.

    python recipes/fsdd/local/defaults_study.py exp/fsdd/data/all exp/fsdd/study
"""

import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from acoustic_gmm.features import MfccConfig
from acoustic_gmm.storage import FeatureArchive, extract_corpus

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from study import MODELS, accuracy  # noqa: E402  (recipes/study.py)

FRONT_ENDS = {  # 13 MFCC (c0 included) + deltas + accelerations, as the package's defaults, then:
    "per-utterance CMN (old default)": {"cmvn": "mean"},
    "CMVN": {"cmvn": "meanvar"},
    "per-speaker CMVN": {"cmvn": "speaker"},
    "per-speaker CMVN, 30 dB VAD": {"cmvn": "speaker", "vad": True, "vad_db": 30.0},
    "feature warping 3 s": {"cmvn": "warp"},
    "per-speaker CMVN, 30 dB VAD, 20 MFCC": {"cmvn": "speaker", "vad": True, "vad_db": 30.0, "n_mfcc": 20},
}


def main():
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for fi, (fname, options) in enumerate(FRONT_ENDS.items()):
        feats = out / f"feats{fi}.h5"
        if not feats.exists():
            extract_corpus(data, feats, config=MfccConfig(**options))
        with FeatureArchive(feats) as fa:
            speakers = sorted(set(fa.speakers.values()))
            by = {s: [u for u in fa.ids if fa.speakers[u] == s] for s in speakers}
            for model in MODELS:
                if model == "3 slices x 16":  # the TIMIT recipe's earlier model (fixed slices lose here)
                    continue
                t0 = time.time()
                pair = {}  # trained without speakers a and b: accuracy on a and on b
                for a, b in itertools.combinations(speakers, 2):
                    train = [u for s in speakers if s not in (a, b) for u in by[s]]
                    for held, other in ((a, b), (b, a)):
                        pair[(held, other)] = accuracy(fa, train, fa, by[held], model)
                loso = {s: accuracy(fa, [u for t in speakers if t != s for u in by[t]], fa, by[s], model)
                        for s in speakers}
                inner = {s: float(np.mean([pair[(t, s)] for t in speakers if t != s])) for s in speakers}
                results[f"{fname} | {model}"] = {"inner": inner, "loso": loso}
                print(f"{fname:<38} {model:<38} dev {100 * np.mean(list(inner.values())):6.2f}  "
                      f"LOSO {100 * np.mean(list(loso.values())):6.2f}  ({time.time() - t0:.0f} s)", flush=True)
    speakers = sorted(next(iter(results.values()))["loso"])
    chosen = {s: max(results, key=lambda c: (results[c]["inner"][s], -list(results).index(c))) for s in speakers}
    nested = {s: results[chosen[s]]["loso"][s] for s in speakers}
    print("\nnested: each held-out speaker scored with the configuration its 5 training speakers chose")
    for s in speakers:
        print(f"  {s:<10} {100 * nested[s]:6.2f} %  chosen: {chosen[s]}")
    print(f"  mean       {100 * np.mean(list(nested.values())):6.2f} %")
    (out / "defaults_study.json").write_text(json.dumps({"results": results, "chosen": chosen, "nested": nested},
                                                         indent=1))


if __name__ == "__main__":
    main()
