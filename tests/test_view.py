"""Normalisation when frames are read: a raw archive (format 3) read through a view gives, bit for bit, the frames
extraction with the view's configuration gives; every way of reading agrees; a view the stored frames cannot give
is an error naming the archive; and one archive serves classification and speaker verification, each with its
own normalisation, through the command line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from acoustic_gmm import DataError
from acoustic_gmm.cli import main
from acoustic_gmm.features import MfccConfig, extract_file, speaker_cmvn
from acoustic_gmm.storage import FeatureArchive, extract_corpus

from .conftest import tone


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Six one-second utterances of two speakers, with silences (VAD has work) of different loudness."""
    import soundfile as sf

    from acoustic_gmm.storage import write_data_dir

    tmp = tmp_path_factory.mktemp("view")
    wav = {}
    for i in range(6):
        quiet = np.zeros(2000, np.float32) + 1e-4 * np.random.default_rng(i).standard_normal(2000).astype(np.float32)
        y = np.concatenate([quiet, tone(0.7, freq=300 + 150 * i, amp=0.1 + 0.1 * i, seed=i), quiet])
        wav[f"s{i % 2}_u{i}"] = tmp / f"u{i}.wav"
        sf.write(wav[f"s{i % 2}_u{i}"], y, 8000, subtype="PCM_16")
    write_data_dir(tmp / "data", wav, utt2spk={u: u[:2] for u in wav}, utt2label={u: u[-1] for u in wav})
    stored = MfccConfig(n_mfcc=20, vad_db=30)
    extract_corpus(tmp / "data", tmp / "raw.h5", config=stored, progress=False, jobs=1)
    return tmp, wav, stored


VIEWS = [dict(cmvn=c, vad=v, n_mfcc=n, deltas=d) for c in ("none", "mean", "meanvar", "speaker", "sliding-var", "warp")
         for v in (False, True) for n, d in ((20, 2), (13, 1))]


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: "-".join(map(str, v.values())))
def test_a_view_is_what_extraction_with_its_configuration_gives(corpus, view):
    tmp, wav, stored = corpus
    config = dataclasses.replace(stored, cmvn_window=50, **view)
    with FeatureArchive(tmp / "raw.h5", view={**view, "cmvn_window": 50}) as fa:
        assert fa.raw and fa.config == config and fa.stored_config == stored
        if view["cmvn"] == "speaker":  # every utterance of a speaker normalised with the speaker's statistics
            plain = {u: extract_file(p, config=dataclasses.replace(config, cmvn="none")) for u, p in wav.items()}
            norm = speaker_cmvn((u[:2], x) for u, x in plain.items())
            want = {u: ((x - norm[u[:2]][0]) * norm[u[:2]][1]).astype(np.float32) for u, x in plain.items()}
        else:
            want = {u: extract_file(p, config=config) for u, p in wav.items()}
        assert fa.n_frames == {u: len(x) for u, x in want.items()}
        for u in fa.ids:
            np.testing.assert_array_equal(fa[u], want[u])
        # every reader: one array, a list, blocks across utterances in any order, rows
        ids = fa.ids[::-1]
        everything = np.concatenate([want[u] for u in ids])
        np.testing.assert_array_equal(fa.frames(ids), everything)
        np.testing.assert_array_equal(np.concatenate(fa.utterances(ids)), everything)
        np.testing.assert_array_equal(np.concatenate([b.copy() for b in fa.iter_chunks(37, ids, reuse=2)]), everything)
        rows = np.random.default_rng(0).integers(0, len(everything), 50)
        np.testing.assert_array_equal(fa.rows(rows, ids), everything[rows])
    if view["vad"]:
        assert sum(fa.n_frames.values()) < sum(len(extract_file(p, config=stored)) for p in wav.values())


