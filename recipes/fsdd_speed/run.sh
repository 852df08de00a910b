#!/usr/bin/env bash
# A third development corpus made from FSDD (local/make_corpus.py): 16 kHz, 30 pseudo-speakers of about 100
# utterances (each real speaker at five speeds, 0.90-1.10, on disjoint takes), three folds that each hold out
# every pseudo-speaker of two real speakers. No choice of the package's defaults was made on it.
#
#   bash recipes/fsdd_speed/run.sh [--data DIR] [--exp DIR] [--stage N] [--stop-stage N] [--jobs N]
#
# Stages: 0 the corpus and data dirs (audio under EXP/audio), 1 one raw archive with 20 cepstra, 2 per fold:
#         `acoustic-gmm select` on the training speakers, its choice and the fixed defaults on the test
#         speakers (plain and adapted), one GMM of 16 on per-utterance CMVN beside the plain scikit-learn
#         script; 3 every configuration of select's grid on the test speakers (recipes/grid_study.py).
# Needs acoustic-gmm on PATH (make demo sets that up).
set -euo pipefail
data=../shared/data/fsdd; exp=exp/fsdd_speed; stop_stage=3
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../common.sh"

if run 0; then
  python "$here/local/make_corpus.py" --data "$data" --out "$exp"
fi
if run 1; then
  acoustic-gmm features "$exp/data/all" --out "$exp/raw20.h5" --overwrite --n-mfcc 20 $jobs
fi
if run 2; then
  for k in 0 1 2; do
    d="$exp/fold$k"; train="$exp/data/folds/$k.train"; test="$exp/data/folds/$k.test"; mkdir -p "$d"
    acoustic-gmm select --overwrite "$exp/raw20.h5" --utts "$train" --out "$d/select.h5" $jobs > "$d/selection.txt"
    echo -n "fold $k, select ($(tail -1 "$d/selection.txt" | sed 's/.*h5: //; s/, [0-9]* classes.*//')): "
    acoustic-gmm evaluate --overwrite "$d/select.h5" "$exp/raw20.h5" --utts "$test" --metrics "$d/select.json"
    echo -n "fold $k, select, adapted: "
    acoustic-gmm evaluate --overwrite "$d/select.h5" "$exp/raw20.h5" --utts "$test" --adapt --metrics "$d/select.adapt.json"
    for system in "defaults:--n-mfcc 13" "gmm:--cmvn meanvar --slices 1 -k 16"; do
      name=${system%%:*}; options=${system#*:}
      acoustic-gmm train --overwrite "$exp/raw20.h5" --utts "$train" $options --out "$d/$name.h5" $jobs > /dev/null
      echo -n "fold $k, $name ($options): "
      acoustic-gmm evaluate --overwrite "$d/$name.h5" "$exp/raw20.h5" --utts "$test" --metrics "$d/$name.json"
    done
    echo -n "fold $k, the plain scikit-learn script: "
    python "$here/../sklearn_baseline.py" "$exp/data/all" "$exp/data/all" "$train" "$test"
  done
fi
if run 3; then
  python "$here/../grid_study.py" "$exp/raw20.h5" $(for k in 0 1 2; do echo --split "$exp/data/folds/$k.train" \
    "$exp/data/folds/$k.test"; done) --selected "$exp"/fold{0,1,2}/select.h5 --out "$exp/grid_study.json" $jobs
fi
