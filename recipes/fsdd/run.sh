#!/usr/bin/env bash
# FSDD (Free Spoken Digit Dataset): digit classification on the official split (takes 0-4 test) and
# leave-one-speaker-out, and speaker identification on the official split.
#
#   bash recipes/fsdd/run.sh [--data DIR] [--exp DIR] [--stage N] [--stop-stage N] [--jobs N]
#
# Stages: 0 data dirs, 1 features, 2 digits (official split), 3 digits (leave-one-speaker-out),
#         4 speaker id, 5 results table.  Needs acoustic-gmm on PATH (make demo sets that up).
set -euo pipefail
data=../shared/data/fsdd; exp=exp/fsdd; stop_stage=5
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../common.sh"

# Two front ends. Within one recording session (the official split) level and channel carry
# information, so 'session' keeps them (no CMN). Across speakers they are noise: 'robust' normalises
# mean and variance over all of each speaker's utterances (Kaldi's per-speaker CMVN; the held-out
# speaker's statistics come from its own recordings, no labels) and drops frames 30 dB below the
# loudest (VAD). Per-utterance CMVN reached 86.3 % leave-one-speaker-out, per-speaker 92.2 %.
session="--cmvn none"
robust="--cmvn speaker --vad --vad-db 30"

if run 0; then
  python "$here/local/prepare_data.py" --data "$data" --out "$exp/data"
fi
if run 1; then
  acoustic-gmm features "$exp/data/all" --out "$exp/session.h5" --overwrite $jobs $session
  acoustic-gmm features "$exp/data/all" --out "$exp/robust.h5" --overwrite $jobs $robust
fi
# train_eval NAME FEATS LABEL_KEY COMPONENTS: models on the training takes, accuracy on the test takes.
train_eval() {
  mkdir -p "$exp/$1"
  acoustic-gmm train "$2" --label-key "$3" -k "$4" --utts "$exp/data/train/utt2spk" --out "$exp/$1/models.h5" $jobs
  acoustic-gmm evaluate "$exp/$1/models.h5" "$2" --utts "$exp/data/test/utt2spk" --metrics "$exp/$1/metrics.json"
}
if run 2; then
  train_eval digits "$exp/session.h5" label 16
fi
if run 3; then
  for fold in "$exp"/data/loso/*.test; do
    spk=$(basename "$fold" .test); dir="$exp/loso-$spk"; mkdir -p "$dir"
    acoustic-gmm train "$exp/robust.h5" --label-key label -k 16 --utts "$exp/data/loso/$spk.train" \
      --out "$dir/models.h5" $jobs > /dev/null
    echo -n "leave out $spk: "
    acoustic-gmm evaluate "$dir/models.h5" "$exp/robust.h5" --utts "$fold" --metrics "$dir/metrics.json"
  done
fi
if run 4; then
  train_eval speakers "$exp/session.h5" speaker 32
fi
if run 5; then
  python "$here/local/results.py" "$exp"
fi
