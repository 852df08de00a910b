"""The MFCC front end: frame counts, agreement with librosa, deltas, CMVN, VAD, audio reading."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from acoustic_gmm import DataError, ParameterError
from acoustic_gmm.features import MfccConfig, add_deltas, extract, extract_segments, read_audio
from acoustic_gmm.features._frontend import n_frames

from .conftest import tone

PLAIN = MfccConfig(deltas=0, cmvn="none", dither=0.0)


@pytest.mark.parametrize("sr, samples, expected", [
    (8000, 8000, 98),      # 1 s: 1 + (8000 - 200) // 80
    (8000, 200, 1),        # exactly one 25 ms window
    (8000, 279, 1),
    (8000, 280, 2),        # one window plus one hop
    (16000, 48000, 298),   # 3 s at 16 kHz: 1 + (48000 - 400) // 160
])
def test_frame_counts_for_known_durations(sr, samples, expected):
    y = tone(samples / sr, sr)[:samples]
    assert len(y) == samples
    assert n_frames(samples, PLAIN, sr) == expected
    assert extract(y, sr, config=PLAIN).shape == (expected, 13)
    assert extract(y, sr, config=MfccConfig()).shape == (expected, 39)


def test_matches_librosa_mfcc_with_the_same_settings():
    import librosa

    cfg = MfccConfig(deltas=0, cmvn="none", dither=0.0, preemphasis=0.0, lifter=0, window="hann",
                     win_ms=32, hop_ms=10, n_fft=256, n_mels=40, fmin=0.0)
    y = tone(1.0, 8000, noise=0.1)
    ours = extract(y, 8000, config=cfg)
    ref = librosa.feature.mfcc(y=y, sr=8000, n_mfcc=13, n_fft=256, hop_length=80, win_length=256, window="hann",
                               center=False, n_mels=40, fmin=0.0, lifter=0).T
    assert ours.shape == ref.shape
    # librosa's log-mel is in dB (10 log10), ours in natural log as HTK and Kaldi: a constant factor.
    np.testing.assert_allclose(ours * 10 / np.log(10), ref, atol=1e-3 * np.abs(ref).max())


def test_lifter_is_htks():
    y = tone(0.5)
    base = extract(y, 8000, config=dataclasses.replace(PLAIN, lifter=0))
    lift = extract(y, 8000, config=dataclasses.replace(PLAIN, lifter=22))
    n = np.arange(13)
    np.testing.assert_allclose(lift / base, np.broadcast_to(1 + 11 * np.sin(np.pi * n / 22), base.shape), rtol=1e-4)


def test_deltas_are_htk_regression_with_repeated_edges():
    import librosa

    c = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    out = add_deltas(c, 2, 2)
    d, dd = out[:, 4:8], out[:, 8:]
    padded = np.vstack([c[:1], c[:1], c, c[-1:], c[-1:]])
    by_hand = np.array([sum(n * (padded[t + 2 + n] - padded[t + 2 - n]) for n in (1, 2)) / 10 for t in range(30)])
    np.testing.assert_allclose(d, by_hand, atol=1e-6)
    np.testing.assert_allclose(dd, add_deltas(d, 1, 2)[:, 4:], atol=1e-6)
    # Away from the edges it is the same as librosa's (Savitzky-Golay) first-order delta.
    np.testing.assert_allclose(d[2:-2], librosa.feature.delta(c.T, width=5).T[2:-2], atol=1e-5)


@pytest.mark.parametrize("cmvn", ["mean", "meanvar"])
def test_cmvn_normalises_each_utterance(cmvn):
    y = tone(1.0, freq=300) + tone(1.0, freq=1200, amp=0.1, seed=1)
    feats = extract(y, 8000, config=MfccConfig(cmvn=cmvn))
    np.testing.assert_allclose(feats.mean(0), 0, atol=1e-4)
    if cmvn == "meanvar":
        np.testing.assert_allclose(feats.std(0), 1, atol=1e-4)
    else:
        assert not np.allclose(feats.std(0), 1, atol=0.1)


def test_vad_drops_the_silent_half():
    y = np.concatenate([tone(1.0, noise=0.0), np.zeros(8000, np.float32)])
    all_frames = extract(y, 8000, config=MfccConfig(cmvn="none"))
    voiced = extract(y, 8000, config=MfccConfig(cmvn="none", vad=True))
    assert len(all_frames) == 198
    # The tone's 98 frames and the few whose windows straddle its end; none of the silence.
    assert 98 <= len(voiced) <= 101
    np.testing.assert_array_equal(voiced, all_frames[: len(voiced)])


def test_no_non_finite_frame_from_digital_silence_inside_speech():
    y = np.concatenate([tone(0.5), np.zeros(4000, np.float32), tone(0.5)])
    for cfg in (MfccConfig(dither=0.0), MfccConfig(dither=0.0, energy="log-energy"), MfccConfig()):
        assert np.isfinite(extract(y, 8000, config=cfg)).all()


def test_log_energy_replaces_c0():
    y = tone(0.5)
    a = extract(y, 8000, config=dataclasses.replace(PLAIN, energy="log-energy"))
    b = extract(y, 8000, config=PLAIN)
    np.testing.assert_array_equal(a[:, 1:], b[:, 1:])
    assert not np.allclose(a[:, 0], b[:, 0])


def test_extraction_is_deterministic_with_dither():
    y = tone(0.7)
    np.testing.assert_array_equal(extract(y, 8000), extract(y.copy(), 8000))


def test_resampling_to_the_configured_rate():
    y16 = tone(1.0, 16000)
    cfg = MfccConfig(sample_rate=8000)
    assert extract(y16, 16000, config=cfg).shape == extract(tone(1.0, 8000), 8000, config=cfg).shape == (98, 39)


def test_segments_take_the_frames_inside_them():
    y = np.concatenate([tone(0.5, freq=300), tone(0.5, freq=1500, seed=2)])
    segs = extract_segments(y, 8000, [(0.0, 0.5), (0.5, 1.0), (0.2, 0.205)], config=MfccConfig(cmvn="none"))
    whole = extract(y, 8000, config=MfccConfig(cmvn="none"))
    assert [len(s) for s in segs] == [49, 49, 1]  # frame centres at 12.5, 22.5 ... 982.5 ms
    np.testing.assert_array_equal(np.vstack(segs[:2]), whole)


def test_config_json_round_trip_and_errors():
    cfg = MfccConfig(sample_rate=16000, vad=True, cmvn="meanvar")
    assert MfccConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ParameterError, match=r"unknown option\(s\) \['n_cepstra'\]"):
        MfccConfig.from_dict({"n_cepstra": 13})
    with pytest.raises(ParameterError, match="cmvn must be one of \\[.none., .mean., .meanvar., .speaker., .sliding., .sliding-var., .warp.\\], got .cms."):
        MfccConfig(cmvn="cms")
    with pytest.raises(ParameterError, match="n_mfcc must be between 1 and n_mels=40, got 50"):
        MfccConfig(n_mfcc=50)
    with pytest.raises(ParameterError, match="not valid JSON"):
        MfccConfig.from_json("{n_mfcc: 13")
    with pytest.raises(ParameterError, match="fmax=5000.0 Hz is above the Nyquist frequency of 8000 Hz"):
        extract(tone(0.1), 8000, config=MfccConfig(fmax=5000.0))


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_read_audio_handles_integer_and_float_pcm(tmp_path, subtype):
    y = tone(0.25)
    sf.write(tmp_path / "a.wav", y, 8000, subtype=subtype)
    got, sr = read_audio(tmp_path / "a.wav")
    assert sr == 8000 and got.dtype == np.float32
    np.testing.assert_allclose(got, y, atol=1e-4)


def test_read_audio_averages_stereo_and_reads_flac_and_ogg(tmp_path):
    left, right = tone(0.25, freq=300), tone(0.25, freq=900, seed=3)
    for ext, tol in (("wav", 1e-4), ("flac", 1e-4), ("ogg", 0.05)):
        sf.write(tmp_path / f"s.{ext}", np.column_stack([left, right]), 8000)
        got, _ = read_audio(tmp_path / f"s.{ext}")
        assert got.ndim == 1
        np.testing.assert_allclose(got, (left + right) / 2, atol=tol)


def test_read_audio_slice(tmp_path):
    y = tone(1.0)
    sf.write(tmp_path / "a.wav", y, 8000, subtype="FLOAT")
    got, _ = read_audio(tmp_path / "a.wav", 0.25, 0.5)
    np.testing.assert_array_equal(got, y[2000:4000])


@pytest.mark.parametrize("signal, message", [
    (np.zeros(8000, np.float32), r"signal: all 8000 samples are zero \(digital silence\)"),
    (np.r_[tone(0.1), np.float32(np.nan)], "signal: 1 of 801 samples are NaN or inf"),
    (tone(0.01), r"signal: 80 samples \(10.0 ms\) is shorter than one 25 ms analysis window \(200 samples\)"),
    (np.ones((10, 2)), r"expected a 1-D signal, got shape \(10, 2\)"),
])
def test_extract_rejects_unusable_signals(signal, message):
    with pytest.raises(DataError, match=message):
        extract(signal, 8000)


# --------------------------------------------------------------------------- constants without librosa or scipy

@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", [
    (8000, 256, 40, 20.0, None), (8000, 256, 23, 0.0, 3800.0), (16000, 512, 40, 20.0, None),
    (16000, 512, 80, 0.0, 7600.0), (22050, 2048, 128, 0.0, None), (44100, 1024, 64, 1500.0, None),
])
def test_mel_filters_are_librosas(sr, n_fft, n_mels, fmin, fmax):
    import librosa

    from acoustic_gmm.features import mel_filters

    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    ours = mel_filters(sr, n_fft, n_mels, fmin, fmax)
    assert ours.dtype == ref.dtype == np.float32
    np.testing.assert_array_equal(ours, ref)


def test_empty_mel_filters_warn_as_librosa_does():
    from acoustic_gmm.features import mel_filters

    with pytest.warns(UserWarning, match="Empty filters detected"):
        mel_filters(8000, 64, 40)


@pytest.mark.parametrize("name", ["hamming", "hann", "blackman"])
def test_windows_are_scipys_periodic_ones(name):
    from scipy.signal import get_window

    from acoustic_gmm.features import window_function

    for n in (1, 2, 3, 200, 256, 400, 401, 551):
        np.testing.assert_array_equal(window_function(name, n), get_window(name, n, fftbins=True))
    with pytest.raises(ParameterError, match="window 'hammock'"):
        window_function("hammock", 200)


@pytest.mark.parametrize("n_mels, n_mfcc, lifter", [(40, 13, 22), (40, 40, 0), (23, 13, 22), (80, 20, 0), (26, 26, 22)])
def test_dct_is_scipys_orthonormal_dct(n_mels, n_mfcc, lifter):
    import scipy.fft

    from acoustic_gmm.features import dct_matrix

    ref = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc].T
    if lifter:
        ref = ref * (1 + lifter / 2 * np.sin(np.pi * np.arange(n_mfcc) / lifter))
    ours = dct_matrix(n_mels, n_mfcc, lifter)
    # equal but for the entries whose true value is 0, where the FFT leaves ~1e-17
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-15)
    assert ours.dtype == np.float32 and ours.flags.c_contiguous


@pytest.mark.parametrize("frames, width", [(1, 2), (2, 2), (5, 1), (38, 2), (300, 3)])
def test_deltas_are_correlate1d_bit_for_bit(frames, width):
    from scipy.ndimage import correlate1d

    c = np.random.default_rng(frames).normal(size=(frames, 13)).astype(np.float32)
    n = np.arange(-width, width + 1, dtype=np.float32)
    kernel = n / np.float32(2 * (n[width + 1:] ** 2).sum())
    d = correlate1d(c, kernel, axis=0, mode="nearest")
    np.testing.assert_array_equal(add_deltas(c, 2, width), np.hstack([c, d, correlate1d(d, kernel, axis=0,
                                                                                          mode="nearest")]))


def test_extraction_imports_neither_librosa_nor_scipy(tmp_path):
    import subprocess
    import sys

    sf.write(tmp_path / "a.wav", tone(0.5), 8000, subtype="PCM_16")
    code = ("import sys; from acoustic_gmm.storage import extract_files; from acoustic_gmm.features import extract, "
            "MfccConfig; import numpy as np; "
            f"r = extract_files([{str(tmp_path / 'a.wav')!r}], jobs=1); assert r[0][0].shape == (48, 39), r; "
            "extract(np.random.default_rng(0).normal(size=4000), 8000, config=MfccConfig(window='hann')); "
            "print(sorted(m for m in ('librosa', 'scipy', 'numba', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
