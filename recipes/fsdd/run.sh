#!/usr/bin/env bash
# FSDD (Free Spoken Digit Dataset): digit classification on the official split (takes 0-4 test) and
# leave-one-speaker-out, and speaker identification on the official split.
#
#   bash recipes/fsdd/run.sh [--data DIR] [--exp DIR] [--stage N] [--stop-stage N] [--jobs N]
#
# Stages: 0 data dirs, 1 features, 2 digits on the official split (one GMM per digit on the session front
#         end; on the default front end one GMM per digit, the default HMM states, and those + MMI), 3 the
#         same three leave-one-speaker-out, and the defaults adapted to the held-out speaker,
#         4 speaker id, 5 results table; 6 speaker verification (per speaker: UBM of the other five,
#         MAP and ML enrolment, and i-vectors from the same UBM; all test takes as trials),
#         7 verification table; 8 (not run by default: about 20 minutes) choosing per corpus, nested: for each
#         speaker, `acoustic-gmm select` on the other five, its choice on the held-out one (plain and adapted),
#         and the one-GMM model of the plain scikit-learn script beside ours and the script itself; then every
#         configuration of select's grid on every held-out speaker (recipes/grid_study.py); about 30 minutes;
#         9 (not run by default: about 15 minutes) feature transforms leave-one-speaker-out: --lda-mllt 40 and
#         speaker-adaptive training (--sat), plain and adapted (MLLR or fMLLR + MAP), and how much of the held-out
#         speaker's audio each adaptation needs (local/adapt_amount.py).
# Needs acoustic-gmm on PATH (make demo sets that up).
set -euo pipefail
data=../shared/data/fsdd; exp=exp/fsdd; stop_stage=7
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../common.sh"

# Two front ends. Within one recording session (the official split) level and channel carry
# information, so 'session' keeps them (no CMN): it is the speaker-id front end, and the digits' best on the
# official split. 'defaults' is what `acoustic-gmm features` does with no options (per-speaker CMVN: every
# speaker's mean and variance from all of its recordings; the held-out speaker's from its own, no labels),
# chosen by the defaults study (local/defaults_study.py, README) for speakers the models have not heard.
session="--cmvn none"

if run 0; then
  python "$here/local/prepare_data.py" --data "$data" --out "$exp/data"
fi
if run 1; then
  acoustic-gmm features "$exp/data/all" --out "$exp/session.h5" --overwrite $jobs $session
  acoustic-gmm features "$exp/data/all" --out "$exp/defaults.h5" --overwrite $jobs
fi
# train_eval NAME FEATS LABEL_KEY COMPONENTS: one GMM per class on the training takes, accuracy on the test takes.
train_eval() {
  mkdir -p "$exp/$1"
  acoustic-gmm train --overwrite "$2" --label-key "$3" -k "$4" --slices 1 --utts "$exp/data/train/utt2spk" --out "$exp/$1/models.h5" $jobs
  acoustic-gmm evaluate --overwrite "$exp/$1/models.h5" "$2" --utts "$exp/data/test/utt2spk" --metrics "$exp/$1/metrics.json"
}
# fit_eval DIR FEATS TRAIN_LIST TEST_LIST [train options]: models on one list, accuracy on the other.
fit_eval() {
  local dir=$1 feats=$2 train=$3 test=$4; shift 4
  mkdir -p "$dir"
  acoustic-gmm train --overwrite "$feats" --utts "$train" --out "$dir/models.h5" $jobs "$@" > /dev/null
  acoustic-gmm evaluate --overwrite "$dir/models.h5" "$feats" --utts "$test" --metrics "$dir/metrics.json"
}
# The digit systems on one split: one GMM of 16 per digit, the defaults (3 HMM states x 8), and the
# defaults followed by 4 iterations of MMI.
systems() {
  local name=$1 train=$2 test=$3
  echo -n "$name, one GMM per digit: "; fit_eval "$exp/$name-gmm" "$exp/defaults.h5" "$train" "$test" --slices 1 -k 16
  echo -n "$name, defaults: "; fit_eval "$exp/$name" "$exp/defaults.h5" "$train" "$test"
  echo -n "$name, defaults + MMI: "; fit_eval "$exp/$name-mmi" "$exp/defaults.h5" "$train" "$test" --mmi 4
}
if run 2; then
  train_eval digits "$exp/session.h5" label 16
  systems digits-defaults "$exp/data/train/utt2spk" "$exp/data/test/utt2spk"
