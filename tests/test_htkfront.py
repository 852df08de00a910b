"""HTK's front end (MfccConfig.from_htk_config): each step against its definition in the HTK Book (chapter 5)
and HTK's HParm/HSigP, computed here directly (float64, loops over frames), then the configuration file,
the settings HTK's front end refuses or this one does not support, the long-recording block path and
stored configurations.

The reference implementation below is written from the definitions, not from this package's code: 16-bit
amplitudes, frames of int(WINDOWSIZE / period) samples every int(TARGETRATE / period), raw energy,
pre-emphasis within the frame (s[0] *= 1 - k), the symmetric Hamming window, |FFT| of the next power of
two, triangles on the FFT bins between neighbouring centres spaced uniformly in mel = 1127 ln(1 + f/700),
ln(max(x, 1)), DCT-II scaled by sqrt(2/N), lifter 1 + L/2 sin(pi n / L).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from acoustic_gmm import DataError, ParameterError
from acoustic_gmm.features import HtkSettings, MfccConfig, extract, extract_file, parse_htk_config, read_audio
from acoustic_gmm.features._analysis import analyse, analyse_file, segment_frames
from acoustic_gmm.features._frontend import Frontend, frontend_arrays, mfcc_frames
from acoustic_gmm.features._htk_config import LZERO
from acoustic_gmm.features._htk_dsp import (
    hamming_window,
    htk_dct_matrix,
    mel_filterbank,
    normalise_log_energy,
    preemphasise,
    regression,
)

from .conftest import FSDD, tone

WHOLE = 1 << 20
BASE = "TARGETRATE=100000 WINDOWSIZE=250000"


def htk(kind: str, extra: str = "", **options) -> MfccConfig:
    return MfccConfig.from_options(htk=f"TARGETKIND={kind} {BASE} {extra}", **options)


def mel(f):
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def speechlike(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """Tones of changing pitch with pauses of low noise (a stand-in for speech), or FSDD recordings."""
    rng = np.random.default_rng(seed)
    parts, n = [], 0
    wavs = sorted(FSDD.glob("*.wav")) if FSDD.is_dir() and sr == 8000 else []
    while n < seconds * sr:
        if wavs:
            y, _ = sf.read(wavs[rng.integers(len(wavs))], dtype="float32")
        else:
            y = tone(rng.uniform(0.2, 0.5), sr, freq=rng.uniform(120, 1500), seed=int(rng.integers(1 << 30)))
        pause = (0.001 * rng.standard_normal(int(rng.integers(1, sr // 5)))).astype(np.float32)
        parts += [y, pause]
        n += len(y) + len(pause)
    y = np.concatenate(parts)[: int(seconds * sr)]
    return np.round(y * 32767) / 32768  # 16-bit values, as a PCM file holds them


# --------------------------------------------------------------------------- a direct implementation

def reference(y, sr, *, numchans=26, numceps=12, lifter=22, k=0.97, lo=-1.0, hi=-1.0, power=False,
              window=250000.0, shift=100000.0):
    """Per frame: (c1..cN, c0, raw log E, log filter bank) from the definitions, float64, one frame at a time."""
    period = 1e7 / sr
    n, hop = int(window / period), int(shift / period)
    nfft = 1 << (n - 1).bit_length()
    x = np.asarray(y, dtype=np.float64) * 32768
    ham = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(n) / (n - 1))
    mlo = mel(lo) if lo >= 0 else 0.0
    mhi = mel(hi) if hi >= 0 else mel(sr / 2)
    centres = mlo + np.arange(numchans + 2) * (mhi - mlo) / (numchans + 1)
    # the FFT bins HTK uses: above DC and below Nyquist, within LOFREQ ... HIFREQ (its klo/khi rounding)
    first = max(1, int(lo * nfft / sr + 1.5)) if lo >= 0 else 1
    last = min(nfft // 2 - 1, int(hi * nfft / sr + 0.5) - 1) if hi >= 0 else nfft // 2 - 1
    m = mel(np.arange(nfft // 2 + 1) * sr / nfft)
    W = np.zeros((nfft // 2 + 1, numchans))
    for c in range(1, numchans + 1):
        for j in range(first, last + 1):
            left, mid, right = centres[c - 1], centres[c], centres[c + 1]
            if left < m[j] <= mid:
                W[j, c - 1] = (m[j] - left) / (mid - left)
            elif mid < m[j] < right:
                W[j, c - 1] = (right - m[j]) / (right - mid)
    rows = []
    for t in range(1 + (len(x) - n) // hop):
        s = x[t * hop:t * hop + n].copy()
        energy = np.log(np.sum(s * s))
        e = s.copy()
        e[1:] = s[1:] - k * s[:-1]
        e[0] = s[0] * (1 - k)
        spec = np.abs(np.fft.rfft(e * ham, nfft))
        fb = np.log(np.maximum((spec ** 2 if power else spec) @ W, 1.0))
        c = [math.sqrt(2 / numchans) * sum(fb[i] * math.cos(math.pi * j * (i + 0.5) / numchans)
                                           for i in range(numchans)) for j in range(1, numceps + 1)]
        if lifter:
            c = [cj * (1 + lifter / 2 * math.sin(math.pi * j / lifter)) for j, cj in enumerate(c, 1)]
        rows.append(np.concatenate([c, [math.sqrt(2 / numchans) * fb.sum(), energy], fb]))
    return np.array(rows)


def htk_deltas(c: np.ndarray, width: int) -> np.ndarray:
    """d_t = sum_n n (c_{t+n} - c_{t-n}) / 2 sum n^2, first and last frames repeated: a direct loop."""
    T = len(c)
    out = np.zeros_like(c, dtype=np.float64)
    for t in range(T):
        for n in range(1, width + 1):
            out[t] += n * (c[min(t + n, T - 1)].astype(np.float64) - c[max(t - n, 0)])
    return out / (2 * sum(n * n for n in range(1, width + 1)))


# --------------------------------------------------------------------------- constants against their definitions

def test_each_filter_rises_and_falls_between_its_neighbours_centres_on_the_fft_bins():
    sr, nfft, chans = 16000, 512, 26
    W, cf, klo, khi = mel_filterbank(chans, 625, nfft)
    centres = np.arange(chans + 2) * mel(sr / 2) / (chans + 1)
    np.testing.assert_allclose(cf, centres, rtol=1e-6)
    assert (klo, khi) == (2, nfft // 2) and not W[0].any() and not W[-1].any()  # no DC, no Nyquist bin
    m = mel(np.arange(nfft // 2 + 1) * sr / nfft)
    for c in range(1, chans + 1):
        left, mid, right = centres[c - 1:c + 2]
        expected = np.clip(np.minimum((m - left) / (mid - left), (right - m) / (right - mid)), 0, None)
        expected[0] = expected[-1] = 0
        np.testing.assert_allclose(W[:, c - 1], expected, atol=1e-5)  # HTK rounds mels to float
        on = np.flatnonzero(W[:, c - 1])  # the edges: the first and last bins strictly inside (left, right)
        assert m[on[0]] > left and m[on[0] - 1] <= left + 1e-4 and m[on[-1]] < right and m[on[-1] + 1] >= right - 1e-4
        peak = on[np.argmax(W[on, c - 1])]
        assert abs(m[peak] - mid) <= np.abs(m[on] - mid).min() + 1e-4  # the peak: the bin nearest the centre
    # each bin's weights add up to 1 between the first and the last centre (HTK's loWt and 1 - loWt)
    inside = (m > centres[1]) & (m < centres[-2])
    np.testing.assert_allclose(W[inside].sum(1), 1.0, atol=1e-6)
    # LOFREQ / HIFREQ: the centres span their mels, and bins outside the band get nothing
    W2, cf2, klo2, khi2 = mel_filterbank(chans, 625, nfft, lo_freq=300.0, hi_freq=3400.0)
    np.testing.assert_allclose(cf2[[0, -1]], mel([300.0, 3400.0]), rtol=1e-6)
    assert (klo2, khi2) == (int(300 * nfft / sr + 2.5), int(3400 * nfft / sr + 0.5))
    assert not W2[: klo2 - 1].any() and not W2[khi2:].any() and W2[klo2 - 1:khi2].any()


def test_vtln_warping_moves_the_centres_piecewise_linearly():
    sr, nfft, chans, alpha, fl, fu = 16000, 512, 20, 0.9, 300.0, 5000.0
    _, plain, _, _ = mel_filterbank(chans, 625, nfft)
    _, warped, _, _ = mel_filterbank(chans, 625, nfft, warp_freq=alpha, warp_lcutoff=fl, warp_ucutoff=fu)
    hz = 700 * (np.exp(plain.astype(np.float64) / 1127) - 1)
    scale, nyq = 1 / alpha, sr / 2  # HTK: f / alpha between the cut-offs (moved by 2 / (1 + 1/alpha)), linear outside
    cu, cl = fu * 2 / (1 + scale), fl * 2 / (1 + scale)
    expected = np.where(hz > cu, (nyq - cu * scale) / (nyq - cu) * (hz - cu) + scale * cu,
                        np.where(hz < cl, (cl * scale) / cl * hz, scale * hz))
    np.testing.assert_allclose(warped[1:-1], mel(expected)[1:-1], rtol=2e-5)
    np.testing.assert_allclose(warped[-1], plain[-1], rtol=1e-5)  # the band's edges stay


def test_dct_and_lifter_are_htks_formulas():
    rng = np.random.default_rng(3)
    N, n, L = 26, 12, 22
    fb = rng.uniform(0, 15, N)
    got = fb @ htk_dct_matrix(N, n, L, c0=True).astype(np.float64)
    k = np.arange(1, N + 1)
    direct = [math.sqrt(2 / N) * np.sum(fb * np.cos(math.pi * j * (k - 0.5) / N))
              * (1 + L / 2 * math.sin(math.pi * j / L)) for j in range(1, n + 1)]
    np.testing.assert_allclose(got[:n], direct, rtol=1e-5, atol=1e-5)
    assert got[n] == pytest.approx(math.sqrt(2 / N) * fb.sum(), rel=1e-6)  # c0: not liftered
    np.testing.assert_allclose(fb @ htk_dct_matrix(N, n, 0).astype(np.float64),  # no lifter: the plain DCT
                               np.array(direct) / (1 + L / 2 * np.sin(np.pi * np.arange(1, n + 1) / L)), rtol=1e-5)
    w = hamming_window(400)
    np.testing.assert_allclose(w, 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(400) / 399), atol=5e-7)  # float args
    assert w[0] == w[-1]  # symmetric, not scipy's periodic window


def test_preemphasis_scales_the_first_sample_and_uses_no_previous_frame():
    frame = np.array([[1000.0, 2000.0, -500.0, 7.0]], dtype=np.float32)
    np.testing.assert_allclose(preemphasise(frame, 0.97)[0], [1000 * 0.03, 2000 - 970, -500 - 1940, 7 + 485], rtol=1e-6)
    # each frame on its own: frame t of a signal is frame 0 of the signal cut at its first sample
    cfg = htk("MFCC_0", "ENORMALISE=F")
    y = speechlike(1.0, 16000, seed=4)
    whole = extract(y, 16000, config=cfg)
    for t in (1, 7, 33):
        np.testing.assert_array_equal(extract(y[t * 160:], 16000, config=cfg)[0], whole[t])


# --------------------------------------------------------------------------- frames against the direct implementation

@pytest.mark.parametrize("sr,extra,ref", [
    (16000, "NUMCHANS=26", {}),
    (8000, "NUMCHANS=20 USEPOWER=T CEPLIFTER=0 PREEMCOEF=0.9", {"numchans": 20, "power": True, "lifter": 0, "k": 0.9}),
    (16000, "NUMCHANS=23 LOFREQ=64 HIFREQ=7000 NUMCEPS=13", {"numchans": 23, "lo": 64.0, "hi": 7000.0, "numceps": 13}),
])
def test_mfcc_frames_are_the_definitions_frames(sr, extra, ref):
    y = speechlike(0.6, sr, seed=1)
    cfg = htk("MFCC_0_E", f"ENORMALISE=F {extra}")
    got = extract(y, sr, config=cfg)
    want = reference(y, sr, **ref)
    n = ref.get("numceps", 12)
    assert got.shape == (len(want), n + 2)
    np.testing.assert_allclose(got[:, :n], want[:, :n], rtol=1e-4, atol=3e-4)  # c1 ... cN
    np.testing.assert_allclose(got[:, n], want[:, n], rtol=1e-5)                # c0
    np.testing.assert_allclose(got[:, n + 1], want[:, n + 1], rtol=1e-6)        # raw log energy
    fb = extract(y, sr, config=htk("FBANK", extra.replace("NUMCEPS=13", "").replace("CEPLIFTER=0", "")))
    np.testing.assert_allclose(fb, want[:, n + 2:], rtol=1e-5, atol=1e-4)


def test_fbank_columns_are_the_channels_then_energy_and_their_differences():
    y = speechlike(0.8, 16000, seed=2)
    for kind, width in [("FBANK", 24), ("FBANK_E", 25), ("FBANK_E_D", 50), ("FBANK_D_A_Z", 72)]:
        cfg = htk(kind, "NUMCHANS=24")
        assert extract(y, 16000, config=cfg).shape == (1 + (len(y) - 400) // 160, width) and cfg.n_features == width
    plain = extract(y, 16000, config=htk("FBANK_E", "NUMCHANS=24 ENORMALISE=F"))
    assert (plain[:, :24] >= 0).all()  # ln(max(x, 1)): never below 0
    np.testing.assert_allclose(plain[:, 24], [np.log(np.sum((32768.0 * y[t * 160:t * 160 + 400]) ** 2))
                                              for t in range(len(plain))], rtol=1e-6)


def test_raw_log_energy_of_a_tone_is_the_log_sum_of_squares_in_16_bit_units():
    sr = 8000
    t = np.arange(sr) / sr
    y = (0.25 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    e = extract(y, sr, config=htk("MFCC_E", "ENORMALISE=F"))[:, -1]
    frames = [32768.0 * y[i * 80:i * 80 + 200].astype(np.float64) for i in range(len(e))]
    np.testing.assert_allclose(e, [np.log(np.sum(f * f)) for f in frames], rtol=1e-6)
    assert e.mean() == pytest.approx(np.log(200 * (0.25 * 32768) ** 2 / 2), abs=0.01)  # 200 samples of power A^2 / 2
    # RAWENERGY F: the energy of the pre-emphasised, windowed frame instead
    e2 = extract(y, sr, config=htk("MFCC_E", "ENORMALISE=F RAWENERGY=F"))[:, -1]
    ham = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(200) / 199)
    pre = [np.concatenate([[f[0] * 0.03], f[1:] - 0.97 * f[:-1]]) * ham for f in frames]
    np.testing.assert_allclose(e2, [np.log(np.sum(p * p)) for p in pre], rtol=1e-5)
    # ZMEANSOURCE: the frame's mean goes before the energy is taken
    dc = y + np.float32(0.1)
    e3 = extract(dc, sr, config=htk("MFCC_E", "ENORMALISE=F ZMEANSOURCE=T"))[:, -1]
    f = [32768.0 * dc[i * 80:i * 80 + 200].astype(np.float64) for i in range(len(e3))]
    np.testing.assert_allclose(e3, [np.log(np.sum((g - g.mean()) ** 2)) for g in f], rtol=2e-5)
    # a frame of digital silence: HTK's LZERO, not a floor of our own
    y[800:1400] = 0
    assert extract(y, sr, config=htk("MFCC_E", "ENORMALISE=F"))[12, -1] == np.float32(LZERO)


def test_enormalise_scales_from_the_loudest_frame_and_floors_at_silfloor():
    y = speechlike(2.0, 16000, seed=5)
    y[8000:12000] *= 1e-4  # well below the loudest frame - 50 dB
    raw = extract(y, 16000, config=htk("MFCC_E", "ENORMALISE=F"))[:, -1].astype(np.float64)
    for floor_db, escale in [(50.0, 0.1), (30.0, 0.5)]:
        got = extract(y, 16000, config=htk("MFCC_E", f"SILFLOOR={floor_db} ESCALE={escale}"))[:, -1]
        emax = raw.max()
        want = 1 - escale * (emax - np.maximum(raw, emax - floor_db * np.log(10) / 10))
        np.testing.assert_allclose(got, want, atol=2e-6)
        assert got.max() == 1.0 and got.min() == pytest.approx(1 - escale * floor_db * np.log(10) / 10, abs=1e-5)
        assert (raw < emax - floor_db * np.log(10) / 10).any()  # some frames are floored
    np.testing.assert_allclose(normalise_log_energy(np.float32([10.0, 4.0, -50.0]), 10.0, 50.0, 0.1),
                               [1.0, 0.4, 1 - 0.1 * 50 * np.log(10) / 10], rtol=1e-6)


def test_deltas_at_the_edges_are_htks_regression_with_repeated_frames():
    y = speechlike(1.0, 16000, seed=6)
    cfg = htk("MFCC_E_D_A", "ENORMALISE=F DELTAWINDOW=2 ACCWINDOW=3")
    got = extract(y, 16000, config=cfg)
    statics, _ = mfcc_frames(y, 16000, cfg)
    np.testing.assert_array_equal(got[:, :13], statics)
    d = htk_deltas(statics, 2)
    a = htk_deltas(got[:, 13:26], 3)  # accelerations: the regression of the (float) deltas
    T = len(got)
    for t in (0, 1, 2, T // 2, T - 3, T - 2, T - 1):
        np.testing.assert_allclose(got[t, 13:26], d[t], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[t, 26:39], a[t], rtol=1e-5, atol=1e-5)
    x = np.float32([[1.0], [2.0], [4.0], [8.0]])  # by hand: d_1 = (1 (4 - 1) + 2 (8 - 1)) / 10
    np.testing.assert_allclose(regression(x, 2)[:, 0], [0.7, 1.7, 2.0, 1.6], rtol=1e-6)
    np.testing.assert_allclose(regression(x, 2, simple=True)[:, 0], np.array([4 - 1, 8 - 1, 8 - 1, 8 - 2]) / 4)


def test_column_order_of_htks_vectors():
    y = speechlike(1.0, 16000, seed=7)
    c = extract(y, 16000, config=htk("MFCC_0_E", "ENORMALISE=F"))  # c1..c12, c0, E
    mf = extract(y, 16000, config=htk("MFCC", "ENORMALISE=F"))
    e = extract(y, 16000, config=htk("MFCC_E", "ENORMALISE=F"))
    z = extract(y, 16000, config=htk("MFCC_0", "ENORMALISE=F"))
    np.testing.assert_array_equal(c[:, :12], mf)
    np.testing.assert_array_equal(c[:, 12], z[:, 12])
    np.testing.assert_array_equal(c[:, 13], e[:, 12])
    assert htk("MFCC_0_E").htk_settings.column_names()[11:] == ["c12", "c0", "E"]
    # MFCC_0_D_A: statics c1..c12 c0, then their deltas, then their accelerations (39 columns)
    s = htk("MFCC_0_D_A").htk_settings
    names = s.column_names()
    assert len(names) == 39 and names[:13] == [f"c{j}" for j in range(1, 13)] + ["c0"]
    assert names[13:26] == ["d_" + n for n in names[:13]] and names[26:] == ["dd_" + n for n in names[:13]]
    d = extract(y, 16000, config=htk("MFCC_0_D_A"))
    np.testing.assert_array_equal(d[:, :13], z)
    # HTK refuses _0 with _E when there are deltas (HParm's ValidConversion): so does this front end
    with pytest.raises(ParameterError, match="HTK refuses _0 with _E together with _D"):
        htk("MFCC_0_E_D_A")
    # MFCC_E_D_N_Z: c1..c12 minus their utterance means, then d_c1 .. d_c12, d_E; no absolute E
    n_z = extract(y, 16000, config=htk("MFCC_E_D_N_Z"))
    full = extract(y, 16000, config=htk("MFCC_E_D"))
    assert n_z.shape == (len(full), 25)
    assert htk("MFCC_E_D_N_Z").htk_settings.column_names() == [f"c{j}" for j in range(1, 13)] + \
        [f"d_c{j}" for j in range(1, 13)] + ["d_E"]
    np.testing.assert_allclose(n_z[:, :12], full[:, :12] - full[:, :12].mean(0, dtype=np.float64), atol=2e-5)
    np.testing.assert_array_equal(n_z[:, 12:], full[:, 13:])  # deltas are taken before the mean is removed
    # _Z leaves the energy alone, and subtracts c0's mean with the cepstra's
    ez = extract(y, 16000, config=htk("MFCC_0_Z"))
    assert np.abs(ez.mean(0)).max() < 1e-4
    ee = extract(y, 16000, config=htk("MFCC_E_Z"))
    np.testing.assert_array_equal(ee[:, 12], extract(y, 16000, config=htk("MFCC_E"))[:, 12])
    # _N with _0 alone drops c0 (it stands for the energy)
    assert htk("MFCC_0_D_N").htk_settings.column_names()[11:14] == ["c12", "d_c1", "d_c2"]


# --------------------------------------------------------------------------- configuration files

CONFIG = """\
# HCopy: WAV to MFCC
SOURCEFORMAT = WAV            # read by HCopy and HWave: no effect on the frames
HPARM: TARGETKIND = "MFCC_0_D_A"
targetrate = 100000.0
HParm:  WindowSize = 250000.0
NUMCHANS = '26'
   CEPLIFTER  =  22
