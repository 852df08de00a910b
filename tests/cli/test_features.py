"""`acoustic-gmm features` and `info`: extracting a data directory from the command line (options, configuration
files, front ends, all of FSDD), what the command says when recordings are unusable or at other rates, and its
runs that go wrong: a second run on one output, --strict, Ctrl-C and kill -9 with workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import acoustic_gmm.storage._corpus as corpus
from acoustic_gmm.cli import main
from acoustic_gmm.features import MfccConfig, extract_file
from acoustic_gmm.storage import FeatureArchive, extract_corpus

from ..conftest import FSDD, _speech, tone, wait_for
from ..test_corpus import good_signals as corpus_signals  # test_corpus.py's signals, not test_extraction_errors.py's
from ..test_extraction_errors import good_signals


def test_cli_features_and_info(make_corpus, tmp_path):
    data, _ = make_corpus({**corpus_signals(5), "b_zero": np.zeros(3000, np.float32)})
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"n_mfcc": 20, "cmvn": "meanvar"}))
    runner = CliRunner()
    result = runner.invoke(main, ["features", str(data), "--out", str(tmp_path / "f.h5"), "--jobs", "1",
                                  "--config", str(config), "--deltas", "1", "--vad"])
    assert result.exit_code == 0, result.output
    assert "5 utterances" in result.output and "skipped 1 utterance(s)" in result.output
    with FeatureArchive(tmp_path / "f.h5") as fa:
        assert fa.config == MfccConfig(n_mfcc=20, cmvn="meanvar", deltas=1, vad=True) and fa.n_features == 40
    result = runner.invoke(main, ["info", str(tmp_path / "f.h5")])
    assert result.exit_code == 0
    assert "utterances  5" in result.output and "labels      3: 0 (2), 1 (2), 2 (1)" in result.output
    assert "b_zero: all 3000 samples are zero" in result.output
    facts = json.loads(runner.invoke(main, ["info", "--json", str(tmp_path / "f.h5")]).output)
    assert facts["n_features"] == 40 and facts["speakers"] == {"spk0": 3, "spk1": 2}
    result = runner.invoke(main, ["features", str(data), "--out", str(tmp_path / "g.h5"), "--strict", "-j", "1"])
    assert result.exit_code == 1 and "Error: b_zero" in result.output and "digital silence" in result.output
    result = runner.invoke(main, ["features", str(data), "--out", str(tmp_path / "h.h5"), "--cmvn", "cms"])
    assert result.exit_code == 2 and "'cms' is not one of 'none', 'mean', 'meanvar'" in result.output


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_features_over_all_of_fsdd(tmp_path):
    prep = Path(__file__).resolve().parents[2] / "recipes" / "fsdd" / "local" / "prepare_data.py"
    subprocess.run([sys.executable, str(prep), "--data", str(FSDD.parent), "--out", str(tmp_path / "data")],
                   check=True, capture_output=True)
    result = CliRunner().invoke(main, ["features", str(tmp_path / "data" / "all"), "--out", str(tmp_path / "f.h5")])
    assert result.exit_code == 0, result.output
    with FeatureArchive(tmp_path / "f.h5") as fa:
        assert len(fa) == 3000 and not fa.skipped and fa.n_features == 39
        assert set(fa.labels.values()) == set("0123456789") and len(set(fa.speakers.values())) == 6


def listing(folder):
    """Every entry under ``folder`` (but the lock files of outputs) with its size and mtime."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            if name.endswith(".lock"):
                continue
            st = os.stat(os.path.join(root, name))
            out[os.path.relpath(os.path.join(root, name), folder)] = (st.st_size, st.st_mtime_ns)
    return out


def features(*args):
    return CliRunner().invoke(main, ["features", *map(str, args)])


def test_nothing_extracted_leaves_the_old_archive_and_no_leftovers(make_corpus, tmp_path):
    good, _ = make_corpus(good_signals(4), name="good")
    bad, paths = make_corpus({"z_silent1": np.zeros(4000, np.float32), "z_silent2": np.zeros(3000, np.float32),
                              "s_short1": tone(0.01), "s_short2": tone(0.015), "s_short3": tone(0.02)}, name="bad")
    keep = tmp_path / "keep.h5"
    assert features(good, "--out", keep, "-j", "1").exit_code == 0
    before, stat = keep.read_bytes(), keep.stat()
    files = listing(tmp_path)
    for jobs in ("1", "2"):
        result = features(bad, "--out", keep, "--overwrite", "-j", jobs)
        assert result.exit_code == 1, result.output
        message = result.output
        assert "no utterance could be extracted from its 5 utterance(s)" in message
        assert "3 shorter than one analysis window, 2 digital silence" in message
        assert f"s_short1 ({paths['s_short1']}): 80 samples (10.0 ms) is shorter than one 25 ms" in message
        assert "s_short2 (" in message and "s_short3 (" in message and "and 2 more" in message
        assert keep.read_bytes() == before and keep.stat().st_mtime_ns == stat.st_mtime_ns
        assert listing(tmp_path) == files  # no OUT.partial/, no temporary file
    # Library: the same, and the error names the problems.
    with pytest.raises(corpus.DataError, match=r"2 digital silence; first problems: s_short1"):
        extract_corpus(bad, keep, overwrite=True, jobs=1, batch_size=2)
    assert keep.read_bytes() == before and listing(tmp_path) == files


