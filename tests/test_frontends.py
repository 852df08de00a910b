"""Front ends for speaker tasks: sliding-window CMN/CMVN (Kaldi's apply-cmvn-sliding), feature warping
(Pelecanos & Sridharan 2001) and Kaldi's energy VAD rule (compute-vad), as MfccConfig options.

Each is checked against a direct, frame-by-frame implementation of its definition, then through the
long-recording block path, segments and stored configurations (the command line: cli/test_features.py).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy.special import ndtri
from scipy.stats import kstest, rankdata

from acoustic_gmm import DataError, ParameterError
from acoustic_gmm.features import MfccConfig, extract, extract_file, extract_segments, normalise, read_audio, vad_mask
from acoustic_gmm.features._analysis import analyse, analyse_file, segment_frames, utterance_frames
from acoustic_gmm.features._frontend import FRAME_BLOCK, frontend
from acoustic_gmm.features._normalise import kaldi_energy_offset

from .conftest import _speech

WHOLE = 1 << 20  # block_frames holding any test recording at once: the whole-file computation
BLOCKS = (64, 128, 192, FRAME_BLOCK)


# --------------------------------------------------------------------------- direct implementations

def kaldi_window(t: int, T: int, window: int) -> tuple[int, int]:
    """[start, end) of frame t's window: SlidingWindowCmnInternal of Kaldi's feature-functions.cc, center=true."""
    start = t - window // 2
    end = start + window
    if start < 0:
        end -= start
        start = 0
    if end > T:
        start -= end - T
        end = T
        if start < 0:
            start = 0
    return start, end


def sliding_by_hand(x: np.ndarray, window: int, variance: bool) -> np.ndarray:
    out = np.empty(x.shape)
    for t in range(len(x)):
        s, e = kaldi_window(t, len(x), window)
        w = x[s:e].astype(np.float64)
        out[t] = x[t] - w.mean(0)
        if variance:  # not divided where constant but for float32 rounding (the documented rule)
            sd = w.std(0)
            out[t] /= np.where(sd > 1e-6 * np.sqrt(np.mean(w * w, 0)), sd, 1)
    return out


def warp_by_hand(x: np.ndarray, window: int) -> np.ndarray:
    out = np.empty(x.shape)
    for t in range(len(x)):
        s, e = kaldi_window(t, len(x), window)
        for d in range(x.shape[1]):
            rank = rankdata(x[s:e, d], method="average")[t - s]
            out[t, d] = ndtri((rank - 0.5) / (e - s))
    return out


def kaldi_vad_by_hand(energy) -> list[bool]:
    """ComputeVadEnergy of Kaldi's ivector/voice-activity-detection.cc with its default options."""
    T = len(energy)
    threshold = 5.5 + 0.5 * sum(energy) / T
    voiced = []
    for t in range(T):
        num = den = 0
        for t2 in range(t - 2, t + 3):
            if 0 <= t2 < T:
                den += 1
                num += energy[t2] > threshold
        voiced.append(num >= den * 0.6)
    return voiced


