"""Feature extraction speed (and memory) on FSDD: acoustic_gmm's front end vs the plain librosa loop.

Both produce 39-dimensional MFCC + delta + delta-delta with per-utterance mean normalisation
for all 3,000 FSDD recordings (22 minutes of 8 kHz audio), reading the files included.

Warm rows (imports done, one file processed first; best and median of ``--repeat``):

* ``plain``        -- a serial loop of ``soundfile.read`` + ``librosa.feature.mfcc`` +
                      ``librosa.feature.delta`` x 2 + mean subtraction (what users write today),
                      once with our frame settings (the fair baseline) and once with librosa's defaults
                      (one run: it is slow); BLAS on one thread, as a serial loop should have it;
* ``ours jobs=1``  -- ``acoustic_gmm.storage.extract_files`` in this process;
* ``ours jobs=N``  -- the same over N worker processes (default: all cores);
* ``archive``      -- ``extract_corpus``: the whole job into an HDF5 archive (shards, merge, index).

Cold rows (new processes, start-up included; best of ``--repeat``), on FSDD and on a 16 kHz
corpus made here of 3,000 one-second files (FSDD resampled to 16 kHz, repeated or cut to 1 s):

* ``plain loop``   -- the plain loop with our frame settings as a new ``python`` process (BLAS on
                      one thread, as a serial loop should have it);
* ``acoustic-gmm features`` -- the command on a data directory of the same files; its ratio
  to the plain loop, and x real time.

With ``--long``, the peak resident memory of ``acoustic-gmm features`` and ``acoustic-gmm
classify`` on a generated 2-hour 8 kHz recording (FSDD end to end; ~115 MB of WAV in a
temporary folder), and their time.

Timings on this VM vary by +-25 % from run to run (more when other jobs share its 2 cores),
so rows are the best of ``--repeat`` runs.  Run from the repository root::

    .venv/bin/python bench/bench_features.py [--data ../shared/data/fsdd] [--repeat 3] [--long]
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

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from acoustic_gmm.features import MfccConfig  # noqa: E402
from acoustic_gmm.storage import (  # noqa: E402
    extract_corpus,
    extract_files,
    write_data_dir,  # noqa: E402
)

# our frame settings in librosa's words (25 ms window, 10 ms hop, 40 mels): the same frames as ours
SAME_FRAMES = "dict(n_fft={n_fft}, win_length={win}, hop_length={hop}, n_mels=40)"

# The plain loop as its own program, so that a cold run pays what a user's script pays (librosa's imports).
PLAIN_LOOP = """
import sys
from pathlib import Path
import numpy as np, soundfile as sf, librosa
opts = {opts}
for path in sorted(Path(sys.argv[1]).glob("*.wav")):
    y, sr = sf.read(path, dtype="float32")
    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, **opts)
    d = librosa.feature.delta(m, mode="nearest")
    feats = np.vstack([m, d, librosa.feature.delta(m, order=2, mode="nearest")]).T
    feats - feats.mean(0)
"""


def plain(paths, **mfcc_options) -> list[np.ndarray]:
    """The usual scikit-learn + librosa glue: one file after another."""
    import librosa

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


def run_cold(cmd: list[str], repeat: int, before=None, env=None) -> float:
    """Best wall time of ``cmd`` as a new process (``before()`` runs first each time, untimed)."""
    best = float("inf")
    for _ in range(repeat):
        if before:
            before()
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        best = min(best, time.perf_counter() - t0)
    return best


def peak_rss(cmd: list[str]) -> tuple[float, float]:
    """(peak resident memory in MB, wall seconds) of ``cmd``, run by a fresh Python whose only child it is."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True).stdout
    kb, seconds = out.split()
    return int(kb) / 1024, float(seconds)