def test_the_sample_rate_is_that_of_most_recordings(make_corpus, tmp_path):
    signals = {**good_signals(6), "0_aaa_first": (tone(0.5, 44100), 44100)}  # sorted first
    data, paths = make_corpus(signals)
    result = features(data, "--out", tmp_path / "f.h5", "-j", "1")
    assert result.exit_code == 0, result.output
    assert "6 utterances" in result.output and "skipped 1 utterance(s) (1 another sample rate)" in result.output
    with FeatureArchive(tmp_path / "f.h5") as fa:
        assert fa.sample_rate == 8000 and len(fa) == 6
        (utt, path, reason), = fa.skipped
    assert utt == "0_aaa_first" and path == str(paths["0_aaa_first"])
    assert reason == ("sample rate 44100 Hz differs from the archive's 8000 Hz (the rate of most recordings): "
                      "pass sample_rate=8000 (MfccConfig.sample_rate) to resample every file to 8000 Hz, "
                      "or sample_rate=44100 to resample every file to 44100 Hz")
    assert f"0_aaa_first ({paths['0_aaa_first']}): sample rate 44100 Hz" in result.output
    assert "pass --sample-rate 8000 (MfccConfig.sample_rate)" in result.output  # the command says it in flags
    # The option the message names does what it says.
    result = features(data, "--out", tmp_path / "g.h5", "-j", "1", "--sample-rate", "8000")
    assert result.exit_code == 0 and "7 utterances" in result.output and "skipped" not in result.output


def test_an_output_in_a_new_folder(make_corpus, tmp_path):
    data, _ = make_corpus(good_signals(3))
    result = features(data, "--out", tmp_path / "new" / "deeper" / "f.h5", "-j", "1")
    assert result.exit_code == 0, result.output
    assert [n for n in os.listdir(tmp_path / "new" / "deeper") if not n.endswith(".lock")] == ["f.h5"]


def test_strict_and_failures_leave_no_partial_folder(make_corpus, tmp_path):
    data, paths = make_corpus({**good_signals(6), "9_zz_bad": np.zeros(3000, np.float32)})
    files = listing(tmp_path)
    for jobs in ("1", "2"):
        result = features(data, "--out", tmp_path / "f.h5", "--strict", "-j", jobs)
        assert result.exit_code == 1 and f"Error: 9_zz_bad ({paths['9_zz_bad']}): all 3000" in result.output
        assert listing(tmp_path) == files


SLOW_RUN = """
import sys, time
import acoustic_gmm.storage._corpus as c
real = c.extract_recording
def slow(*args, **kwargs):
    time.sleep({delay})
    return real(*args, **kwargs)
c.extract_recording = slow
from acoustic_gmm.cli import main
sys.argv = ["acoustic-gmm", "features", *sys.argv[1:]]
main()
"""


def start_slow(args, tmp_path, delay=0.01, name="run"):
    """``features ARGS`` in a new session (so signals reach it as Ctrl-C from a terminal would), slowed down
    by ``delay`` seconds a recording; its output goes to files (workers would keep a pipe open)."""
    out, err = open(tmp_path / f"{name}.out", "w"), open(tmp_path / f"{name}.err", "w")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN.format(delay=delay), *map(str, args)],
                            stdout=out, stderr=err, start_new_session=True)
    out.close()
    err.close()
    return proc


def children(pid):
    psutil = pytest.importorskip("psutil")
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(procs):
    import psutil

    left = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                left.append(p)
        except psutil.NoSuchProcess:
            pass
    return left


