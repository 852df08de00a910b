#!/usr/bin/env python3
"""Kaldi-style data directories for the TIMIT sample's phone segments and speakers.

    python recipes/timit_sample/local/prepare_data.py --data ../shared/data/timit_sample --out exp/timit/data

phones_train/ (dialect regions 1-6: 12 speakers) and phones_test/ (regions 7-8: 4 speakers): one utterance
per phone segment of every sentence, labelled with its class among the 39 of Lee & Hon (data/timit_61_to_39.map;
segments of 'q' are left out). utts/ has one utterance per sentence, labelled by speaker (for verification).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from acoustic_gmm.storage import read_phn, write_data_dir

FOLD = Path(__file__).resolve().parents[3] / "data" / "timit_61_to_39.map"
SAMPLE_RATE = 16000


def folding() -> dict[str, str]:
    lines = (ln.split() for ln in FOLD.read_text().splitlines() if ln and not ln.startswith("#"))
    return {a: b for a, b in lines}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/timit_sample")
    ap.add_argument("--out", default="exp/timit/data")
    args = ap.parse_args()
    fold = folding()
    sets = {"phones_train": ({}, {}, {}, {}), "phones_test": ({}, {}, {}, {}), "utts": ({}, {}, {}, {})}
    for spk_dir in sorted(Path(args.data).glob("dr*-*")):
        region, speaker = int(spk_dir.name[2]), spk_dir.name.split("-")[1]
        name = "phones_train" if region <= 6 else "phones_test"
        wav, segments, labels, speakers = sets[name]
        for phn in sorted(spk_dir.glob("*.phn")):
            rec = f"{speaker}_{phn.stem}"
            wav[rec] = phn.with_suffix(".wav").resolve()
            sets["utts"][0][rec] = wav[rec]
            sets["utts"][2][rec] = speaker
            sets["utts"][3][rec] = speaker
            for i, (start, end, phone) in enumerate(read_phn(phn, SAMPLE_RATE)):
                if fold[phone] == "-":
                    continue
                utt = f"{rec}_{i:03d}"
                segments[utt] = (rec, start, end)
                labels[utt] = fold[phone]
                speakers[utt] = speaker
    for name, (wav, segments, labels, speakers) in sets.items():
        write_data_dir(Path(args.out) / name, wav, utt2spk=speakers, utt2label=labels, segments=segments or None)
        print(f"{Path(args.out) / name}: {len(segments or wav)} utterances, {len(set(labels.values()))} classes")


if __name__ == "__main__":
    main()
