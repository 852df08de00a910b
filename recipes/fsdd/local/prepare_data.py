#!/usr/bin/env python3
"""Kaldi-style data directories for FSDD: all/, train/ (takes 5-49) and test/ (takes 0-4).

    python recipes/fsdd/local/prepare_data.py --data ../shared/data/fsdd --out exp/fsdd/data

utt2label holds the digit; utt2spk the speaker.  loso/SPEAKER.train and loso/SPEAKER.test list the
utterance ids of the leave-one-speaker-out folds (train on the other five speakers, test on this one).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import fsdd_data

from acoustic_gmm.storage import write_data_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/fsdd")
    ap.add_argument("--out", default="exp/fsdd/data")
    args = ap.parse_args()
    root = fsdd_data.locate(args.data)
    sets = {"all": {}, "train": {}, "test": {}}
    for wav in sorted((root / "recordings").glob("*.wav")):
        digit, speaker, take = fsdd_data.parse_name(wav)
        entry = (wav.resolve(), digit, speaker)
        sets["all"][wav.stem] = entry
        sets["test" if take < 5 else "train"][wav.stem] = entry
    for name, entries in sets.items():
        write_data_dir(Path(args.out) / name, {u: e[0] for u, e in entries.items()},
                       utt2spk={u: e[2] for u, e in entries.items()}, utt2label={u: e[1] for u, e in entries.items()})
        print(f"{Path(args.out) / name}: {len(entries)} utterances")
    loso = Path(args.out) / "loso"
    loso.mkdir(parents=True, exist_ok=True)
    for speaker in sorted({e[2] for e in sets["all"].values()}):
        for part, keep in (("train", lambda s: s != speaker), ("test", lambda s: s == speaker)):
            ids = [u for u, e in sets["all"].items() if keep(e[2])]
            (loso / f"{speaker}.{part}").write_text("".join(f"{u}\n" for u in ids))
    print(f"{loso}: leave-one-speaker-out folds")
    # Verification, one fold per speaker: UBM from the other five speakers' training takes, the speaker
    # enrolled on its training takes, every test take of all six speakers a trial against it.
    sv = Path(args.out) / "sv"
    sv.mkdir(parents=True, exist_ok=True)
    test = sets["test"]
    for speaker in sorted({e[2] for e in sets["all"].values()}):
        (sv / f"{speaker}.ubm").write_text("".join(f"{u}\n" for u, e in sets["train"].items() if e[2] != speaker))
        (sv / f"{speaker}.spk2utt").write_text(speaker + " " + " ".join(u for u, e in sets["train"].items()
                                                                         if e[2] == speaker) + "\n")
        (sv / f"{speaker}.trials").write_text("".join(f"{speaker} {u} {'target' if e[2] == speaker else 'nontarget'}\n"
                                                      for u, e in test.items()))
    print(f"{sv}: verification folds")


if __name__ == "__main__":
    main()