def cepstra_like(T: int, D: int, seed: int) -> np.ndarray:
    """Random frames with cepstrum-like offsets and scales (c0 around -50), float32."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((T, D)) * rng.uniform(0.5, 8, D) + rng.uniform(-60, 10, D)).astype(np.float32)


# --------------------------------------------------------------------------- sliding CMN / CMVN

def test_window_placement_is_kaldis():
    # One-hot columns: frame t's sliding mean of column j is 1/n when j is in t's window: the windows can be read back.
    T, W = 10, 4
    out = normalise(np.eye(T, dtype=np.float32), "sliding", cmvn_window=W)
    member = np.rint((np.eye(T) - out) * W).astype(int)
    windows = [tuple(np.flatnonzero(row)) for row in member]
    assert windows[:4] == [(0, 1, 2, 3), (0, 1, 2, 3), (0, 1, 2, 3), (1, 2, 3, 4)]  # 2 before, 1 after; held at 0
    assert windows[5] == (3, 4, 5, 6)
    assert windows[7:] == [(5, 6, 7, 8), (6, 7, 8, 9), (6, 7, 8, 9)]  # moved inwards at the end: still 4 frames
    assert all(windows[t] == tuple(range(*kaldi_window(t, T, W))) for t in range(T))


@pytest.mark.parametrize("T, window", [(40, 300), (299, 300), (300, 300), (5000, 300), (6000, 2500), (4100, 2),
                                       (2049, 301)])
def test_sliding_mean_is_the_window_mean(T, window):
    x = cepstra_like(T, 6, seed=T)
    got = normalise(x.copy(), "sliding", cmvn_window=window)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, sliding_by_hand(x, window, False), rtol=0, atol=2e-5)
    if T <= window:  # one window: the per-utterance mean
        np.testing.assert_allclose(got, normalise(x.copy(), "mean"), rtol=0, atol=2e-5)


@pytest.mark.parametrize("T, window", [(40, 300), (5000, 300), (6000, 2500), (2049, 301), (600, 3)])
def test_sliding_var_divides_by_the_window_std(T, window):
    x = cepstra_like(T, 6, seed=T + 1)
    got = normalise(x.copy(), "sliding-var", cmvn_window=window)
    np.testing.assert_allclose(got, sliding_by_hand(x, window, True), rtol=1e-4, atol=1e-4)
    if T <= window:
        np.testing.assert_allclose(got, normalise(x.copy(), "meanvar"), rtol=0, atol=1e-4)


def test_sliding_var_leaves_a_constant_stretch_unscaled():
    # Digital silence without dither: floored, identical frames for longer than a window.  Values of very
    # different sizes before it leave the cumulative sums' differences a rounding error away from the stretch's
    # mean and variance: neither 0/0 nor rounding error / rounding error may come out.
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3000, 4)) * 10.0 ** rng.uniform(-9, 3, (3000, 4)) + [50, 0, 0, -7]).astype(np.float32)
    x[1000:2000] = x[1000]
    got = normalise(x.copy(), "sliding-var", cmvn_window=300)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got[1150:1850], 0, rtol=0, atol=1e-9)  # windows inside the stretch
    np.testing.assert_allclose(got, sliding_by_hand(x, 300, True), rtol=1e-4, atol=1e-4)
    # float32 rounding noise (a few units in the last place of 1000) is not blown up to unit variance
    jitter = np.float32(1000) + np.spacing(np.float32(1000)) * rng.integers(0, 3, (1000, 2)).astype(np.float32)
    assert np.abs(normalise(jitter.copy(), "sliding-var")).max() < 1e-3
    assert np.abs(normalise(jitter - np.float32(1000), "sliding-var")).max() > 0.5  # the same steps about 0 are real


@pytest.mark.parametrize("cmvn", ["sliding", "sliding-var", "warp"])
def test_sliding_with_keep_runs_over_the_kept_frames_only(cmvn):
    x = cepstra_like(6000, 5, seed=4)
    keep = np.random.default_rng(5).random(6000) < 0.7
    got = normalise(x.copy(), cmvn, keep, cmvn_window=300)
    np.testing.assert_array_equal(got[keep], normalise(x[keep].copy(), cmvn, cmvn_window=300))
    np.testing.assert_array_equal(got[~keep], x[~keep])  # left for the caller to drop
    assert not np.allclose(got[keep], x[keep])


# --------------------------------------------------------------------------- feature warping

def test_warping_a_short_window_gives_the_normal_quantiles_of_the_ranks():
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.float32)[:, None]
    ranks = np.array([4, 1.5, 5, 1.5, 6, 8, 3, 7])  # 1-based; the two 1s share ranks 1 and 2
    got = normalise(x.copy(), "warp", cmvn_window=300)[:, 0]  # 8 frames < 300: one window
    np.testing.assert_allclose(got, ndtri((ranks - 0.5) / 8), rtol=0, atol=1e-6)
    assert got[1] == got[3] and got[5] == pytest.approx(ndtri(7.5 / 8))
    assert normalise(np.full((5, 2), 7.0, np.float32), "warp")[0, 0] == 0  # all tied: the median


@pytest.mark.parametrize("T, window", [(4500, 300), (5000, 2500), (700, 51)])
def test_warping_is_the_ranks_quantile_in_each_window(T, window):
    x = np.round(cepstra_like(T, 2, seed=6), 1)  # rounded: many ties
    got = normalise(x.copy(), "warp", cmvn_window=window)
    np.testing.assert_allclose(got, warp_by_hand(x, window), rtol=0, atol=1e-6)


def test_warped_frames_are_standard_normal_whatever_the_input():
    rng = np.random.default_rng(7)
    T = 20_000
    x = np.column_stack([rng.exponential(3.0, T), rng.uniform(-1, 5, T),
                         np.where(rng.random(T) < 0.3, rng.normal(-10, 1, T), rng.normal(20, 4, T)),
                         rng.standard_cauchy(T)]).astype(np.float32)  # stationary: no trend within a window
    got = normalise(x.copy(), "warp", cmvn_window=300)
    for d in range(x.shape[1]):
        assert kstest(x[:, d], "norm").statistic > 0.1  # the input is far from N(0, 1) ...
        assert abs(got[:, d].mean()) < 0.02 and 0.98 < got[:, d].std() < 1.0  # 300 quantiles: std 0.9979
        assert kstest(got[:, d], "norm").statistic < 0.015  # ... the output is not
    assert np.abs(got).max() <= ndtri(1 - 0.5 / 300) + 1e-6


def test_warping_ignores_a_monotone_transform_of_the_input():
    x = np.round(cepstra_like(3000, 4, seed=8) / 4, 1)  # ties included
    y = (np.exp(x.astype(np.float64) / 20) * 7 - 3).astype(np.float32)
    for d in range(x.shape[1]):  # the transform keeps order and ties after rounding to float32
        order = np.argsort(x[:, d], kind="stable")
        assert (np.diff(x[order, d]) > 0).tolist() == (np.diff(y[order, d]) > 0).tolist()
    np.testing.assert_array_equal(normalise(y.copy(), "warp"), normalise(x.copy(), "warp"))
    assert not np.array_equal(normalise(y.copy(), "sliding"), normalise(x.copy(), "sliding"))


# --------------------------------------------------------------------------- Kaldi's VAD rule

def test_kaldi_vad_is_compute_vads_rule_with_its_edges():
    E = np.array([20, 20, 3, 3, 20, 3, 3, 3, 20, 20, 20, 3], dtype=np.float64)  # threshold 5.5 + 0.5 * 11.5
    expected = [True, False, True, False, False, False, False, False, True, True, True, True]
    assert kaldi_vad_by_hand(E) == expected  # frame 0: 2 of 3 above; frame 1: 2 of 4 is not 60%
    assert vad_mask(E, rule="kaldi").tolist() == expected
    assert vad_mask(E - 22.0, rule="kaldi", energy_offset=22.0).tolist() == expected  # our scale, converted
    assert not vad_mask(np.full(5, 11.0), rule="kaldi").any()  # at the threshold 5.5 + 0.5 * 11: not above it
    assert vad_mask(np.full(5, 11.5), rule="kaldi").all()
    rng = np.random.default_rng(9)
    for T in (1, 2, 3, 4, 5, 6, 50, 333):
        E = np.round(rng.normal(12, 6, T), 1).astype(np.float32)
        assert vad_mask(E, rule="kaldi").tolist() == kaldi_vad_by_hand(E.astype(np.float64).tolist())


def test_kaldi_energy_offset_puts_our_energy_on_kaldis_scale():
    # Without pre-emphasis and dither, our log energy plus the offset is Kaldi's raw log energy of 16-bit samples
    # (up to the DC and Nyquist bins' share and the window's effect on one frame; compared on average).
    cfg = MfccConfig(preemphasis=0.0, dither=0.0, cmvn="none", deltas=0)
    y = np.random.default_rng(10).normal(0, 0.05, 80_000).astype(np.float32)
    a = analyse(y, 8000, config=cfg)
    fe = frontend(cfg, 8000)
    frames = np.lib.stride_tricks.sliding_window_view(y.astype(np.float64) * 32768, fe.win)[::fe.hop]
    frames = frames - frames.mean(1, keepdims=True)  # Kaldi removes each frame's DC
    kaldi = np.log((frames ** 2).sum(1))
    offset = kaldi_energy_offset(fe.window)
    assert offset == pytest.approx(2 * np.log(32768) + np.log(2) - np.log(0.3974), abs=1e-3)  # Hamming: 22.41
    ours = a.log_energy.astype(np.float64) + offset
    assert np.log(np.mean(np.exp(ours - 20))) == pytest.approx(np.log(np.mean(np.exp(kaldi - 20))), abs=0.02)
    assert abs(np.median(ours - kaldi)) < 0.1


def test_kaldi_vad_in_extraction_uses_our_energy_converted():
    y = _speech(6.0, 8000, seed=11)
    cfg = MfccConfig(vad=True, vad_rule="kaldi", cmvn="none")
    a = analyse(y, 8000, config=cfg)
    energy = (a.log_energy.astype(np.float64) + kaldi_energy_offset(frontend(cfg, 8000).window)).tolist()
    mask = np.array(kaldi_vad_by_hand(energy))
    assert 0.2 < mask.mean() < 0.95  # pauses dropped, speech kept
    np.testing.assert_array_equal(extract(y, 8000, config=cfg), a.feats[mask])


def test_kaldi_vad_that_keeps_nothing_is_a_data_error():
    # noise a few 16-bit steps strong: Kaldi's threshold 5.5 + E/2 is above E whenever E < 11 (Kaldi scale)
    y = np.random.default_rng(12).normal(0, 2 / 32768, 16000).astype(np.float32)
    with pytest.raises(DataError, match=r"no frames left after VAD \(kaldi rule: all 198 frames are silent\)"):
        extract(y, 8000, config=MfccConfig(vad=True, vad_rule="kaldi"))
    assert len(extract(y, 8000, config=MfccConfig(vad=True))) > 0  # ours keeps the loudest frames


# --------------------------------------------------------------------------- long recordings, segments

CONFIGS = [MfccConfig(cmvn=c, vad=v, vad_rule=r, cmvn_window=w)
           for c, (v, r), w in itertools.product(("sliding", "sliding-var", "warp"),
                                                 ((False, "peak"), (True, "peak"), (True, "kaldi")), (300, 101))] + \
          [MfccConfig(cmvn="none", vad=True, vad_rule="kaldi", energy="log-energy", deltas=1),
           MfccConfig(cmvn="meanvar", vad=True, vad_rule="kaldi")]


def _id(c: MfccConfig) -> str:
    return f"{c.cmvn}-w{c.cmvn_window}-{c.vad_rule if c.vad else 'all'}-{c.energy}-d{c.deltas}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_file_in_blocks_gives_the_whole_file_frames(recording, cfg):
    whole = extract(*read_audio(recording), config=cfg, block_frames=WHOLE)
    n_all = len(extract(*read_audio(recording), config=MfccConfig(cmvn="none"), block_frames=WHOLE))
    assert n_all > FRAME_BLOCK and np.isfinite(whole).all()
    assert (len(whole) < n_all) == cfg.vad
    for block in BLOCKS:
        np.testing.assert_array_equal(extract_file(recording, config=cfg, block_frames=block), whole)


SPANS = [(0.0, 0.41), (0.3, 1.7), (2.0, 2.003), (4.95, 7.5), (11.6, 12.0), (20.0, 25.0)]


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c.cmvn_window == 300 and c.cmvn != "none"], ids=_id)
def test_segments_from_blocks_are_the_whole_recordings(recording, cfg):
    y, sr = read_audio(recording)
    whole = extract_segments(y, sr, SPANS, config=cfg, block_frames=WHOLE)
    for block in (64, 192):
        got = segment_frames(analyse_file(recording, config=cfg, block_frames=block), SPANS)
        for a, b in zip(got, whole, strict=True):
            np.testing.assert_array_equal(a, b)
    # One segment covering the recording is the whole-recording utterance: VAD first, then the windows.
    everything, = extract_segments(y, sr, [(0.0, 30.0)], config=cfg)
    np.testing.assert_array_equal(everything, extract(y, sr, config=cfg))


# --------------------------------------------------------------------------- configuration

def test_config_fields_validate_and_round_trip():
    default = MfccConfig()
    assert (default.cmvn, default.cmvn_window, default.vad, default.vad_rule) == ("speaker", 300, False, "peak")
    cfg = MfccConfig(cmvn="sliding-var", cmvn_window=600, vad=True, vad_rule="kaldi")
    assert MfccConfig.from_json(cfg.to_json()) == cfg
    assert MfccConfig.from_options(cmvn="warp", cmvn_window="250", vad_rule="kaldi") == \
        MfccConfig(cmvn="warp", cmvn_window=250, vad_rule="kaldi")  # as a command line gives them
    for bad, message in [({"cmvn_window": 1}, "cmvn_window must be between 2 and 100000 frames, got 1"),
                         ({"cmvn_window": 100_001}, "cmvn_window must be between 2 and 100000"),
                         ({"cmvn_window": 300.0}, "cmvn_window must be an integer, got 300.0"),
                         ({"vad_rule": "energy"}, r"vad_rule must be one of \['peak', 'kaldi'\], got 'energy'"),
                         ({"cmvn": "sliding-mean"}, "cmvn must be one of .*'warp'\\], got 'sliding-mean'")]:
        with pytest.raises(ParameterError, match=message):
            MfccConfig(**bad)
    with pytest.raises(ParameterError, match="cmvn_window must be between 2 and 100000 frames, got 1"):
        normalise(np.zeros((5, 2), np.float32), "sliding", cmvn_window=1)
    with pytest.raises(ParameterError, match="vad rule must be 'peak' or 'kaldi'"):
        vad_mask(np.zeros(3), rule="loud")


def test_configurations_stored_before_these_options_load_with_the_defaults(tmp_path):
    import h5py

    from acoustic_gmm.storage import FeatureArchive, write_features

    old = {k: v for k, v in MfccConfig(cmvn="meanvar", vad=True).to_dict().items()
           if k not in ("cmvn_window", "vad_rule")}
    loaded = MfccConfig.from_dict(old)
    assert loaded == MfccConfig(cmvn="meanvar", vad=True)
    assert (loaded.cmvn_window, loaded.vad_rule) == (300, "peak")
    y = _speech(2.0, 8000, seed=17)
    x = extract(y, 8000, config=loaded)
    path = tmp_path / "old.h5"
    write_features(path, [("u", x, "1", "s")], config=loaded, sample_rate=8000)
    with h5py.File(path, "r+") as f:  # as an archive written before this change stores it
        f.attrs["config"] = json.dumps(old, sort_keys=True)
    with FeatureArchive(path) as fa:
        assert fa.config == loaded
        np.testing.assert_array_equal(fa["u"], x)
    # ... and its frames are still what that configuration computes: defaults keep today's outputs
    a = analyse(y, 8000, config=loaded)
    keep = a.log_energy >= a.log_energy.max() - 40 * np.log(10) / 10
    np.testing.assert_array_equal(x, normalise(a.feats[keep], "meanvar"))
    np.testing.assert_array_equal(utterance_frames(analyse(y, 8000, config=loaded)), x)


def test_an_unfinished_extraction_from_before_these_options_resumes(tmp_path):
    from acoustic_gmm.errors import ArchiveError
    from acoustic_gmm.storage._corpus import JOB_FILE, _prepare_partial

    cfg = MfccConfig().to_dict()
    old = {k: v for k, v in cfg.items() if k not in ("cmvn_window", "vad_rule")}
    partial = tmp_path / "f.h5.partial"
    partial.mkdir()
    (partial / JOB_FILE).write_text(json.dumps({"config": old, "data_dir": "d"}))
    _prepare_partial(partial, {"config": cfg, "data_dir": "d"})  # the same settings: resumes
    with pytest.raises(ArchiveError, match=r"other settings \(config differ\)"):
        _prepare_partial(partial, {"config": {**cfg, "cmvn": "warp"}, "data_dir": "d"})
