"""Shared fixtures: synthetic frames from known mixtures, real FSDD MFCC frames, corpora and recordings, a Dask
cluster, and `invoke` for running the command line in-process."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd" / "recordings"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")


def draw_mixture(weights, means, variances, n, seed=0):
    """Frames from a diagonal mixture, with their component labels."""
    rng = np.random.default_rng(seed)
    weights, means, variances = map(np.asarray, (weights, means, variances))
    labels = rng.choice(len(weights), size=n, p=weights)
    X = means[labels] + rng.standard_normal((n, means.shape[1])) * np.sqrt(variances[labels])
    return X, labels


@pytest.fixture(scope="session")
def overlapping_mixture():
    """Five 3-D Gaussians about 4 standard deviations apart (speech-like overlap), 20,000 frames."""
    weights = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    means = np.array([[0.0, 0, 0], [4, 0, 1], [0, 4, -1], [4, 4, 3], [-3, 2, 4]])
    variances = np.ones((5, 3)) * np.linspace(0.6, 1.4, 5)[:, None]
    X, _ = draw_mixture(weights, means, variances, 20_000, seed=2)
    return X, weights, means, variances


@pytest.fixture(scope="session")
def known_mixture():
    """Four far-apart 3-D Gaussians with unequal weights and variances, 20,000 frames."""
    weights = np.array([0.1, 0.2, 0.3, 0.4])
    means = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, -3.0], [0.0, 7.0, 3.0], [-6.0, -5.0, 6.0]])
    variances = np.array([[1.0, 0.5, 2.0], [0.5, 1.0, 1.0], [2.0, 1.0, 0.5], [1.0, 2.0, 1.5]])
    X, _ = draw_mixture(weights, means, variances, 20_000, seed=1)
    return X, weights, means, variances


@pytest.fixture(scope="session")
def fsdd_frames():
    """MFCC + delta + delta-delta frames (39-D) of 300 real FSDD recordings (13.6k frames)."""
    if not FSDD.is_dir():
        pytest.skip(f"FSDD not found at {FSDD}")
    import librosa
    import soundfile as sf

    feats = []
    for path in sorted(FSDD.glob("*.wav"))[::10]:
        y, sr = sf.read(path, dtype="float32")
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, n_fft=256, hop_length=80, n_mels=40)
        feats.append(np.vstack([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)]).T)
    return np.vstack(feats).astype(np.float32)


def tone(seconds=1.0, sr=8000, freq=440.0, amp=0.3, noise=0.01, seed=0):
    """A sine plus a little noise: a stand-in for voiced speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture()
def make_corpus(tmp_path):
    """Write wav files and a data directory; returns ``(data_dir, {utt: path})``.

    ``signals`` maps utterance id to a float array (written as 16-bit PCM at ``sr``), to
    ``(array, sr)``, or to raw ``bytes`` written as they are (for broken files); ``None``
    lists the utterance without creating its file.
    """
    import soundfile as sf

    from acoustic_gmm.storage import write_data_dir

    def make(signals, sr=8000, name="data", labels=None, speakers=None, subtype="PCM_16"):
        audio = tmp_path / f"{name}-audio"
        audio.mkdir(exist_ok=True)
        paths = {}
        for utt, sig in signals.items():
            path = audio / f"{utt}.wav"
            paths[utt] = path
            if sig is None:
                continue
            if isinstance(sig, bytes):
                path.write_bytes(sig)
                continue
            y, rate = sig if isinstance(sig, tuple) else (sig, sr)
            sf.write(path, y, rate, subtype="FLOAT" if np.isnan(y).any() else subtype)
        labels = labels or {u: u.split("_")[0] for u in signals}
        speakers = speakers or {u: "spk" + str(i % 2) for i, u in enumerate(signals)}
        write_data_dir(tmp_path / name, paths, utt2spk=speakers, utt2label=labels)
        return tmp_path / name, paths

    return make


@pytest.fixture(scope="session")
def fsdd(tmp_path_factory):
    """FSDD takes 0-14 of every digit and speaker (900 files), MFCC + deltas without CMN: takes 0-4 test,
    5-14 train.  Yields ``(folder, FeatureArchive, train ids, test ids)``."""
    from acoustic_gmm.features import MfccConfig
    from acoustic_gmm.storage import FeatureArchive, extract_corpus, write_data_dir

    if not FSDD.is_dir():
        pytest.skip("FSDD not available")
    tmp = tmp_path_factory.mktemp("fsdd")
    wavs = [w for w in sorted(FSDD.glob("*.wav")) if int(w.stem.split("_")[2]) < 15]
    write_data_dir(tmp / "data", {w.stem: w for w in wavs}, utt2spk={w.stem: w.stem.split("_")[1] for w in wavs},
                   utt2label={w.stem: w.stem.split("_")[0] for w in wavs})
    extract_corpus(tmp / "data", tmp / "feats.h5", config=MfccConfig(cmvn="none"), progress=False)
    fa = FeatureArchive(tmp / "feats.h5")
    train = [u for u in fa.ids if int(u.split("_")[2]) >= 5]
    test = [u for u in fa.ids if int(u.split("_")[2]) < 5]
    yield tmp, fa, train, test
    fa.close()