def test_views_the_stored_frames_cannot_give_are_errors_naming_the_archive(corpus):
    tmp, _, _ = corpus
    for view, why in [({"n_mfcc": 21}, "the frames hold 20 cepstra and 2 delta order.s.; n_mfcc=21 deltas=2 asks for "
                                       "more: extract them again"),
                      ({"cmvn": "median"}, "cmvn must be one of"),
                      ({"vad_db": 40, "vad": True}, "a view sets cmvn, cmvn_window, vad, n_mfcc, deltas; not vad_db"),
                      ({"n_mels": 20}, "not n_mels")]:
        with pytest.raises(DataError if "hold" in why else Exception, match=why):
            FeatureArchive(tmp / "raw.h5", view=view)
    with pytest.raises(DataError, match=r"raw.h5: the frames were computed with another n_mels \(40, not 20\)"):
        FeatureArchive(tmp / "raw.h5", view=MfccConfig(n_mfcc=20, vad_db=30, n_mels=20))


def test_a_vad_view_drops_an_utterance_it_leaves_silent_and_says_so(corpus, make_corpus):
    tmp, wav, _ = corpus
    data, _ = make_corpus({"loud": tone(0.5), "flat": np.full(4000, 0.01, np.float32)}, name="flat")
    cfg = MfccConfig(vad_rule="kaldi", dither=0.0)  # Kaldi's rule can find no voiced frame; no VAD at extraction
    extract_corpus(data, tmp / "flat.h5", config=cfg, progress=False, jobs=1)
    with FeatureArchive(tmp / "flat.h5") as fa:
        assert fa.ids == ["flat", "loud"]
    with FeatureArchive(tmp / "flat.h5", view={"vad": True}) as fa:
        assert fa.ids == ["loud"] and ["flat", "", "no frames left after VAD"] in fa.skipped


def test_one_archive_serves_classification_and_verification(corpus):
    """The defaults (per-speaker CMVN) train and evaluate word models; the UBM reads the same archive with
    per-utterance CMN and VAD, records that view, and enrolment and verification read the archive its way: the
    same scores as on an archive extracted for verification.  Models never see frames read another way."""
    tmp, wav, stored = corpus
    run = CliRunner()

    def ok(*args):
        result = run.invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result

    sv = dataclasses.replace(stored, cmvn="mean", vad=True, deltas=1)
    extract_corpus(tmp / "data", tmp / "sv.h5", config=sv, progress=False, jobs=1)
    (tmp / "trials").write_text("".join(f"{m} {u} {'target' if u[:2] == m else 'nontarget'}\n"
                                        for u in wav for m in ("s0", "s1")))
    scores = {}
    for name, feats, view in (("one", tmp / "raw.h5", ["--cmvn", "mean", "--vad", "--deltas", "1"]),
                              ("own", tmp / "sv.h5", [])):
        ok("ubm", feats, "-k", "2", *view, "--out", tmp / f"ubm_{name}.h5")
        ok("enroll", tmp / f"ubm_{name}.h5", feats, "--out", tmp / f"spk_{name}.h5")
        ok("verify", tmp / f"spk_{name}.h5", tmp / "trials", feats, "--scores", tmp / f"scores_{name}")
        scores[name] = (tmp / f"scores_{name}").read_text()
    assert scores["one"] == scores["own"]
    ok("train", tmp / "raw.h5", "--slices", "1", "-k", "1", "-j", "1", "--out", tmp / "words.h5")
    evaluated = ok("evaluate", tmp / "words.h5", tmp / "raw.h5")
    assert "accuracy 100.00 % (6/6)" in evaluated.output
    trained_on_mean = ok("train", tmp / "raw.h5", "--slices", "1", "-k", "1", "-j", "1", "--cmvn", "mean",
                         "--out", tmp / "words_mean.h5")
    assert trained_on_mean.exit_code == 0
    from acoustic_gmm.classes import ModelSet, evaluate

    ms = ModelSet.load(tmp / "words_mean.h5")
    assert ms.config.cmvn == "mean" and evaluate(ms, tmp / "raw.h5")["n"] == 6  # read as the models were trained
    with FeatureArchive(tmp / "raw.h5", view={"cmvn": "meanvar"}) as fa:
        with pytest.raises(DataError, match=r"raw.h5 is open with another view than the frames are wanted in "
                                            r"\(cmvn: open 'meanvar' vs wanted 'mean'\)"):
            evaluate(ms, fa)


