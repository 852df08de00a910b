#!/usr/bin/env python3
"""Which front end and model for phones of unseen speakers: the TIMIT-sample half of the defaults study.

The recipe's split is kept: 12 training speakers (dialect regions 1-6), 4 test speakers (regions 7-8).
Every configuration is judged on the 12 training speakers alone, in 3 inner folds (train on 8, score the
other 4; the speakers sorted, every third one held out); the configuration with the best mean inner
accuracy is then trained on all 12 and scored on the 4 test speakers, which never take part in the choice.
Hand-segmented phones, 61 folded to 39, 20 ms of context beyond each edge, class priors (the recipe's
setting). Prints every configuration's inner accuracy and its test accuracy for the record, and the choice.
Writes ``defaults_study.json``.

    python recipes/timit_sample/local/defaults_study.py exp/timit/data exp/timit/study
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from acoustic_gmm.features import MfccConfig
from acoustic_gmm.storage import FeatureArchive, extract_corpus

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from study import MODELS, accuracy  # noqa: E402  (recipes/study.py)

FRONT_ENDS = {  # 13 MFCC (c0 included) + deltas + accelerations, 20 ms of context, then:
    "per-utterance CMN (old default)": {"cmvn": "mean"},
    "CMVN": {"cmvn": "meanvar"},
    "per-speaker CMVN": {"cmvn": "speaker"},
    "feature warping 3 s": {"cmvn": "warp"},
}


def main():
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for fi, (fname, options) in enumerate(FRONT_ENDS.items()):
        paths = {}
        for part in ("train", "test"):
            paths[part] = out / f"feats{fi}.{part}.h5"
            if not paths[part].exists():
                extract_corpus(data / f"phones_{part}", paths[part],
                               config=MfccConfig(context_ms=20.0, **options), progress=False)
        with FeatureArchive(paths["train"]) as tr, FeatureArchive(paths["test"]) as te:
            speakers = sorted(set(tr.speakers.values()))
            folds = [speakers[i::3] for i in range(3)]
            for model in MODELS:
                t0 = time.time()
                inner = [accuracy(tr, [u for u in tr.ids if tr.speakers[u] not in held], tr,
                                  [u for u in tr.ids if tr.speakers[u] in held], model, priors=True) for held in folds]
                test = accuracy(tr, None, te, te.ids, model, priors=True)
                results[f"{fname} | {model}"] = {"inner": inner, "test": test}
                print(f"{fname:<34} {model:<38} dev {100 * np.mean(inner):6.2f}  test {100 * test:6.2f}  "
                      f"({time.time() - t0:.0f} s)", flush=True)
    chosen = max(results, key=lambda c: (np.mean(results[c]["inner"]), -list(results).index(c)))
    print(f"\nchosen on the training speakers: {chosen}; on the 4 test speakers: "
          f"{100 * results[chosen]['test']:.2f} %")
    (out / "defaults_study.json").write_text(json.dumps({"results": results, "chosen": chosen}, indent=1))


if __name__ == "__main__":
    main()