fi
if run 3; then
  # Each speaker in turn heard by no model.
  for fold in "$exp"/data/loso/*.test; do
    spk=$(basename "$fold" .test)
    systems "loso-$spk" "$exp/data/loso/$spk.train" "$fold"
    # The default models adapted to the held-out speaker's own (unlabelled) test utterances: MLLR + MAP
    # from first-pass labels, until no label changes (Kaldi's two-pass per-speaker decoding, for GMM classes).
    echo -n "loso-$spk, defaults adapted to $spk: "
    acoustic-gmm evaluate --overwrite "$exp/loso-$spk/models.h5" "$exp/defaults.h5" --utts "$fold" --adapt \
      --metrics "$exp/loso-$spk/metrics.adapt.json"
  done
fi
if run 4; then
  train_eval speakers "$exp/session.h5" speaker 32
fi
if run 5; then
  python "$here/local/results.py" "$exp"
fi
if run 6; then
  # 20 cepstra + deltas, CMN, VAD: the verification front end (speaker information is in the higher cepstra).
  # UBM of 256: with 450 enrolment takes a 64-component ML GMM is as good as MAP (1.33 % EER both); at 256
  # the speaker's own data no longer supports a model of that size and MAP (means, weights, variances) wins.
  acoustic-gmm features "$exp/data/all" --out "$exp/sv.h5" --overwrite --n-mfcc 20 --deltas 1 --cmvn mean --vad --vad-db 30 $jobs
  mkdir -p "$exp/sv"
  for system in map ml ivector; do : > "$exp/sv/scores.$system"; : > "$exp/sv/trials"; done
  for lists in "$exp"/data/sv/*.trials; do
    spk=$(basename "$lists" .trials); d="$exp/sv/$spk"; mkdir -p "$d"
    acoustic-gmm ubm --overwrite "$exp/sv.h5" -k 256 --utts "$exp/data/sv/$spk.ubm" --out "$d/ubm.h5" > /dev/null
    acoustic-gmm enroll --overwrite "$d/ubm.h5" "$exp/sv.h5" --enroll "$exp/data/sv/$spk.spk2utt" --adapt mwv -r 16 --out "$d/map.h5" > /dev/null
    acoustic-gmm enroll --overwrite "$d/ubm.h5" "$exp/sv.h5" --enroll "$exp/data/sv/$spk.spk2utt" --ml --out "$d/ml.h5" > /dev/null 2>&1
    for system in map ml; do
      acoustic-gmm verify --overwrite "$d/$system.h5" "$lists" "$exp/sv.h5" --scores "$d/scores.$system" > /dev/null
      cat "$d/scores.$system" >> "$exp/sv/scores.$system"
    done
    # i-vectors (dimension 100) from the same UBM. The extractor learns without labels from every take that is
    # not a test take; the back end (centring; cosine, as 5 speakers are too few for PLDA) from the UBM's.
    { cat "$exp/data/sv/$spk.ubm"; cut -d' ' -f2- "$exp/data/sv/$spk.spk2utt" | tr ' ' '\n'; } > "$d/extractor.list"
    acoustic-gmm ivector train --overwrite "$d/ubm.h5" "$exp/sv.h5" --dim 100 --utts "$d/extractor.list" --out "$d/extractor.h5" > /dev/null
    acoustic-gmm ivector extract --overwrite "$d/extractor.h5" "$exp/sv.h5" --out "$d/ivectors.h5" > /dev/null
    acoustic-gmm ivector backend --overwrite "$d/ivectors.h5" --utts "$exp/data/sv/$spk.ubm" --scoring cosine --out "$d/backend.h5" > /dev/null
    acoustic-gmm ivector score --overwrite "$d/backend.h5" "$lists" "$d/ivectors.h5" "$d/ivectors.h5" --enroll "$exp/data/sv/$spk.spk2utt" --scores "$d/scores.ivector" > /dev/null
    cat "$d/scores.ivector" >> "$exp/sv/scores.ivector"
    cat "$lists" >> "$exp/sv/trials"
  done
fi
if run 7; then
  echo
  for system in map ml ivector; do
    echo -n "FSDD speaker verification, pooled over 6 folds, $system: "
    acoustic-gmm eer --overwrite "$exp/sv/scores.$system" "$exp/sv/trials" --metrics "$exp/sv/metrics.$system.json" \
      $([ "$system" = map ] && echo --det "$exp/sv/det.png")
  done
fi
if run 8; then
  # One raw archive with 20 cepstra: every configuration of select's grid reads it through its own view.
  acoustic-gmm features "$exp/data/all" --out "$exp/raw20.h5" --overwrite --n-mfcc 20 $jobs
  mkdir -p "$exp/select"
  for fold in "$exp"/data/loso/*.test; do
    spk=$(basename "$fold" .test); d="$exp/select/$spk"; mkdir -p "$d"
    acoustic-gmm select --overwrite "$exp/raw20.h5" --utts "$exp/data/loso/$spk.train" --out "$d/models.h5" $jobs > "$d/selection.txt"
    echo -n "loso-$spk, select ($(tail -1 "$d/selection.txt" | sed 's/.*h5: //; s/, [0-9]* classes.*//')): "
    acoustic-gmm evaluate --overwrite "$d/models.h5" "$exp/raw20.h5" --utts "$fold" --metrics "$d/metrics.json"
    echo -n "loso-$spk, select, adapted: "
    acoustic-gmm evaluate --overwrite "$d/models.h5" "$exp/raw20.h5" --utts "$fold" --adapt --metrics "$d/metrics.adapt.json"
    echo -n "loso-$spk, one GMM of 16, per-utterance CMVN, 20 cepstra: "
    fit_eval "$exp/select/$spk-gmm" "$exp/raw20.h5" "$exp/data/loso/$spk.train" "$fold" --slices 1 -k 16 --cmvn meanvar
    echo -n "loso-$spk, the plain scikit-learn script: "
    python "$here/../sklearn_baseline.py" "$exp/data/all" "$exp/data/all" "$exp/data/loso/$spk.train" "$fold"
  done
  # every configuration of select's grid on every held-out speaker, beside what select saw (recipes/choose_defaults.py)
  splits=(); selected=()
  for fold in "$exp"/data/loso/*.test; do
    spk=$(basename "$fold" .test); splits+=(--split "$exp/data/loso/$spk.train" "$fold"); selected+=("$exp/select/$spk/models.h5")
  done
  python "$here/../grid_study.py" "$exp/raw20.h5" "${splits[@]}" --selected "${selected[@]}" --out "$exp/select/grid_study.json" $jobs
fi
if run 9; then
  for fold in "$exp"/data/loso/*.test; do
    spk=$(basename "$fold" .test)
    for system in "lda-mllt:--lda-mllt 40" "sat:--sat"; do
      name=${system%%:*}; d="$exp/loso-$spk-$name"; mkdir -p "$d"
      acoustic-gmm train --overwrite "$exp/defaults.h5" --utts "$exp/data/loso/$spk.train" ${system#*:} --out "$d/models.h5" $jobs > /dev/null 2>&1
      for adapt in "plain:" "mllr:--adapt" "fmllr:--adapt --adapt-transform fmllr"; do
        echo -n "loso-$spk, $name, ${adapt%%:*}: "
        acoustic-gmm evaluate --overwrite "$d/models.h5" "$exp/defaults.h5" --utts "$fold" ${adapt#*:} \
          --metrics "$d/metrics.${adapt%%:*}.json" 2> /dev/null
      done
    done
  done
  echo "adaptation by amount of the held-out speaker's audio, the default models:"
  python "$here/local/adapt_amount.py" "$exp" --transform mllr fmllr
  echo "the same, models of speaker-adaptive training:"
  python "$here/local/adapt_amount.py" "$exp" --transform mllr fmllr --models "$exp/loso-{speaker}-sat/models.h5"
fi