HWAVE: SOURCERATE = 625
USEHAMMING = T
PREEMCOEF = 0.97
ENORMALISE = FALSE
HSHELL: TRACE = 1             # another module's: ignored
"""


def test_a_config_file_with_module_prefixes_comments_and_quotes(tmp_path):
    path = tmp_path / "hcopy.cfg"
    path.write_text(CONFIG)
    cfg = MfccConfig.from_htk_config(path)
    s = cfg.htk_settings
    assert (s.target_kind, s.target_rate, s.window_size, s.num_chans, s.source_rate, s.enormalise) == \
        ("MFCC_D_A_0", 100000.0, 250000.0, 26, 625.0, False)
    assert (s.preemphasis, s.num_ceps, s.cep_lifter, s.escale, s.sil_floor, s.raw_energy) == \
        (0.97, 12, 22, 0.1, 50.0, True)
    assert (cfg.cmvn, cfg.dither, cfg.vad, cfg.n_features) == ("none", 0.0, False, 39)
    assert (cfg.win_ms, cfg.hop_ms, cfg.htk_kind) == (25.0, 10.0, "MFCC_D_A_0")  # HTK's frame timing, for readers
    slow = MfccConfig.from_options(htk="TARGETKIND=FBANK TARGETRATE=200000 WINDOWSIZE=300000")
    assert (slow.win_ms, slow.hop_ms, slow.htk_kind, MfccConfig().htk_kind) == (30.0, 20.0, "FBANK", None)
    assert MfccConfig.from_json(cfg.to_json()) == cfg
    assert MfccConfig.from_options(htk=cfg.htk) == cfg  # the field's text is a configuration too
    assert MfccConfig.from_htk_config(path, vad=True, sample_rate=16000) == \
        MfccConfig(htk=cfg.htk, cmvn="none", dither=0.0, vad=True, sample_rate=16000)
    assert parse_htk_config("A = 1 B='x y'  # c\n\nHPARM:C=\"2\"") == \
        [(None, "A", "1", 1), (None, "B", "x y", 1), ("HPARM", "C", "2", 3)]
    y = speechlike(0.5, 16000, seed=8)
    assert extract(y, 16000, config=cfg).shape == (1 + (len(y) - 400) // 160, 39)


@pytest.mark.parametrize("text,message", [
    ("TARGETKIND = MFCC\n", "TARGETRATE must be set"),
    ("TARGETKIND = PLP\nTARGETRATE = 100000\n", "only MFCC and FBANK are supported, not PLP"),
    ("TARGETKIND = LPCEPSTRA_E\nTARGETRATE = 100000\n", "only MFCC and FBANK are supported, not LPCEPSTRA"),
    ("TARGETKIND = MFCC_X\nTARGETRATE = 100000\n", "unknown qualifier '_X'"),
    ("TARGETKIND = MFCC_A\nTARGETRATE = 100000\n", "_A needs _D"),
    ("TARGETKIND = MFCC_E_N\nTARGETRATE = 100000\n", "_N needs _D"),
    ("TARGETKIND = FBANK_0\nTARGETRATE = 100000\n", "_0 .c0. is for MFCC only"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nADDDITHER = 1.0\n", "ADDDITHER = 1.0 is not supported"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nV1COMPAT = T\n", "V1COMPAT = T is not supported"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nNATURALREADORDER = T\n", "NATURALREADORDER = T is not supported"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nUSESILDET = T\n", "USESILDET = T is not supported"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nMATTRANFN = x.mat\n", "MATTRANFN is an HTK setting this front"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nSTEREOMODE = LEFT\n", "STEREOMODE is an HTK setting"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nNUMCHAN = 26\n", "NUMCHAN is not an HCopy front-end setting"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nHCOPY: NUMCHANS = 26\n", "HCOPY does not read NUMCHANS"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nNUMCHANS = 26\nNUMCHANS = 24\n", "NUMCHANS is set twice"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nNUMCHANS = 26.5\n", "NUMCHANS = 26.5: expected an integer"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nUSEPOWER = yes\n", "USEPOWER = yes: expected T or F"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nLOFREQ = 300\n", "LOFREQ = 300.0 > HIFREQ = -1.0"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nNUMCEPS = 30\n", "NUMCEPS = 30: must be in 2 ... NUMCHANS"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nWARPFREQ = 0.9\n", "WARPFREQ = 0.9 needs 0 < WARPLCUTOFF"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nWINDOWSIZE = 50000\n", "WINDOWSIZE = 50000.0: HTK needs TARGETRATE"),
    ("TARGETKIND = MFCC\nTARGETRATE = 100000\nDELTAWINDOW = 0\n", "DELTAWINDOW = 0: must be in 1"),
    ("#include \"other.cfg\"\n", "#include is not supported"),
    ("TARGETKIND MFCC\n", "line 1: cannot read 'TARGETKIND MFCC'"),
])
def test_settings_this_front_end_cannot_honour_are_refused_by_name(tmp_path, text, message):
    path = tmp_path / "bad.cfg"
    path.write_text(text)
    with pytest.raises(ParameterError, match=message) as info:
        MfccConfig.from_htk_config(path)
    assert str(path) in str(info.value)


def test_other_fields_and_inconsistent_rates_are_refused():
    with pytest.raises(ParameterError, match="n_mfcc, deltas cannot be set with htk"):
        MfccConfig(htk=f"TARGETKIND=MFCC {BASE}", n_mfcc=20, deltas=1, cmvn="none", dither=0.0)
    with pytest.raises(ParameterError, match="with htk, dither must be 0 and cmvn 'none'"):
        MfccConfig(htk=f"TARGETKIND=MFCC {BASE}")
    with pytest.raises(ParameterError, match=r"hop_ms=12.0 disagrees with the HTK settings \(10 ms\)"):
        MfccConfig.from_options(htk=f"TARGETKIND=MFCC {BASE}", hop_ms=12.0)
    with pytest.raises(ParameterError, match="with htk, dither must be 0 and cmvn 'none'"):
        MfccConfig.from_options(htk=f"TARGETKIND=MFCC {BASE}", cmvn="meanvar")
    cfg = htk("MFCC_E_D_A", "SOURCERATE=625")  # 16 kHz
    y = speechlike(0.5, 8000)
    with pytest.raises(ParameterError, match="SOURCERATE = 625.0 .16000 Hz. does not match the audio's 8000 Hz"):
        extract(y, 8000, config=cfg)
    with pytest.raises(ParameterError, match="HIFREQ = 5000.0 is above the Nyquist frequency 4000 Hz"):
        extract(y, 8000, config=htk("MFCC", "LOFREQ=0 HIFREQ=5000"))
    assert extract(y, 8000, config=htk("MFCC", "SOURCERATE=1250")).shape[1] == 12
    with pytest.raises(DataError, match="shorter than one 25 ms analysis window .200 samples."):
        extract(y[:150], 8000, config=htk("MFCC"))


def test_htk_frame_sizes_are_truncated_as_htk_truncates_them():
    s = HtkSettings.from_text(f"TARGETKIND=MFCC {BASE}")
    assert s.geometry(16000) == (625.0, 400, 160, 625)
    period, size, rate, fb = s.geometry(44100)  # 25 ms is 1102.5 samples: HTK takes 1102, and a 226 x 100 ns period
    assert (size, rate, fb) == (1102, 441, 226) and period == pytest.approx(226.757, abs=1e-3)
    assert HtkSettings.from_text("TARGETKIND=MFCC TARGETRATE=100000").window_size == 256000.0  # HTK's default


# --------------------------------------------------------------------------- block path, archives, models

HTK_CONFIGS = ["MFCC_E_D_A", "MFCC_0_D_A_Z", "MFCC_E_D_N_Z", "FBANK_E_D", "MFCC_E_D_A_T"]


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("htk") / "long.wav"
    sf.write(path, speechlike(6.0, 8000, seed=9), 8000, subtype="PCM_16")
    return path


@pytest.mark.parametrize("kind", HTK_CONFIGS)
def test_blocks_give_the_whole_file_frames(long_recording, kind):
    cfg = htk(kind, "NUMCHANS=22 DELTAWINDOW=3")
    whole = extract(*read_audio(long_recording), config=cfg, block_frames=WHOLE)
    assert whole.shape == (1 + (48000 - 200) // 80, cfg.n_features) and np.isfinite(whole).all()
    for block in (64, 128, 192):
        np.testing.assert_array_equal(extract_file(long_recording, config=cfg, block_frames=block), whole)
    spans = [(0.0, 0.5), (1.2, 2.9), (5.5, 6.0)]
    want = segment_frames(analyse(*read_audio(long_recording), config=cfg, block_frames=WHOLE), spans)
    for got, ref in zip(segment_frames(analyse_file(long_recording, config=cfg, block_frames=64), spans), want):
        np.testing.assert_array_equal(got, ref)


def test_archives_store_the_htk_configuration_and_recompute_the_same_frames(long_recording, tmp_path):
    from acoustic_gmm.storage import FeatureArchive, write_features

    cfg = htk("MFCC_0_D_A")
    x = extract_file(long_recording, config=cfg)
    path = tmp_path / "htk.h5"
    write_features(path, [("u", x, "1", "s")], config=cfg, sample_rate=8000)
    with FeatureArchive(path) as fa:
        assert fa.config == cfg and fa.config.htk_settings.target_kind == "MFCC_D_A_0"
        np.testing.assert_array_equal(fa["u"], extract_file(long_recording, config=fa.config))
    # model sets keep the front end's arrays: the stored float32 constants give the same frames
    arrays = frontend_arrays(cfg, 8000)
    fe = Frontend(cfg, 8000, arrays)
    fresh = Frontend(cfg, 8000)
    for name in ("window", "melfb", "dct", "melfb64", "dct64"):
        np.testing.assert_array_equal(getattr(fe, name), getattr(fresh, name))
    with pytest.raises(ParameterError, match="'dct' has shape"):
        Frontend(cfg, 8000, {**arrays, "dct": np.zeros((26, 12))})


def test_configurations_from_before_the_htk_field_still_load(tmp_path):
    import h5py

    from acoustic_gmm.storage import FeatureArchive, write_features

    cfg = MfccConfig(cmvn="meanvar")
    old = {k: v for k, v in cfg.to_dict().items() if k != "htk"}
    assert MfccConfig.from_dict(old) == cfg and cfg.htk == ""
    y = speechlike(1.0, 8000, seed=10)
    x = extract(y, 8000, config=cfg)
    path = tmp_path / "old.h5"
    write_features(path, [("u", x, "1", "s")], config=cfg, sample_rate=8000)
    with h5py.File(path, "r+") as f:
        f.attrs["config"] = json.dumps(old, sort_keys=True)
    with FeatureArchive(path) as fa:
        assert fa.config == cfg
        np.testing.assert_array_equal(fa["u"], x)


def test_vad_on_htk_frames_uses_the_raw_16_bit_energies():
    y = speechlike(2.0, 16000, seed=11)
    a = analyse(y, 16000, config=htk("MFCC_E_D"))
    raw = extract(y, 16000, config=htk("MFCC_E", "ENORMALISE=F"))[:, -1]
    np.testing.assert_allclose(a.log_energy, raw, rtol=1e-6)
    voiced = extract(y, 16000, config=htk("MFCC_E_D", vad=True))
    assert 0 < len(voiced) < len(a.feats)


def test_corpus_extraction_with_an_htk_configuration(long_recording, tmp_path):
    from acoustic_gmm.storage import FeatureArchive, extract_corpus, write_data_dir

    cfg = htk("MFCC_E_D_A_Z", "NUMCHANS=24")
    short = tmp_path / "short.wav"
    sf.write(short, speechlike(1.3, 8000, seed=12), 8000, subtype="PCM_16")
    write_data_dir(tmp_path / "data", {"long": long_recording, "short": short})
    extract_corpus(tmp_path / "data", tmp_path / "f.h5", config=cfg, jobs=2, progress=False)
    with FeatureArchive(tmp_path / "f.h5") as fa:
        assert fa.config == cfg and fa.n_features == 39
        for utt, path in (("long", long_recording), ("short", short)):
            np.testing.assert_array_equal(fa[utt], extract_file(path, config=cfg))