def _speech(seconds: float, sr: int, seed: int) -> np.ndarray:
    """FSDD recordings (or tones) separated by pauses of near silence."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    wavs = sorted(FSDD.glob("*.wav")) if FSDD.is_dir() else []
    parts, total = [], 0
    while total < seconds * sr:
        if wavs:
            y, rate = sf.read(wavs[rng.integers(len(wavs))], dtype="float32")
            assert rate == sr
        else:
            y = tone(rng.uniform(0.2, 0.6), sr, freq=rng.uniform(150, 1500), seed=int(rng.integers(1 << 30)))
        pause = rng.normal(0, 3e-4, int(rng.integers(sr // 10, sr // 2))).astype(np.float32)
        parts += [y, pause]
        total += len(y) + len(pause)
    return np.concatenate(parts)[: int(seconds * sr)]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """25 s of speech and pauses at 8 kHz, 16-bit: 2498 frames, more than a FRAME_BLOCK."""
    import soundfile as sf

    path = tmp_path_factory.mktemp("front") / "rec.wav"
    sf.write(path, _speech(25.0, 8000, seed=13), 8000, subtype="PCM_16")
    return path


@pytest.fixture()
def save_every_iteration(monkeypatch):
    """The library tests stop at chosen iterations: let every one be saved (in use, at most every 30 s)."""
    from acoustic_gmm.gmm import _train

    monkeypatch.setattr(_train, "CHECKPOINT_SECONDS", 0.0)


def invoke(*args):
    """``acoustic-gmm ARGS`` in this process (click's test runner), every argument as a string: the result."""
    from click.testing import CliRunner

    from acoustic_gmm.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def classify_scores(models, *args) -> dict:
    """``acoustic-gmm classify MODELS ARGS --json``: each input's best score, by the stem of its id."""
    import json

    result = invoke("classify", models, *args, "--json")
    assert result.exit_code == 0, result.output
    return {Path(d["id"]).stem: d["score"] for d in map(json.loads, result.stdout.splitlines())}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A labelled feature archive (3 classes, 2 speakers), a UBM, enrolled speakers and trials, made by the
    commands `ubm`, `enroll` and `train` once for each test module that asks for them."""
    from click.testing import CliRunner

    from acoustic_gmm.cli import main
    from acoustic_gmm.features import MfccConfig
    from acoustic_gmm.storage import write_features

    tmp = tmp_path_factory.mktemp("outputs")
    rng = np.random.default_rng(0)
    utts = []
    for i in range(60):
        label, spk = "abc"[i % 3], f"s{i % 2}"
        utts.append((f"{spk}_{label}_{i:02d}", (rng.normal(size=(40, 4)) + 3 * (i % 3) + spk.endswith("1"))
                     .astype(np.float32), label, spk))
    feats = tmp / "feats.h5"
    write_features(feats, utts, config=MfccConfig(n_mfcc=4, n_mels=8, deltas=0), sample_rate=8000)
    run = CliRunner()
    for args in (["ubm", str(feats), "-k", "4", "--out", str(tmp / "ubm.h5")],
                 ["enroll", str(tmp / "ubm.h5"), str(feats), "--out", str(tmp / "spk.h5")],
                 ["train", str(feats), "-k", "2", "--out", str(tmp / "models.h5")]):
        result = run.invoke(main, args)
        assert result.exit_code == 0, result.output
    trials = tmp / "trials"
    trials.write_text("".join(f"s{m} {u} {'target' if u.startswith(f's{m}') else 'nontarget'}\n"
                              for m in (0, 1) for u, *_ in utts[:10]))
    return tmp, feats, trials


@pytest.fixture(scope="module")
def client():
    """A Dask LocalCluster of two worker processes and a client of it (skipped without dask.distributed)."""
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def pytest_collection_modifyitems(items):
    """Tests on the 900-file FSDD extraction (the ``fsdd`` fixture) are slow: ``pytest -m "not slow"`` skips them."""
    for item in items:
        if "fsdd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def wait_for(condition, timeout=60.0):
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False): for tests of real processes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False
