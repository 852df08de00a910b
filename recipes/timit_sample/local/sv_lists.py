#!/usr/bin/env python3
"""Speaker-verification lists for the TIMIT sample (from prepare_data.py's utts/ directory).

The 8 speakers of dialect regions 1-4 train the UBM; the 8 of regions 5-8 are enrolled with their first
5 sentences (sorted ids: sa1, sa2 and the si sentences) and tested with the other 5 (the sx sentences)
against every enrolled model: 40 target and 280 non-target trials.

    python recipes/timit_sample/local/sv_lists.py exp/timit/data/utts exp/timit/sv
"""

import sys
from pathlib import Path

from acoustic_gmm.storage import read_data_dir

dd, out = read_data_dir(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
region = {spk: int(str(dd.wav[u]).split("/dr")[-1][0]) for u, spk in dd.utt2spk.items()}
speakers = sorted(set(dd.utt2spk.values()))
ubm_spk = [s for s in speakers if region[s] <= 4]
enrolled = [s for s in speakers if region[s] > 4]
utts = {s: sorted(u for u in dd.utterances if dd.utt2spk[u] == s) for s in speakers}
(out / "ubm.list").write_text("".join(f"{u}\n" for s in ubm_spk for u in utts[s]))
(out / "enroll.spk2utt").write_text("".join(f"{s} {' '.join(utts[s][:5])}\n" for s in enrolled))
(out / "trials").write_text("".join(f"{m} {u} {'target' if m == s else 'nontarget'}\n"
                                    for s in enrolled for u in utts[s][5:] for m in enrolled))
print(f"{out}: UBM from {len(ubm_spk)} speakers, {len(enrolled)} enrolled, "
      f"{len(enrolled) * 5} target and {len(enrolled) * 5 * (len(enrolled) - 1)} non-target trials")