def test_a_second_run_on_the_same_output_stops_at_once(make_corpus, tmp_path):
    data, _ = make_corpus(good_signals(12))
    other, _ = make_corpus(good_signals(5), name="other")
    out = tmp_path / "f.h5"
    first = start_slow([data, "--out", out, "-j", "1"], tmp_path, delay=0.2)  # ~2.4 s
    try:
        partial = tmp_path / "f.h5.partial"
        started = lambda: (partial / "job.json").exists() and "sample_rate" in (partial / "job.json").read_text()  # noqa: E731
        assert wait_for(lambda: started() or first.poll() is not None)
        assert first.poll() is None
        for source in (data, other):
            # the first run is paused while the second tries: any change to its files is the second's doing
            frozen = [first.pid] + [c.pid for c in children(first.pid)]
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            files = listing(tmp_path)
            t0 = time.monotonic()
            result = features(source, "--out", out, "-j", "1", "--overwrite")
            assert time.monotonic() - t0 < 2
            assert result.exit_code == 1
            message = result.output.strip()
            assert "\n" not in message and "another acoustic-gmm run is writing" in message
            assert str(out) in message and f".{out.name}.lock" in message
            assert "delete" not in message
            now = listing(tmp_path)  # the first run's files: none removed or rewritten by the second
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
            assert now == files
        assert first.wait(60) == 0, (tmp_path / "run.err").read_text()
    finally:
        if first.poll() is None:
            first.kill()
    with FeatureArchive(out) as fa:
        assert len(fa) == 12
    assert not (tmp_path / "f.h5.partial").exists()


@pytest.mark.slow
def test_ctrl_c_with_workers_stops_quietly_and_leaves_no_worker(make_corpus, tmp_path):
    pytest.importorskip("psutil")
    data, _ = make_corpus(good_signals(600, seconds=0.2))
    out = tmp_path / "f.h5"
    run = start_slow([data, "--out", out, "--jobs", "2"], tmp_path)  # batches of 256: ~2.6 s each
    try:
        assert wait_for(lambda: len(children(run.pid)) >= 2 or run.poll() is not None)
        workers = children(run.pid)
        time.sleep(0.5)  # both workers are in their batch
        assert run.poll() is None
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole process group
        assert run.wait(30) == 130
    finally:
        if run.poll() is None:
            run.kill()
    err = (tmp_path / "run.err").read_text()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted" in err
    assert wait_for(lambda: not alive(workers), 5), alive(workers)
    assert not out.exists() and not list((tmp_path / "f.h5.partial").glob(".*.tmp"))
    # The same command again finishes the job.
    result = features(data, "--out", out, "--jobs", "2")
    assert result.exit_code == 0 and "600 utterances" in result.output


@pytest.mark.slow
def test_workers_do_not_outlive_a_killed_parent(make_corpus, tmp_path):
    pytest.importorskip("psutil")
    data, _ = make_corpus(good_signals(600, seconds=0.2))
    run = start_slow([data, "--out", tmp_path / "f.h5", "--jobs", "2"], tmp_path)
    workers = []
    try:
        assert wait_for(lambda: len(children(run.pid)) >= 2 or run.poll() is not None)
        workers = children(run.pid)
        time.sleep(0.3)
        run.kill()  # kill -9: no chance to stop the pool
        run.wait(10)
        assert wait_for(lambda: not alive(workers), 5), f"workers still running: {alive(workers)}"
    finally:
        for w in alive(workers):
            w.kill()
    err = (tmp_path / "run.err").read_text()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_command_line_options_and_extraction(make_corpus, recording):
    from acoustic_gmm.cli import main
    from acoustic_gmm.storage import FeatureArchive

    help_text = CliRunner().invoke(main, ["features", "--help"], terminal_width=200).output
    assert "--cmvn [none|mean|meanvar|speaker|sliding|sliding-var|warp]" in help_text
    assert "--cmvn-window INTEGER" in help_text and "--vad-rule [peak|kaldi]" in help_text
    data, paths = make_corpus({"a_1": _speech(4.0, 8000, seed=15), "b_2": _speech(5.0, 8000, seed=16)})
    out = data.parent / "f.h5"
    result = CliRunner().invoke(main, ["features", str(data), "-o", str(out), "-j", "1", "--cmvn", "warp",
                                       "--cmvn-window", "151", "--vad", "--vad-rule", "kaldi"])
    assert result.exit_code == 0, result.output
    cfg = MfccConfig(cmvn="warp", cmvn_window=151, vad=True, vad_rule="kaldi")
    with FeatureArchive(out) as fa:
        assert fa.config == cfg
        for utt, path in paths.items():
            np.testing.assert_array_equal(fa[utt], extract_file(path, config=cfg))
    bad = CliRunner().invoke(main, ["features", str(data), "-o", str(out) + "2", "--cmvn-window", "1"])
    assert bad.exit_code != 0 and "cmvn_window must be between 2 and 100000 frames, got 1" in bad.output
