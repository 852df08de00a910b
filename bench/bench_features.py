"""Feature extraction speed on FSDD: acoustic_gmm's front end vs the plain librosa loop.

Both produce 39-dimensional MFCC + delta + delta-delta with per-utterance mean normalisation
for all 3,000 FSDD recordings (22 minutes of 8 kHz audio), reading the files included:

* ``plain``        -- a serial loop of ``soundfile.read`` + ``librosa.feature.mfcc`` +
                      ``librosa.feature.delta`` x 2 + mean subtraction (what users write today),
                      once with our frame settings (the fair baseline) and once with librosa's defaults;
* ``ours jobs=1``  -- ``acoustic_gmm.corpus.extract_files`` in this process;
* ``ours jobs=N``  -- the same over N worker processes (default: all cores);
* ``archive``      -- ``extract_corpus``: the whole job into an HDF5 archive (shards, merge, index);
* ``cli, cold``    -- ``acoustic-gmm features`` as a new process: imports (about 1.4 s of
                      librosa and scipy) and all.

Both sides are timed warm (imports done, one file processed first) except the last row.
Timings on this VM vary by +-25 % from run to run, so each row is the best and the median
of ``--repeat`` runs.  Run from the repository root::

    .venv/bin/python bench/bench_features.py [--data ../shared/data/fsdd] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from acoustic_gmm.corpus import extract_corpus, extract_files  # noqa: E402
from acoustic_gmm.features import MfccConfig  # noqa: E402
from acoustic_gmm.manifest import write_data_dir  # noqa: E402


def plain(paths, **mfcc_options) -> list[np.ndarray]:
    """The usual scikit-learn + librosa glue: one file after another."""
    out = []
    for path in paths:
        y, sr = sf.read(path, dtype="float32")
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, **mfcc_options)
        # mode="nearest": librosa's default refuses utterances shorter than the 9-frame delta window
        feats = np.vstack([m, librosa.feature.delta(m, mode="nearest"),
                           librosa.feature.delta(m, order=2, mode="nearest")]).T
        out.append(feats - feats.mean(0))
    return out


def timed(fn, repeat: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()

    paths = sorted(str(p) for p in (Path(args.data) / "recordings").glob("*.wav"))
    if not paths:
        sys.exit(f"no recordings under {args.data}/recordings")
    audio = sum(sf.info(p).duration for p in paths)
    config = MfccConfig()
    print(f"{len(paths)} files, {audio / 60:.1f} min of audio; {os.cpu_count()} cores; "
          f"MFCC 13 + d + dd = {config.n_features} dims, per-utterance CMN; best / median of {args.repeat}")
    plain(paths[:3], n_fft=256)  # warm-up: librosa's lazy imports and caches
    extract_files(paths[:3], config=config, jobs=1)

    rows = []
    # The plain loop with our frame settings (25 ms window, 10 ms hop: the same frames as ours) is
    # the fair baseline; with librosa's defaults (2048-point FFT, 128 mels, 64 ms hop) it is slower.
    same_frames = dict(n_fft=256, win_length=200, hop_length=80, n_mels=40)
    best, med, ref = timed(lambda: plain(paths, **same_frames), args.repeat)
    rows.append(("plain, same frames", best, med))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns that n_fft=2048 exceeds most FSDD files
        best, med, _ = timed(lambda: plain(paths), args.repeat)
    rows.append(("plain, librosa defaults", best, med))
    for jobs in (1, args.jobs):
        best, med, ours = timed(lambda: extract_files(paths, config=config, jobs=jobs), args.repeat)
        assert all(x is not None for x, _ in ours) and len(ours) == len(ref)
        rows.append((f"ours jobs={jobs}", best, med))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_data_dir(data, {Path(p).stem: p for p in paths})

        def archive():
            out = Path(tmp) / "feats.h5"
            if out.exists():
                out.unlink()
            extract_corpus(data, out, config=config, jobs=args.jobs, progress=False)

        best, med, _ = timed(archive, args.repeat)
        rows.append((f"archive jobs={args.jobs}", best, med))
        cli = Path(sys.executable).with_name("acoustic-gmm")
        out = Path(tmp) / "cli.h5"
        t0 = time.perf_counter()
        subprocess.run([str(cli), "features", str(data), "--out", str(out), "--jobs", str(args.jobs)],
                       check=True, capture_output=True)
        cold = time.perf_counter() - t0
        rows.append((f"cli, cold, jobs={args.jobs}", cold, cold))

    plain_best = rows[0][1]
    print(f"\n{'':24s} {'best s':>8s} {'median s':>9s} {'x real time':>12s} {'x plain':>8s}")
    for name, best, med in rows:
        print(f"{name:24s} {best:8.3f} {med:9.3f} {audio / best:12,.0f} {plain_best / best:8.1f}")
    print("\n(x real time and x plain use the best time of each row; x plain is against 'plain, same frames')")


if __name__ == "__main__":
    main()
