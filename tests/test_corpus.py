"""Extraction over a data directory: archives, bad input, resuming, parallel workers (the command line:
cli/test_features.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import acoustic_gmm.storage._corpus as corpus
from acoustic_gmm import ArchiveError, DataError, ParameterError
from acoustic_gmm.errors import OutputError
from acoustic_gmm.features import MfccConfig, extract, read_audio
from acoustic_gmm.storage import FeatureArchive, extract_corpus, extract_files

from .conftest import tone


def good_signals(n=12):
    return {f"{i % 3}_utt{i:02d}": tone(0.3 + 0.05 * i, freq=200 + 100 * i, seed=i) for i in range(n)}


def archive_contents(path):
    with FeatureArchive(path) as fa:
        return {u: fa[u] for u in fa.ids}, fa.labels, fa.speakers, fa.skipped


def test_archive_round_trip(make_corpus, tmp_path):
    data, paths = make_corpus(good_signals())
    report = extract_corpus(data, tmp_path / "f.h5", config=MfccConfig(cmvn="meanvar"), jobs=1)
    assert report.n_utterances == 12 and not report.skipped
    with FeatureArchive(tmp_path / "f.h5") as fa:
        assert fa.ids == sorted(paths) and fa.n_features == 39 and fa.sample_rate == 8000
        assert fa.config == MfccConfig(cmvn="meanvar")
        for utt, path in paths.items():
            np.testing.assert_array_equal(fa[utt], extract(*read_audio(path), config=MfccConfig(cmvn="meanvar")))
        assert fa.labels["1_utt04"] == "1" and fa.speakers["1_utt04"] == "spk0"
        assert set(fa.by_label("2")) == {u for u in paths if u.startswith("2_")}
        # make_corpus gives the i-th utterance of good_signals() speaker "spk{i % 2}": the odd i are spk1.
        assert set(fa.by_speaker("spk1")) == {"1_utt01", "0_utt03", "2_utt05", "1_utt07", "0_utt09", "2_utt11"}
        everything = fa.frames()
        assert everything.shape == (sum(fa.n_frames.values()), 39)
        np.testing.assert_array_equal(np.vstack(list(fa.iter_chunks(37))), everything)
        assert all(len(c) == 37 for c in list(fa.iter_chunks(37))[:-1])
        np.testing.assert_array_equal(fa.frames(["0_utt03", "0_utt00"]), np.vstack([fa["0_utt03"], fa["0_utt00"]]))
        assert "wav.scp" in fa.manifest and "utt2label" in fa.manifest
        with pytest.raises(KeyError, match="no utterance 'nope'"):
            fa["nope"]
        with pytest.raises(ParameterError):
            next(fa.iter_chunks(0))


def test_every_bad_input_is_reported_and_skipped(make_corpus, tmp_path):
    ok = good_signals(4)
    good_wav = open(make_corpus(ok, name="ref")[1]["0_utt00"], "rb").read()
    bad = {
        "b_missing": None,
        "b_text": b"this is not audio\n",
        "b_empty": b"",
        "b_truncated": good_wav[: len(good_wav) // 2],
        "b_short": tone(0.01),
        "b_zero": np.zeros(4000, np.float32),
        "b_nan": np.r_[tone(0.3), np.float32(np.nan)],
        "b_rate": (tone(0.5, 16000), 16000),
    }
    data, paths = make_corpus({**ok, **bad})
    report = extract_corpus(data, tmp_path / "f.h5", jobs=1)
    reasons = {utt: reason for utt, path, reason in report.skipped}
    assert report.n_utterances == 4 and set(reasons) == set(bad)
    assert reasons["b_missing"] == "file not found"
    assert reasons["b_text"].startswith("cannot read audio (Format not recognised")
    assert reasons["b_empty"].startswith("cannot read audio")
    assert reasons["b_truncated"].startswith("truncated: the header announces")
    assert "shorter than one 25 ms analysis window" in reasons["b_short"]
    assert "all 4000 samples are zero (digital silence)" in reasons["b_zero"]
    assert reasons["b_nan"] == "1 of 2401 samples are NaN or inf"
    assert reasons["b_rate"].startswith("sample rate 16000 Hz differs from the archive's 8000 Hz")
    for utt, path, _ in report.skipped:
        assert path == str(paths[utt])
    summary = report.summary()
    assert "skipped 8 utterance(s)" in summary and f"b_nan ({paths['b_nan']}): 1 of 2401" in summary
    contents, *_, skipped = archive_contents(tmp_path / "f.h5")
    assert set(contents) == set(ok) and len(skipped) == 8
    assert all(np.isfinite(x).all() for x in contents.values())


def test_resampling_takes_in_other_rates(make_corpus, tmp_path):
    data, _ = make_corpus({"a_1": tone(0.5), "a_2": (tone(0.5, 16000), 16000)})
    report = extract_corpus(data, tmp_path / "f.h5", config=MfccConfig(sample_rate=8000), jobs=1)
    assert report.n_utterances == 2 and not report.skipped


@pytest.mark.parametrize("jobs", [1, 2])
def test_strict_stops_at_the_first_problem_and_leaves_nothing(make_corpus, tmp_path, jobs):
    signals = good_signals(6)
    signals["9_zz_bad"] = np.zeros(3000, np.float32)
    data, paths = make_corpus(signals)
    with pytest.raises(DataError, match=rf"9_zz_bad \({paths['9_zz_bad']}\): all 3000 samples are zero"):
        extract_corpus(data, tmp_path / "f.h5", jobs=jobs, strict=True, batch_size=2)
    assert not (tmp_path / "f.h5").exists()
    assert not (tmp_path / "f.h5.partial").exists()  # a strict stop is not an interruption: nothing to resume
    assert not list(tmp_path.glob(".f.h5.*.tmp"))


def test_no_utterance_at_all_is_an_error(make_corpus, tmp_path):
    data, _ = make_corpus({"a": np.zeros(4000, np.float32), "b": b"junk"})
    with pytest.raises(DataError, match="no utterance could be extracted"):
        extract_corpus(data, tmp_path / "f.h5", jobs=1)
    assert not (tmp_path / "f.h5").exists()


@pytest.mark.slow
def test_interrupted_extraction_resumes_to_the_same_archive(make_corpus, tmp_path, monkeypatch):
    data, _ = make_corpus(good_signals(14))
    extract_corpus(data, tmp_path / "whole.h5", jobs=1, batch_size=3)
    calls = {"n": 0}
    real = corpus._run_batch

    def ctrl_c_on_third_batch(task):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(corpus, "_run_batch", ctrl_c_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        extract_corpus(data, tmp_path / "f.h5", jobs=1, batch_size=3)
    partial = tmp_path / "f.h5.partial"
    # the finished batches are kept for resuming, and nothing else (no temporaries)
    assert sorted(p.name for p in partial.iterdir()) == ["batch-000000.h5", "batch-000001.h5", "job.json"]
    assert not (tmp_path / "f.h5").exists()
    monkeypatch.setattr(corpus, "_run_batch", real)
    report = extract_corpus(data, tmp_path / "f.h5", jobs=1, batch_size=3)
    assert report.batches_done_before == 2 and not partial.exists()
    whole, resumed = archive_contents(tmp_path / "whole.h5"), archive_contents(tmp_path / "f.h5")
    assert whole[0].keys() == resumed[0].keys() and whole[1:] == resumed[1:]
    for utt in whole[0]:
        np.testing.assert_array_equal(whole[0][utt], resumed[0][utt])


@pytest.mark.slow
def test_killed_extraction_resumes_to_the_same_archive(make_corpus, tmp_path):
    data, _ = make_corpus(good_signals(10))
    extract_corpus(data, tmp_path / "whole.h5", jobs=1, batch_size=2)
    # A real SIGKILL in the middle of the job, from inside the fourth batch.
    script = f"""
