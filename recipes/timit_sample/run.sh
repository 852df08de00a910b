#!/usr/bin/env bash
# TIMIT sample: 39-class phone classification of hand-segmented phones. Train on the 12 speakers of
# dialect regions 1-6, test on the 4 of regions 7-8; 61 phones folded to 39 (Lee & Hon), 'q' dropped.
#
#   bash recipes/timit_sample/run.sh [--data DIR] [--exp DIR] [--stage N] [--stop-stage N] [--jobs N]
#
# Stages: 0 data dirs, 1 features, 2 baseline (one GMM per phone over its frames),
#         3 beginning/middle/end models with 20 ms of context and class priors, 4 results table;
# speaker verification: 5 lists, front-end study on the UBM speakers and features, 6 UBM (64), enrolment
#         (MAP, and ML from scratch as the baseline) and i-vectors (extractor, back ends) from the same UBM,
#         7 scoring (GMM-UBM top-5 and exact; i-vectors cosine and PLDA), 8 results table;
# 9 (not run by default) choosing per corpus: `acoustic-gmm select` on the 12 training speakers (20 ms of context,
#         priors), its choice on the test speakers beside the fixed defaults and the recipe's 3 slices x 8; the
#         one-GMM model of the plain scikit-learn script beside ours and the script itself; every configuration of
#         select's grid on the test speakers (recipes/grid_study.py);
# 10 (not run by default) feature transforms: the recipe's models and --lda-mllt 40 and --sat versions of them,
#         plain and adapted to each test speaker (MLLR or fMLLR, then MAP).
set -euo pipefail
data=../shared/data/timit_sample; exp=exp/timit; stop_stage=8
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../common.sh"
# the feature options the front-end study chose for a system (gmm or ivector)
fe_options() { python -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$exp/sv/choice.json" "$1"; }

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
  acoustic-gmm train --overwrite "$exp/phones_train.h5" -k 16 --slices 1 --out "$exp/baseline/models.h5" $jobs
  acoustic-gmm evaluate --overwrite "$exp/baseline/models.h5" "$exp/phones_test.h5" --metrics "$exp/baseline/metrics.json"
fi
if run 3; then
  mkdir -p "$exp/bme"
  # 3 slices x 8 components (and the default variance floor): the defaults study's choice on the training
  # speakers (local/defaults_study.py), as per-speaker CMVN, the default front end, is
  acoustic-gmm train --overwrite "$exp/phones_train_ctx.h5" -k 8 --slices 3 --priors --out "$exp/bme/models.h5" $jobs
  acoustic-gmm evaluate --overwrite "$exp/bme/models.h5" "$exp/phones_test_ctx.h5" --metrics "$exp/bme/metrics.json"
fi
if run 4; then
  python - "$exp" <<'PY'
import json, sys
from pathlib import Path
exp = Path(sys.argv[1]); exp.mkdir(parents=True, exist_ok=True); summary = {}
print(f"\n{'TIMIT sample, 39 phones (1552 test segments)':<62} {'segments':>9} {'frames':>8}")
for name, what in (("baseline", "one GMM per phone (16 components)"),
                   ("bme", "beginning/middle/end GMMs (3 x 8), 20 ms context, priors")):
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
  # The front end of each system is chosen on the 8 UBM speakers alone (4 folds of 6 + 2): see the script.
  python "$here/local/frontend_study.py" "$exp/data/utts" "$exp/sv"
  for fe in gmm ivector; do
    acoustic-gmm features "$exp/data/utts" --out "$exp/sv/feats.$fe.h5" --overwrite $(fe_options $fe) $jobs
  done
fi
if run 6; then
  # For each front end, one UBM (64) serves both systems: MAP enrolment (and ML from scratch as the baseline),
  # and i-vectors (dimension 50; the extractor learns without labels from every sentence that is not a test
  # sentence; the back end is trained on the UBM speakers).
  for fe in gmm ivector; do
    d="$exp/sv/$fe"; mkdir -p "$d"; f="$exp/sv/feats.$fe.h5"
    acoustic-gmm ubm --overwrite "$f" -k 64 --utts "$exp/sv/ubm.list" --out "$d/ubm.h5"
    acoustic-gmm enroll --overwrite "$d/ubm.h5" "$f" --enroll "$exp/sv/enroll.spk2utt" -r 16 --out "$d/map.h5"
    acoustic-gmm enroll --overwrite "$d/ubm.h5" "$f" --enroll "$exp/sv/enroll.spk2utt" --ml --out "$d/ml.h5"
    { cat "$exp/sv/ubm.list"; cut -d' ' -f2- "$exp/sv/enroll.spk2utt" | tr ' ' '\n'; } > "$d/extractor.list"
    acoustic-gmm ivector train --overwrite "$d/ubm.h5" "$f" --dim 50 --utts "$d/extractor.list" --out "$d/extractor.h5"
    acoustic-gmm ivector extract --overwrite "$d/extractor.h5" "$f" --out "$d/ivectors.h5"
    acoustic-gmm ivector backend --overwrite "$d/ivectors.h5" --utts "$exp/sv/ubm.list" --scoring cosine --out "$d/cosine.h5"
    acoustic-gmm ivector backend --overwrite "$d/ivectors.h5" --utts "$exp/sv/ubm.list" --scoring plda --lda-dim 7 --out "$d/plda.h5"
  done
fi
if run 7; then
  for fe in gmm ivector; do
    d="$exp/sv/$fe"; f="$exp/sv/feats.$fe.h5"
    for system in map:top5 map:exact ml:exact; do
      models=${system%%:*}; how=${system##*:}; opt=$([ "$how" = exact ] && echo --exact || echo --top-c 5)
      acoustic-gmm verify --overwrite "$d/$models.h5" "$exp/sv/trials" "$f" $opt --scores "$d/scores.$models.$how"
    done
    for backend in cosine plda; do
      acoustic-gmm ivector score --overwrite "$d/$backend.h5" "$exp/sv/trials" "$d/ivectors.h5" "$d/ivectors.h5" \
        --enroll "$exp/sv/enroll.spk2utt" --scores "$d/scores.ivector.$backend"
    done
    for scores in "$d"/scores.*; do
      acoustic-gmm eer --overwrite "$scores" "$exp/sv/trials" --metrics "$d/metrics.${scores##*/scores.}.json" > /dev/null
    done
  done
fi
if run 8; then
  python - "$exp/sv" <<'PY'
import json, sys
from pathlib import Path
sv = Path(sys.argv[1]); summary = {}
study = json.loads((sv / "frontend_study.json").read_text())
print(f"\n{'TIMIT sample speaker verification (UBM 64)':<46} {'EER':>7} {'minDCF .01':>10} {'trials':>14}")
for fe in ("gmm", "ivector"):
    name = study["choice"][fe]
    print(f"front end {name!r} (chosen on development speakers for {'GMM-UBM' if fe == 'gmm' else 'i-vectors'}):")
    for key, what in (("map.top5", "GMM-UBM: MAP means r=16, top-5 scoring"),
                      ("map.exact", "GMM-UBM: MAP means r=16, exact scoring"),
                      ("ml.exact", "ML GMMs from scratch (64), exact"),
                      ("ivector.cosine", "i-vectors (50), cosine"),
                      ("ivector.plda", "i-vectors (50), LDA 7 + PLDA")):
        m = json.loads((sv / fe / f"metrics.{key}.json").read_text())
        summary[f"{fe}:{key}"] = m
        print(f"  {what:<44} {100 * m['eer']:6.2f}% {m['min_dcf_0.01']:10.3f} {m['n_target']:>5} / {m['n_nontarget']:>5}")
(sv / "metrics.json").write_text(json.dumps(summary, indent=1))
PY
fi
if run 9; then
  for set in phones_train phones_test; do
    acoustic-gmm features "$exp/data/$set" --out "$exp/${set}_raw20.h5" --overwrite --n-mfcc 20 --context-ms 20 $jobs
    acoustic-gmm features "$exp/data/$set" --out "$exp/${set}_raw20_noctx.h5" --overwrite --n-mfcc 20 $jobs
  done
  d="$exp/select"; mkdir -p "$d"
  acoustic-gmm select --overwrite "$exp/phones_train_raw20.h5" --priors --out "$d/models.h5" $jobs > "$d/selection.txt"
  echo -n "select ($(tail -1 "$d/selection.txt" | sed 's/.*h5: //; s/, [0-9]* classes.*//')): "
  acoustic-gmm evaluate --overwrite "$d/models.h5" "$exp/phones_test_raw20.h5" --metrics "$d/metrics.json"
  # the fixed defaults (3 fixed slices for these short segments) and the recipe's choice (13 cepstra, priors), and the
  # plain script's model (no context, no priors: the script's frames are the segment's own)
  for system in "defaults:raw20:--n-mfcc 13 --priors" "slices:raw20:--n-mfcc 13 --slices 3 -k 8 --priors" \
                "gmm:raw20_noctx:--cmvn meanvar --slices 1 -k 16"; do
    name=${system%%:*}; feats=${system#*:}; options=${feats#*:}; feats=${feats%%:*}; mkdir -p "$d/$name"
    acoustic-gmm train --overwrite "$exp/phones_train_$feats.h5" $options --out "$d/$name/models.h5" $jobs > /dev/null 2>&1
    echo -n "$name ($options, phones_*_$feats.h5): "
    acoustic-gmm evaluate --overwrite "$d/$name/models.h5" "$exp/phones_test_$feats.h5" --metrics "$d/$name/metrics.json"
  done
  echo -n "the plain scikit-learn script: "
  python "$here/../sklearn_baseline.py" "$exp/data/phones_train" "$exp/data/phones_test"
  # every configuration of select's grid on the test speakers, beside what select saw (recipes/choose_defaults.py)
  python "$here/../grid_study.py" "$exp/phones_train_raw20.h5" --split "$exp/data/phones_train/utt2spk" \
    "$exp/data/phones_test/utt2spk" --test-feats "$exp/phones_test_raw20.h5" --priors --selected "$d/models.h5" \
    --out "$d/grid_study.json" $jobs
fi
if run 10; then
  for system in "bme:" "lda-mllt:--lda-mllt 40" "sat:--sat"; do
    name=${system%%:*}; d="$exp/transforms/$name"; mkdir -p "$d"
    acoustic-gmm train --overwrite "$exp/phones_train_ctx.h5" -k 8 --slices 3 --priors ${system#*:} --out "$d/models.h5" $jobs > /dev/null 2>&1
    for adapt in "plain:" "mllr:--adapt" "fmllr:--adapt --adapt-transform fmllr"; do
      echo -n "$name, ${adapt%%:*}: "
      acoustic-gmm evaluate --overwrite "$d/models.h5" "$exp/phones_test_ctx.h5" ${adapt#*:} --metrics "$d/metrics.${adapt%%:*}.json" 2> /dev/null
    done
  done
fi
