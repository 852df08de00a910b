#!/usr/bin/env python3
"""A third development corpus made from FSDD: 16 kHz, 30 pseudo-speakers by speed perturbation.

    python recipes/fsdd_speed/local/make_corpus.py --data ../shared/data/fsdd --out exp/fsdd_speed

Every FSDD speaker becomes five "speakers" (SPEAKER-0.90 ... SPEAKER-1.10): the recordings of takes
t with t % 5 == i are played at speed FACTORS[i] (Kaldi's speed perturbation: resampled as if recorded at
8000 * factor Hz, so tempo and pitch move together) and written at 16 kHz.  So the corpus has the keyword
corpus's shape (30 speakers with about 100 utterances each, 16 kHz), unlike FSDD's six speakers of 500.
The audio goes to OUT/audio (never into the project), the data dirs to OUT/data: all/, and folds/K.train,
folds/K.test for three folds that each hold out every pseudo-speaker of two real speakers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fsdd" / "local"))
import fsdd_data  # noqa: E402

from acoustic_gmm.storage import write_data_dir  # noqa: E402

FACTORS = (0.90, 0.95, 1.00, 1.05, 1.10)
RATE = 16000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/fsdd")
    ap.add_argument("--out", default="exp/fsdd_speed")
    args = ap.parse_args()
    root, out = fsdd_data.locate(args.data), Path(args.out)
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    wavs, spk, label, real = {}, {}, {}, {}
    for wav in sorted((root / "recordings").glob("*.wav")):
        digit, speaker, take = fsdd_data.parse_name(wav)
        factor = FACTORS[take % len(FACTORS)]
        pseudo = f"{speaker}-{factor:.2f}"
        utt = f"{digit}_{pseudo}_{take}"
        path = audio / f"{utt}.wav"
        if not path.exists():
            y, sr = sf.read(wav, dtype="float32")
            y = librosa.resample(y, orig_sr=sr * factor, target_sr=RATE, res_type="soxr_hq")
            tmp = path.with_suffix(".tmp.wav")
            sf.write(tmp, np.clip(y, -1, 1), RATE, subtype="PCM_16")
            tmp.rename(path)
        wavs[utt], spk[utt], label[utt], real[utt] = path.resolve(), pseudo, digit, speaker
    write_data_dir(out / "data" / "all", wavs, utt2spk=spk, utt2label=label)
    speakers = sorted(set(real.values()))
    folds = out / "data" / "folds"
    folds.mkdir(parents=True, exist_ok=True)
    for k in range(3):
        held = set(speakers[2 * k:2 * k + 2])
        for part, keep in (("train", lambda s: s not in held), ("test", lambda s: s in held)):
            (folds / f"{k}.{part}").write_text("".join(f"{u}\n" for u in wavs if keep(real[u])))
        print(f"{folds}/{k}: test speakers {', '.join(sorted(held))}")
    print(f"{out / 'data' / 'all'}: {len(wavs)} utterances, {len(set(spk.values()))} speakers at {RATE} Hz")


if __name__ == "__main__":
    main()