import os, signal
import acoustic_gmm.storage._corpus as c
real, calls = c._run_batch, [0]
def run(task):
    calls[0] += 1
    if calls[0] == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(task)
c._run_batch = run
c.extract_corpus({str(data)!r}, {str(tmp_path / 'f.h5')!r}, jobs=1, batch_size=2)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert len(list((tmp_path / "f.h5.partial").glob("batch-*.h5"))) == 3
    report = extract_corpus(data, tmp_path / "f.h5", jobs=1, batch_size=2)
    assert report.batches_done_before == 3
    whole, resumed = archive_contents(tmp_path / "whole.h5"), archive_contents(tmp_path / "f.h5")
    assert whole[0].keys() == resumed[0].keys()
    assert all(np.array_equal(whole[0][u], resumed[0][u]) for u in whole[0])
    assert sorted(n for n in os.listdir(tmp_path) if not n.endswith(".lock")) == \
        sorted(["data", "data-audio", "f.h5", "whole.h5"])


def test_resuming_with_other_settings_is_refused(make_corpus, tmp_path, monkeypatch):
    data, _ = make_corpus(good_signals(4))
    monkeypatch.setattr(corpus, "_run_batch", lambda task: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        extract_corpus(data, tmp_path / "f.h5", jobs=1)
    with pytest.raises(ArchiveError, match=r"f.h5.partial: an unfinished extraction with other settings \(config"):
        extract_corpus(data, tmp_path / "f.h5", config=MfccConfig(vad=True), jobs=1)


def test_parallel_workers_give_the_identical_archive(make_corpus, tmp_path):
    data, _ = make_corpus(good_signals(16))
    extract_corpus(data, tmp_path / "one.h5", jobs=1, batch_size=3)
    extract_corpus(data, tmp_path / "two.h5", jobs=2, batch_size=3)
    a, b = archive_contents(tmp_path / "one.h5"), archive_contents(tmp_path / "two.h5")
    assert a[1:] == b[1:] and all(np.array_equal(a[0][u], b[0][u]) for u in a[0])


def test_an_existing_archive_is_never_damaged(make_corpus, tmp_path, monkeypatch):
    data, _ = make_corpus(good_signals(4))
    out = tmp_path / "f.h5"
    extract_corpus(data, out, jobs=1)
    before = out.read_bytes()
    with pytest.raises(OutputError, match=r"f\.h5: exists; pass overwrite=True to replace it"):
        extract_corpus(data, out, jobs=1)
    bad, _ = make_corpus({"x": np.zeros(4000, np.float32)}, name="bad")
    with pytest.raises(DataError):
        extract_corpus(bad, out, jobs=1, overwrite=True, strict=True)
    assert out.read_bytes() == before and not (tmp_path / "f.h5.partial").exists()
    monkeypatch.setattr(corpus, "_run_batch", lambda task: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        extract_corpus(data, out, jobs=1, overwrite=True)
    monkeypatch.undo()
    assert out.read_bytes() == before
    with pytest.raises(ArchiveError, match="an unfinished extraction with other settings"):
        extract_corpus(data, out, config=MfccConfig(deltas=0), jobs=1, overwrite=True)
    shutil.rmtree(tmp_path / "f.h5.partial")
    extract_corpus(data, out, config=MfccConfig(deltas=0), jobs=1, overwrite=True)
    with FeatureArchive(out) as fa:
        assert fa.n_features == 13


def test_extract_files_keeps_order_and_reports_problems(make_corpus):
    _, paths = make_corpus({"a_1": tone(0.4), "a_2": np.zeros(3000, np.float32), "a_3": tone(0.6, seed=4)})
    results = extract_files([paths["a_3"], paths["a_2"], paths["a_1"]], jobs=2, batch_size=1)
    assert [None if x is None else len(x) for x, _ in results] == [58, None, 38]
    assert results[1][1] == "all 3000 samples are zero (digital silence)"


def test_feature_archive_errors(tmp_path):
    (tmp_path / "x.h5").write_text("nope")
    with pytest.raises(ArchiveError, match="not an HDF5 file"):
        FeatureArchive(tmp_path / "x.h5")
    from acoustic_gmm import GMM

    GMM(1).fit(np.random.default_rng(0).normal(size=(20, 2))).save(tmp_path / "m.h5")
    with pytest.raises(ArchiveError, match=r"not an acoustic_gmm feature archive \(it holds models\)"):
        FeatureArchive(tmp_path / "m.h5")


def test_speaker_cmvn_normalises_each_speakers_frames(make_corpus, tmp_path):
    signals = {f"d{i}_u{i}": tone(0.4 + 0.1 * i, freq=250 + 150 * i, amp=0.05 + 0.1 * (i % 3), seed=i)
               for i in range(8)}
    speakers = {u: "loud" if i < 4 else "soft" for i, u in enumerate(signals)}
    data, _ = make_corpus(signals, speakers=speakers)
    cfg = MfccConfig(cmvn="speaker")
    extract_corpus(data, tmp_path / "one.h5", config=cfg, jobs=1, batch_size=3)
    extract_corpus(data, tmp_path / "two.h5", config=cfg, jobs=2, batch_size=3)
    with FeatureArchive(tmp_path / "one.h5") as fa, FeatureArchive(tmp_path / "two.h5") as fb:
        assert fa.config.cmvn == "speaker"
        for spk in ("loud", "soft"):
            X = fa.frames(fa.ids_where(speaker=spk))
            np.testing.assert_allclose(X.mean(0), 0, atol=1e-4)
            np.testing.assert_allclose(X.std(0), 1, atol=1e-4)
            assert np.abs(fa[fa.ids_where(speaker=spk)[0]].mean(0)).max() > 0.1  # not per utterance
        assert all(np.array_equal(fa[u], fb[u]) for u in fa.ids)
    # Alone, an utterance is its own speaker: per-utterance mean and variance normalisation.
    y = tone(0.5)
    np.testing.assert_allclose(extract(y, 8000, config=cfg), extract(y, 8000, config=MfccConfig(cmvn="meanvar")))


def test_a_segment_past_its_recordings_end_is_reported_not_cut(make_corpus, tmp_path):
    from acoustic_gmm.storage import FeatureArchive, write_data_dir

    _, paths = make_corpus({"rec_1": tone(1.0)})
    segments = {"inside": ("rec_1", 0.1, 0.6), "rounded": ("rec_1", 0.5, 1.01),  # 10 ms past: a rounded time
                "past": ("rec_1", 0.5, 1.8)}  # was cut to 0.5-1.0 s without a word
    write_data_dir(tmp_path / "seg", {"rec_1": paths["rec_1"]}, segments=segments)
    report = extract_corpus(tmp_path / "seg", tmp_path / "f.h5", jobs=1, progress=False)
    with FeatureArchive(tmp_path / "f.h5") as fa:
        assert fa.ids == ["inside", "rounded"]
        (utt, _, reason), = fa.skipped
    assert utt == "past" and reason == "segment 0.5-1.8 s ends after the recording's end (1.000 s)"
    assert report.n_utterances == 2
    with pytest.raises(DataError, match=r"past .*: segment 0.5-1.8 s ends after the recording's end"):
        extract_corpus(tmp_path / "seg", tmp_path / "g.h5", jobs=1, progress=False, strict=True)


def test_impossible_headers_links_and_fifos_are_named_for_what_they_are(make_corpus, tmp_path):
    import os

    good_wav = open(make_corpus(good_signals(1), name="ref")[1]["0_utt00"], "rb").read()
    assert good_wav[12:16] == b"fmt " and good_wav[22:24] == b"\x01\x00"  # channels, then block align at 32
    seven = good_wav[:22] + (7).to_bytes(2, "little") + good_wav[24:]   # 7 channels in a 2-byte block
    data, paths = make_corpus({**good_signals(2), "b_seven": seven, "b_loop": None, "b_fifo": None})
    os.symlink(paths["b_loop"], paths["b_loop"])                        # a link to itself
    os.mkfifo(paths["b_fifo"])                                          # reading it would wait forever
    report = extract_corpus(data, tmp_path / "f.h5", jobs=1)
    reasons = {utt: reason for utt, _, reason in report.skipped}
    assert report.n_utterances == 2 and set(reasons) == {"b_seven", "b_loop", "b_fifo"}
    # all three were accepted as garbage frames or called "file not found"
    assert reasons["b_seven"] == "damaged WAV header: 7 channel(s) of 16 bits make 14-byte frames, the header says 2"
    assert reasons["b_loop"].startswith("a symbolic link that cannot be followed (Too many levels of symbolic links")
    assert reasons["b_fifo"] == "not a regular file (a FIFO, socket or device), not an audio file"
