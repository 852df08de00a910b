"""Long recordings in bounded memory: frames computed block by block, from a file read block by block,
are the whole-file computation's, bit for bit, for every front-end setting and for segments.

The recordings are a few seconds long (FSDD files end to end, or tones when FSDD is absent) and
the blocks 64-192 frames, so that every recording spans many blocks and the dither table wraps.
Peak memory on a 2-hour file is measured by bench/bench_features.py, not asserted here.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import numpy as np
import pytest
import soundfile as sf

from acoustic_gmm import DataError, ParameterError
from acoustic_gmm.features import AudioFile, MfccConfig, extract, extract_file, extract_segments, read_audio
from acoustic_gmm.features._analysis import analyse, analyse_file, segment_frames
from acoustic_gmm.features._frontend import FRAME_BLOCK
from acoustic_gmm.storage import extract_corpus, extract_files
from acoustic_gmm.storage._corpus import extract_recording

from .conftest import FSDD, tone

WHOLE = 1 << 20  # block_frames holding any test recording at once: the whole-file computation
SMALL_BLOCKS = (64, 128, 192)


def _speech(seconds: float, sr: int, seed: int) -> np.ndarray:
    """FSDD recordings end to end (resampled to ``sr`` if need be), or tones and pauses without FSDD."""
    rng = np.random.default_rng(seed)
    parts, total = [], 0
    wavs = sorted(FSDD.glob("*.wav")) if FSDD.is_dir() else []
    while total < seconds * sr:
        if wavs:
            y, rate = sf.read(wavs[rng.integers(len(wavs))], dtype="float32")
            if rate != sr:
                y = np.interp(np.arange(int(len(y) * sr / rate)) * rate / sr, np.arange(len(y)), y).astype(np.float32)
        else:
            y = tone(rng.uniform(0.2, 0.6), sr, freq=rng.uniform(150, 1500), seed=int(rng.integers(1 << 30)))
        parts += [y, np.zeros(int(rng.integers(0, sr // 4)), np.float32)]  # pauses: VAD has work to do
        total += len(parts[-1]) + len(y)
    return np.concatenate(parts)[: int(seconds * sr)]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """``{name: path}``: mono 16-bit, stereo, a length that is no multiple of the hop, float, and 16 kHz FLAC."""
    d = tmp_path_factory.mktemp("long")
    y = _speech(12.0, 8000, seed=1)  # 96,000 samples: more than the 65,536 of the dither table
    out = {"mono": d / "mono.wav", "stereo": d / "stereo.wav", "odd": d / "odd.wav", "float": d / "float.wav",
           "flac16k": d / "rec16k.flac"}
    sf.write(out["mono"], y, 8000, subtype="PCM_16")
    sf.write(out["stereo"], np.column_stack([y, _speech(12.0, 8000, seed=2)]), 8000, subtype="PCM_16")
    sf.write(out["odd"], y[: 80 * 1000 + 37], 8000, subtype="PCM_16")
    sf.write(out["float"], 0.5 * y, 8000, subtype="FLOAT")
    sf.write(out["flac16k"], _speech(6.0, 16000, seed=3), 16000, subtype="PCM_16")
    return out


CONFIGS = [MfccConfig(deltas=d, vad=v, cmvn=c, energy=e)
           for d, v, c, e in itertools.product((0, 1, 2), (False, True), ("none", "mean", "meanvar"),
                                               ("c0", "log-energy"))]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"d{c.deltas}-{'vad' if c.vad else 'all'}-{c.cmvn}-{c.energy}")
def test_file_in_blocks_gives_the_whole_file_frames(recordings, cfg):
    path = recordings["mono"]
    whole = extract(*read_audio(path), config=cfg, block_frames=WHOLE)
    assert len(whole) > 4 * max(SMALL_BLOCKS) and np.isfinite(whole).all()
    for block in SMALL_BLOCKS + (FRAME_BLOCK,):
        np.testing.assert_array_equal(extract_file(path, config=cfg, block_frames=block), whole)
        np.testing.assert_array_equal(extract(*read_audio(path), config=cfg, block_frames=block), whole)


@pytest.mark.parametrize("name", ["stereo", "odd", "float", "flac16k"])
@pytest.mark.parametrize("cfg", [MfccConfig(), MfccConfig(vad=True, cmvn="meanvar", energy="log-energy"),
                                 MfccConfig(deltas=1, cmvn="none", dither=0.0, preemphasis=0.0)])
def test_stereo_odd_lengths_float_and_flac_too(recordings, name, cfg):
    path = recordings[name]
    y, sr = read_audio(path)
    whole = extract(y, sr, config=cfg, block_frames=WHOLE)
    if name == "odd":
        assert len(y) % 80 == 37 and (cfg.vad or len(whole) == 1 + (len(y) - 200) // 80)
    for block in SMALL_BLOCKS:
        np.testing.assert_array_equal(extract_file(path, config=cfg, block_frames=block), whole)


SPANS = [(0.0, 0.41), (0.3, 1.7), (2.0, 2.003), (4.95, 7.5), (11.6, 12.0), (11.99, 13.0)]


@pytest.mark.parametrize("cfg", [MfccConfig(), MfccConfig(vad=True, cmvn="meanvar"),
                                 MfccConfig(context_ms=30.0, cmvn="none", deltas=1)])
def test_segments_from_blocks_are_the_whole_recordings(recordings, cfg):
    path = recordings["mono"]
    whole = extract_segments(*read_audio(path), SPANS, config=cfg, block_frames=WHOLE)
    assert cfg.vad or all(len(s) for s in whole)
    for block in SMALL_BLOCKS:
        got = segment_frames(analyse_file(path, config=cfg, block_frames=block), SPANS)
        assert len(got) == len(whole)
        for a, b in zip(got, whole):
            np.testing.assert_array_equal(a, b)
        assert [len(s) for s in extract_file(path, config=cfg, spans=SPANS, block_frames=block)] == \
            [len(s) for s in whole]


def test_corpus_extraction_of_a_long_recording_and_its_segments(recordings, tmp_path):
    from acoustic_gmm.storage import FeatureArchive, write_data_dir

    cfg = MfccConfig(cmvn="meanvar", vad=True)
    path = recordings["stereo"]
    y, sr = read_audio(path)
    results, seconds = extract_recording(str(path), [("rec", None, None)], cfg, 8000)
    assert seconds == len(y) / sr
    np.testing.assert_array_equal(results[0][1], extract(y, sr, config=cfg))
    segments = {f"seg{i}": ("rec", s, e) for i, (s, e) in enumerate(SPANS[:5])}
    write_data_dir(tmp_path / "data", {"rec": path}, segments=segments)
    extract_corpus(tmp_path / "data", tmp_path / "f.h5", config=cfg, jobs=2, progress=False)
    expected = extract_segments(y, sr, SPANS[:5], config=cfg)
    with FeatureArchive(tmp_path / "f.h5") as fa:  # a raw archive: the recording's sums are float64 (CMVN)
        for i in range(5):
            np.testing.assert_allclose(fa[f"seg{i}"], expected[i], atol=1e-5 * np.abs(expected[i]).max())
    (x, why), = extract_files([path], config=cfg, jobs=1)
    np.testing.assert_array_equal(x, extract(y, sr, config=cfg))


def test_frames_do_not_depend_on_blas_threads(recordings):
    # 16 kHz: a 64-row product against the (257, 40) filter bank is big enough for OpenBLAS to thread
    from threadpoolctl import threadpool_limits

    path = recordings["flac16k"]
    with threadpool_limits(1):
        one = extract_file(path, block_frames=64)
    with threadpool_limits(2):
        two = extract_file(path, block_frames=128)
    np.testing.assert_array_equal(one, two)


def test_audio_file_reads_what_soundfile_reads(recordings, tmp_path):
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0, 0.4, (5003, 2)), -1, 1)
    x[:2] = -1.0
    cases = {("mono", None): recordings["mono"], ("stereo", None): recordings["stereo"],
             ("float", None): recordings["float"], ("flac", None): recordings["flac16k"]}
    for subtype, fmt in (("PCM_16", "WAVEX"), ("FLOAT", "WAVEX"), ("PCM_24", "WAV"), ("PCM_U8", "WAV")):
        cases[(subtype, fmt)] = tmp_path / f"{subtype}-{fmt}.wav"
        sf.write(cases[(subtype, fmt)], x, 8000, subtype=subtype, format=fmt)
    for path in cases.values():
        ref, sr = read_audio(path)
        with AudioFile(path) as audio:
            assert (audio.sample_rate, audio.n_samples) == (sr, len(ref))
            parts = [audio.read(777) for _ in range(-(-len(ref) // 777) + 1)]
        np.testing.assert_array_equal(np.concatenate(parts), ref)


@pytest.fixture()
def bad_files(tmp_path):
    y = _speech(3.0, 8000, seed=4)
    files = {}
    nan_tail = np.r_[y, np.float32(np.nan), np.zeros(50, np.float32)]  # past the last frame: still caught
    for name, sig, subtype in (("nan", nan_tail, "FLOAT"), ("zero", np.zeros(30_000, np.float32), "PCM_16"),
                               ("short", y[:150], "PCM_16")):
        files[name] = tmp_path / f"{name}.wav"
        sf.write(files[name], sig, 8000, subtype=subtype)
    sf.write(tmp_path / "good.wav", y, 8000, subtype="PCM_16")
    files["truncated"] = tmp_path / "truncated.wav"
    files["truncated"].write_bytes((tmp_path / "good.wav").read_bytes()[:20_000])
    files["empty"] = tmp_path / "empty.wav"
    sf.write(files["empty"], np.zeros(0, np.float32), 8000)
    return files


@pytest.mark.parametrize("name, message", [
    ("nan", r"1 of 24051 samples are NaN or inf"),
    ("zero", r"all 30000 samples are zero \(digital silence\)"),
    ("short", r"150 samples \(18.8 ms\) is shorter than one 25 ms analysis window \(200 samples\)"),
    ("truncated", r"truncated: the header announces 48000 bytes of audio, the file holds 19956"),
    ("empty", r"no samples"),
])
def test_problems_are_reported_as_before(bad_files, name, message):
    path = bad_files[name]
    with pytest.raises(DataError, match=f"^{path}: {message}$"):
        analyse_file(path, block_frames=64)
    results, _ = extract_recording(str(path), [("u", None, None)], MfccConfig(), 8000)
    assert results[0][1] is None and re.fullmatch(message, results[0][2])
    if name in ("nan", "zero", "short"):  # in memory, the same words
        with pytest.raises(DataError, match=f"^signal: {message}$"):
            extract(*read_audio(path))


def test_block_size_must_be_a_multiple_of_64(recordings):
    for bad in (0, 100, -64, 64.0):
        with pytest.raises(ParameterError, match="block_frames must be a positive multiple of 64"):
            extract_file(recordings["mono"], block_frames=bad)


def test_resampling_reads_the_whole_file_and_gives_the_in_memory_frames(recordings):
    cfg = MfccConfig(sample_rate=8000)
    path = recordings["flac16k"]
    np.testing.assert_array_equal(extract_file(path, config=cfg, block_frames=64),
                                  extract(*read_audio(path), config=cfg))
    analysis = analyse(*read_audio(path), config=cfg)
    assert analysis.sample_rate == 8000 and analysis.duration == pytest.approx(6.0)


def test_vad_and_cmvn_work_in_place(recordings):
    cfg = dataclasses.replace(MfccConfig(), vad=True, cmvn="meanvar")
    analysis = analyse_file(recordings["mono"], config=cfg, block_frames=128)
    buffer = analysis.feats
    from acoustic_gmm.features._analysis import utterance_frames

    feats = utterance_frames(analysis)
    assert np.shares_memory(feats, buffer) and len(feats) < len(buffer)
    np.testing.assert_allclose(feats.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(feats.std(0), 1, atol=1e-4)
