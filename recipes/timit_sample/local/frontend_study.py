#!/usr/bin/env python3
"""Which front end for speaker verification on the TIMIT sample: chosen on development speakers only.

Development data: the 8 UBM speakers (regions 1-4) alone, in 4 folds; in each, 6 speakers train the UBM
(64), the i-vector extractor (dimension 50) and the back end, and the other 2 are enrolled (first 5
sentences) and tested (the other 5) against both models: 10 target and 10 non-target trials a fold,
40 and 40 pooled.  The evaluation speakers (regions 5-8) are never looked at for the choice.

For every front end, the GMM-UBM system (MAP means, r=16, top-5 scoring) and the i-vector system
(extractor trained without labels on every utterance that is not a test utterance; cosine scoring after
centring on the training speakers and length normalisation: 6 speakers are too few for PLDA or LDA) get a
pooled development EER; each system then takes the front end with the lowest (ties: the first listed).
Their evaluation-protocol EERs are printed too, for the record, never used to choose.  Writes
``choice.json`` with the feature options of each system's winner.

    python recipes/timit_sample/local/frontend_study.py exp/timit/data/utts exp/timit/sv
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from acoustic_gmm.speaker import Scorer, Trials, eer, enroll, score_trials, train_extractor, train_ubm, utterance_stats
from acoustic_gmm.storage import FeatureArchive, read_data_dir

FRONT_ENDS = {  # name -> `acoustic-gmm features` options (20 cepstra: speaker information is in the higher ones)
    "CMN, deltas": "--n-mfcc 20 --deltas 1 --cmvn mean",
    "CMN, no deltas": "--n-mfcc 20 --deltas 0 --cmvn mean",
    "CMVN, deltas": "--n-mfcc 20 --deltas 1 --cmvn meanvar",
    "no CMN, deltas": "--n-mfcc 20 --deltas 1 --cmvn none",
    "sliding CMN 3 s, deltas": "--n-mfcc 20 --deltas 1 --cmvn sliding",
    "feature warping 3 s, deltas": "--n-mfcc 20 --deltas 1 --cmvn warp",
    "feature warping 3 s, no deltas": "--n-mfcc 20 --deltas 0 --cmvn warp",
    "CMN, deltas, Kaldi VAD": "--n-mfcc 20 --deltas 1 --cmvn mean --vad --vad-rule kaldi",
    "CMN, deltas, 30 dB VAD": "--n-mfcc 20 --deltas 1 --cmvn mean --vad --vad-db 30",
}
UBM, DIM, ITERATIONS = 64, 50, 10


def systems(feats, train_spk, enrolled, utts):
    """(GMM-UBM scores, i-vector scores, targets) of one split: UBM etc. on train_spk, trials on enrolled."""
    train_ids = [u for s in train_spk for u in utts[s]]
    groups = {s: utts[s][:5] for s in enrolled}
    trials = Trials([m for s in enrolled for _ in utts[s][5:] for m in enrolled],
                    [u for s in enrolled for u in utts[s][5:] for _ in enrolled],
                    [m == s for s in enrolled for _ in utts[s][5:] for m in enrolled])
    ubm = train_ubm(feats, UBM, ids=train_ids)[0].model_
    with FeatureArchive(feats) as fa:
        gmm = score_trials(Scorer(ubm, enroll(ubm, fa, groups, relevance=16.0)), trials, fa, top_c=5)
    stats = utterance_stats(ubm, feats)
    pos = {u: i for i, u in enumerate(stats.ids)}
    # the extractor learns without labels from every utterance that is not a test utterance
    unlabelled = train_ids + [u for s in enrolled for u in groups[s]]
    ex = train_extractor(ubm, stats.take([pos[u] for u in unlabelled]), DIM, n_iter=ITERATIONS)
    W = ex.extract(stats)
    mu = W[[pos[u] for u in train_ids]].mean(0)

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    # as `acoustic-gmm ivector backend --scoring cosine`: centred, length-normalised; a model is the unit mean
    models = {s: unit(unit(W[[pos[u] for u in groups[s]]] - mu).mean(0)) for s in enrolled}
    iv = np.array([models[m] @ unit(W[pos[u]] - mu) for m, u in zip(trials.models, trials.utterances)])
    return gmm, iv, np.array(trials.targets)


def pooled_eer(parts):
    s = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    return 100 * eer(s[t], s[~t])


def main():
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    study = out / "frontends"
    study.mkdir(parents=True, exist_ok=True)
    dd = read_data_dir(data)
    region = {spk: int(str(dd.wav[u]).split("/dr")[-1][0]) for u, spk in dd.utt2spk.items()}
    speakers = sorted(set(dd.utt2spk.values()))
    utts = {s: sorted(u for u in dd.utterances if dd.utt2spk[u] == s) for s in speakers}
    dev = [s for s in speakers if region[s] <= 4]
    evaluation = [s for s in speakers if region[s] > 4]
    rows = {}
    print(f"\n{'EER %':<32} {'development':>15}    {'evaluation (not used)':>21}")
    print(f"{'front end':<32} {'GMM-UBM':>7} {'i-vec':>7}    {'GMM-UBM':>7} {'i-vec':>7}")
    for i, (name, options) in enumerate(FRONT_ENDS.items()):
        feats = study / f"feats{i}.h5"
        subprocess.run(["acoustic-gmm", "features", str(data), "--out", str(feats), "--overwrite", *options.split()],
                       check=True, stdout=subprocess.DEVNULL)
        dev_parts = {"gmm": [], "ivector": []}
        for fold in range(4):
            held = dev[2 * fold:2 * fold + 2]
            gmm, iv, t = systems(feats, [s for s in dev if s not in held], held, utts)
            dev_parts["gmm"].append((gmm, t))
            dev_parts["ivector"].append((iv, t))
        gmm, iv, t = systems(feats, dev, evaluation, utts)
        rows[name] = {"options": options, "dev_gmm": pooled_eer(dev_parts["gmm"]),
                      "dev_ivector": pooled_eer(dev_parts["ivector"]),
                      "eval_gmm": pooled_eer([(gmm, t)]), "eval_ivector": pooled_eer([(iv, t)])}
        r = rows[name]
        print(f"{name:<32} {r['dev_gmm']:7.2f} {r['dev_ivector']:7.2f}    {r['eval_gmm']:7.2f} "
              f"{r['eval_ivector']:7.2f}", flush=True)
    choice = {system: min(rows, key=lambda n: (rows[n][f"dev_{system}"], list(rows).index(n)))
              for system in ("gmm", "ivector")}
    for system, name in choice.items():
        print(f"chosen on development speakers for {system}: {name} ({rows[name]['options']})")
    (out / "frontend_study.json").write_text(json.dumps({"rows": rows, "choice": choice}, indent=1))
    (out / "choice.json").write_text(json.dumps({s: rows[n]["options"] for s, n in choice.items()}))


if __name__ == "__main__":
    main()
