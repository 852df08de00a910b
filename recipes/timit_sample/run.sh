#!/usr/bin/env bash
# TIMIT sample: 39-class phone classification of hand-segmented phones. Train on the 12 speakers of
# dialect regions 1-6, test on the 4 of regions 7-8; 61 phones folded to 39 (Lee & Hon), 'q' dropped.
#
#   bash recipes/timit_sample/run.sh [--data DIR] [--exp DIR] [--stage N] [--stop-stage N] [--jobs N]
#
# Stages: 0 data dirs, 1 features, 2 baseline (one GMM per phone over its frames),
#         3 beginning/middle/end models with 20 ms of context and class priors, 4 results table;
# speaker verification: 5 lists and features (20 MFCC + deltas), 6 UBM (64) and enrolment (MAP, and
#         ML from scratch as the baseline), 7 scoring (top-5 and exact), 8 results table.
set -euo pipefail
data=../shared/data/timit_sample; exp=exp/timit; stop_stage=8
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../common.sh"

if run 0; then
  python "$here/local/prepare_data.py" --data "$data" --out "$exp/data"
fi
if run 1; then
  for set in phones_train phones_test; do
    acoustic-gmm features "$exp/data/$set" --out "$exp/$set.h5" --overwrite $jobs
    # The same phones with the frames 20 ms beyond each edge: the transitions carry their identity.
    acoustic-gmm features "$exp/data/$set" --out "$exp/${set}_ctx.h5" --overwrite --context-ms 20 $jobs
  done
fi
if run 2; then
  mkdir -p "$exp/baseline"
  acoustic-gmm train --overwrite "$exp/phones_train.h5" -k 16 --out "$exp/baseline/models.h5" $jobs
  acoustic-gmm evaluate --overwrite "$exp/baseline/models.h5" "$exp/phones_test.h5" --metrics "$exp/baseline/metrics.json"
fi
if run 3; then
  mkdir -p "$exp/bme"
  acoustic-gmm train --overwrite "$exp/phones_train_ctx.h5" -k 16 --slices 3 --priors --out "$exp/bme/models.h5" $jobs
  acoustic-gmm evaluate --overwrite "$exp/bme/models.h5" "$exp/phones_test_ctx.h5" --metrics "$exp/bme/metrics.json"
fi
if run 4; then
  python - "$exp" <<'PY'
import json, sys
from pathlib import Path
exp = Path(sys.argv[1]); exp.mkdir(parents=True, exist_ok=True); summary = {}
print(f"\n{'TIMIT sample, 39 phones (1552 test segments)':<62} {'segments':>9} {'frames':>8}")
for name, what in (("baseline", "one GMM per phone (16 components)"),
                   ("bme", "beginning/middle/end GMMs, 20 ms context, priors")):
    path = exp / name / "metrics.json"
    if path.exists():
        m = json.loads(path.read_text())
        summary[name] = {"accuracy": m["accuracy"], "frame_accuracy": m["frame_accuracy"], "n": m["n"]}
        print(f"{what:<62} {100 * m['accuracy']:8.2f}% {100 * m['frame_accuracy']:7.2f}%")
(exp / "metrics.json").write_text(json.dumps(summary, indent=1))
PY
fi
if run 5; then
  python "$here/local/sv_lists.py" "$exp/data/utts" "$exp/sv"
  # Speaker information lives in the higher cepstra too: 20 coefficients (13 gave 7.5 % EER here).
  acoustic-gmm features "$exp/data/utts" --out "$exp/sv/feats.h5" --overwrite --n-mfcc 20 --deltas 1 $jobs
fi
if run 6; then
  acoustic-gmm ubm --overwrite "$exp/sv/feats.h5" -k 64 --utts "$exp/sv/ubm.list" --out "$exp/sv/ubm.h5"
  acoustic-gmm enroll --overwrite "$exp/sv/ubm.h5" "$exp/sv/feats.h5" --enroll "$exp/sv/enroll.spk2utt" -r 16 --out "$exp/sv/map.h5"
  acoustic-gmm enroll --overwrite "$exp/sv/ubm.h5" "$exp/sv/feats.h5" --enroll "$exp/sv/enroll.spk2utt" --ml --out "$exp/sv/ml.h5"
fi
if run 7; then
  for system in map:top5 map:exact ml:exact; do
    models=${system%%:*}; how=${system##*:}; opt=$([ "$how" = exact ] && echo --exact || echo --top-c 5)
    acoustic-gmm verify --overwrite "$exp/sv/$models.h5" "$exp/sv/trials" "$exp/sv/feats.h5" $opt --scores "$exp/sv/scores.$models.$how"
    acoustic-gmm eer --overwrite "$exp/sv/scores.$models.$how" "$exp/sv/trials" --metrics "$exp/sv/metrics.$models.$how.json" > /dev/null
  done
fi
if run 8; then
  python - "$exp/sv" <<'PY'
import json, sys
from pathlib import Path
sv = Path(sys.argv[1]); summary = {}
print(f"\n{'TIMIT sample speaker verification (UBM 64)':<44} {'EER':>7} {'minDCF .01':>10} {'trials':>14}")
for key, what in (("map.top5", "MAP means r=16, top-5 scoring"), ("map.exact", "MAP means r=16, exact scoring"),
                  ("ml.exact", "ML GMMs from scratch (64), exact")):
    m = json.loads((sv / f"metrics.{key}.json").read_text())
    summary[key] = m
    print(f"{what:<44} {100 * m['eer']:6.2f}% {m['min_dcf_0.01']:10.3f} {m['n_target']:>5} / {m['n_nontarget']:>5}")
(sv / "metrics.json").write_text(json.dumps(summary, indent=1))
PY
fi