def test_segments_are_raw_too_and_normalised_with_their_recording(corpus):
    """A segment's per-utterance CMVN uses its whole recording (the archive keeps the recording's sums): the view
    is extraction's to float32 rounding; per-speaker CMVN and none are bit for bit; sliding windows need the
    recording itself, so such an archive is stored normalised and a sliding view of a raw one is refused."""
    from acoustic_gmm.features import extract_segments, read_audio
    from acoustic_gmm.storage import write_data_dir

    tmp, wav, stored = corpus
    recs = dict(list(wav.items())[:2])
    spans = {f"{r}-{k}": (r, 0.1 + 0.3 * k, 0.35 + 0.3 * k) for r in recs for k in range(3)}
    write_data_dir(tmp / "seg", recs, segments=spans, utt2spk={u: "one" for u in spans},
                   utt2label={u: u[-1] for u in spans})
    extract_corpus(tmp / "seg", tmp / "seg.h5", config=stored, progress=False, jobs=1)
    for cmvn in ("none", "mean", "meanvar", "speaker"):
        config = dataclasses.replace(stored, cmvn=cmvn, vad=True)
        with FeatureArchive(tmp / "seg.h5", view={"cmvn": cmvn, "vad": True}) as fa:
            assert fa.raw
            want = {}
            for r, p in recs.items():
                ours = [u for u in spans if spans[u][0] == r]
                plain = dataclasses.replace(config, cmvn="none") if cmvn == "speaker" else config
                want.update(zip(ours, extract_segments(*read_audio(p), [spans[u][1:] for u in ours], config=plain)))
            if cmvn == "speaker":
                mean, scale = speaker_cmvn(("one", x) for x in want.values())["one"]
                want = {u: ((x - mean) * scale).astype(np.float32) for u, x in want.items()}
            for u in fa.ids:
                if cmvn in ("none", "speaker"):
                    np.testing.assert_array_equal(fa[u], want[u])
                else:
                    np.testing.assert_allclose(fa[u], want[u], atol=2e-5 * np.abs(want[u]).max())
    with pytest.raises(DataError, match="seg.h5: segments whose recordings are not stored: cmvn='warp'"):
        FeatureArchive(tmp / "seg.h5", view={"cmvn": "warp"})
    extract_corpus(tmp / "seg", tmp / "seg_sliding.h5", config=dataclasses.replace(stored, cmvn="sliding"),
                   progress=False, jobs=1)
    with FeatureArchive(tmp / "seg_sliding.h5") as fa:
        assert not fa.raw and fa.config.cmvn == "sliding"


def test_info_says_a_raw_archive_is_normalised_when_read(corpus):
    tmp, _, _ = corpus
    result = CliRunner().invoke(main, ["info", str(tmp / "raw.h5")])
    assert result.exit_code == 0 and "(format 3)" in result.output.splitlines()[0]
    assert "  normalised  when read (cmvn and vad above are the default view" in result.output


def test_streaming_a_view_makes_it_once(corpus, tmp_path, monkeypatch):
    """Streaming EM reads an archive on every pass: the first complete pass over a view also writes it to a
    temporary file, and later passes are views of that file, the same numbers; an unfinished pass leaves nothing,
    and closing the archive removes the file."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    tmp, _, _ = corpus
    with FeatureArchive(tmp / "raw.h5", view={"cmvn": "meanvar", "vad": True}) as fa:
        want = fa.frames()
        partial = fa.iter_chunks(50)
        next(partial)
        partial.close()
        assert list(tmp_path.glob("acoustic-gmm-view-*")) == []  # the unfinished pass left no file
        first = np.concatenate([b.copy() for b in fa.iter_chunks(50)])
        assert len(list(tmp_path.glob("acoustic-gmm-view-*"))) == 1
        again = list(fa.iter_chunks(50))
        assert isinstance(again[0], np.memmap)  # from the file this time
        np.testing.assert_array_equal(first, want)
        np.testing.assert_array_equal(np.concatenate(again), want)
    assert list(tmp_path.glob("acoustic-gmm-view-*")) == []