def make_16k_corpus(paths, folder: Path, n: int) -> list[Path]:
    """``n`` one-second 16 kHz files: FSDD recordings resampled (linear interpolation) and repeated or cut.

    When ``n`` exceeds the recordings, each further copy of a recording starts elsewhere in it, so
    that no two files hold the same samples.  ``bench_corpus.py`` builds its corpus with this too.
    """
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        y, sr = sf.read(paths[i % len(paths)], dtype="float32")
        up = np.interp(np.arange(2 * len(y)) / 2, np.arange(len(y)), y).astype(np.float32)
        copy = i // len(paths)
        path = folder / f"{Path(paths[i % len(paths)]).stem}_{copy}.wav"
        sf.write(path, np.resize(np.roll(up, -(copy * len(up)) // 3), 16000), 16000, subtype="PCM_16")
        out.append(path)
    return out


def cold_rows(label: str, wavs: list[Path], audio_seconds: float, tmp: Path, cli: Path, args) -> None:
    """Cold plain loop vs cold ``acoustic-gmm features`` on the files of one folder."""
    folder = wavs[0].parent
    sr = sf.info(wavs[0]).samplerate
    win, hop = sr * 25 // 1000, sr * 10 // 1000
    opts = SAME_FRAMES.format(n_fft=1 << (win - 1).bit_length(), win=win, hop=hop)
    # BLAS on one thread: librosa's mel product (an einsum) is otherwise threaded, which costs a serial
    # loop dearly on a busy machine (16 kHz: 13 ms a file instead of 3); the baseline should not pay that.
    one_thread = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    plain_s = run_cold([sys.executable, "-c", PLAIN_LOOP.format(opts=opts), str(folder)], args.plain_repeat,
                       env=one_thread)
    data, out = tmp / f"data-{label}", tmp / f"cold-{label}.h5"
    write_data_dir(data, {p.stem: p for p in wavs})
    ours = run_cold([str(cli), "features", str(data), "--out", str(out), "--cmvn", "mean", "--jobs", str(args.jobs)], args.repeat,
                    before=lambda: out.unlink(missing_ok=True))
    print(f"{label:34s} {len(wavs):6d} {audio_seconds / 60:6.1f} {plain_s:9.2f} {ours:9.2f} {plain_s / ours:7.1f}x "
          f"{audio_seconds / ours:10,.0f}x")


def long_recording(paths, tmp: Path, cli: Path) -> None:
    """Peak memory of ``features`` and ``classify`` on a 2-hour 8 kHz recording."""
    long_wav = tmp / "long" / "two-hours.wav"
    long_wav.parent.mkdir()
    target, written = 2 * 3600 * 8000, 0
    with sf.SoundFile(long_wav, "w", 8000, 1, subtype="PCM_16") as f:
        while written < target:
            for p in paths:
                y = sf.read(p, dtype="float32")[0][: target - written]
                f.write(y)
                written += len(y)
                if written >= target:
                    break
    write_data_dir(tmp / "data-long", {"long": long_wav})
    models = tmp / "digits.h5"
    data = tmp / "data-train"
    write_data_dir(data, {Path(p).stem: p for p in paths}, utt2label={Path(p).stem: Path(p).stem[0] for p in paths})
    subprocess.run([str(cli), "features", str(data), "--out", str(tmp / "train.h5"), "--cmvn", "mean"], check=True, capture_output=True)
    subprocess.run([str(cli), "train", str(tmp / "train.h5"), "-k", "8", "--out", str(models)], check=True,
                   capture_output=True)
    print(f"\n2-hour 8 kHz recording ({long_wav.stat().st_size / 1e6:.0f} MB of 16-bit WAV, 720,000 frames "
          f"= {720_000 * 39 * 4 / 1e6:.0f} MB of float32 features):")
    rss, seconds = peak_rss([str(cli), "features", str(tmp / "data-long"), "--out", str(tmp / "long.h5"), "--cmvn", "mean"])
    print(f"  acoustic-gmm features   peak RSS {rss:7.0f} MB   {seconds:6.1f} s")
    rss, seconds = peak_rss([str(cli), "classify", str(models), str(long_wav)])
    print(f"  acoustic-gmm classify   peak RSS {rss:7.0f} MB   {seconds:6.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--plain-repeat", type=int, default=2, help="cold plain-loop runs (each ~5-10 s)")
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--n16k", type=int, default=3000, help="files in the 16 kHz corpus")
    ap.add_argument("--long", action="store_true", help="also the 2-hour recording's peak memory (~1 min more)")
    ap.add_argument("--no-warm", action="store_true", help="skip the warm rows")
    args = ap.parse_args()

    paths = sorted(str(p) for p in (Path(args.data).resolve() / "recordings").glob("*.wav"))
    if not paths:
        sys.exit(f"no recordings under {args.data}/recordings")
    audio = sum(sf.info(p).duration for p in paths)
    config = MfccConfig(cmvn="mean")  # per-utterance CMN, as the plain loop does (not the per-speaker default)
    cli = Path(sys.executable).with_name("acoustic-gmm")
    print(f"{len(paths)} files, {audio / 60:.1f} min of audio; {os.cpu_count()} cores; "
          f"MFCC 13 + d + dd = {config.n_features} dims, per-utterance CMN; best of {args.repeat}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.no_warm:
            warm_rows(paths, audio, config, tmp, args)

        print(f"\ncold (new processes, start-up included; best of {args.plain_repeat} plain, {args.repeat} ours):")
        print(f"{'':34s} {'files':>6s} {'min':>6s} {'plain s':>9s} {'ours s':>9s} {'x plain':>8s} {'x real time':>11s}")
        cold_rows("FSDD 8 kHz", [Path(p) for p in paths], audio, tmp, cli, args)
        wavs16 = make_16k_corpus(paths, tmp / "fsdd16k", args.n16k)
        cold_rows("FSDD resampled, 1 s files, 16 kHz", wavs16, float(len(wavs16)), tmp, cli, args)
        if args.long:
            long_recording(paths, tmp, cli)


def warm_rows(paths, audio: float, config: MfccConfig, tmp: Path, args) -> None:
    from threadpoolctl import threadpool_limits

    plain(paths[:3], n_fft=256)  # warm-up: librosa's lazy imports and caches
    extract_files(paths[:3], config=config, jobs=1)
    rows = []
    # The plain loop with our frame settings (25 ms window, 10 ms hop: the same frames as ours) is
    # the fair baseline; with librosa's defaults (2048-point FFT, 128 mels, 64 ms hop) it is slower.
    # Both with BLAS on one thread, as for the cold rows.
    same_frames = dict(n_fft=256, win_length=200, hop_length=80, n_mels=40)
    with threadpool_limits(1):
        best, med, ref = timed(lambda: plain(paths, **same_frames), args.repeat)
        rows.append(("plain, same frames", best, med))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns that n_fft=2048 exceeds most FSDD files
            best, med, _ = timed(lambda: plain(paths), 1)
        rows.append(("plain, librosa defaults", best, med))
    for jobs in (1, args.jobs):
        best, med, ours = timed(lambda: extract_files(paths, config=config, jobs=jobs), args.repeat)
        assert all(x is not None for x, _ in ours) and len(ours) == len(ref)
        rows.append((f"ours jobs={jobs}", best, med))
    data = tmp / "data"
    write_data_dir(data, {Path(p).stem: p for p in paths})

    def archive():
        out = tmp / "feats.h5"
        out.unlink(missing_ok=True)
        extract_corpus(data, out, config=config, jobs=args.jobs, progress=False)

    best, med, _ = timed(archive, args.repeat)
    rows.append((f"archive jobs={args.jobs}", best, med))
    plain_best = rows[0][1]
    print(f"\nwarm:\n{'':24s} {'best s':>8s} {'median s':>9s} {'x real time':>12s} {'x plain':>8s}")
    for name, best, med in rows:
        print(f"{name:24s} {best:8.3f} {med:9.3f} {audio / best:12,.0f} {plain_best / best:8.1f}")
    print("(x real time and x plain use the best time of each row; x plain is against 'plain, same frames')")


if __name__ == "__main__":
    main()
