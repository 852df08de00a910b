"""Feature extraction when things go wrong: nothing usable, failed batches, mixed sample rates, two runs on
one output, failures and Ctrl-C (no leftovers, no worker tracebacks, no orphaned workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

import acoustic_gmm.storage._corpus as corpus
from acoustic_gmm.cli import main
from acoustic_gmm.storage import FeatureArchive, extract_corpus

from .conftest import tone


def good_signals(n, seconds=0.3):
    return {f"{i % 3}_utt{i:03d}": tone(seconds + 0.01 * (i % 7), freq=200 + 37 * i, seed=i) for i in range(n)}


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


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_batch_in_which_everything_fails_is_reported(make_corpus, tmp_path, jobs):
    signals = good_signals(256, seconds=0.05)
    bad = {f"9_bad{i}": np.zeros(800, np.float32) for i in range(3)}
    data, paths = make_corpus({**signals, **bad})
    report = extract_corpus(data, tmp_path / "f.h5", jobs=jobs, progress=False)  # batches of 256: 256 good, 3 bad
    assert report.n_utterances == 256
    assert sorted(u for u, _, _ in report.skipped) == sorted(bad)
    assert all(p == str(paths[u]) for u, p, _ in report.skipped)
    assert "skipped 3 utterance(s) (3 digital silence):" in report.summary()
    with FeatureArchive(tmp_path / "f.h5") as fa:
        assert sorted(s[0] for s in fa.skipped) == sorted(bad) and len(fa) == 256
    # Small batches: the first and the last are all bad, one in the middle too.
    mixed = {"0_bad_a": np.zeros(800, np.float32), "0_bad_b": tone(0.01), **good_signals(4),
             "5_bad_c": np.zeros(900, np.float32), "5_bad_d": b"junk", "6_ok": tone(0.3),
             "9_bad_e": tone(0.005), "9_bad_f": None}
    data, _ = make_corpus(mixed, name="mixed")
    report = extract_corpus(data, tmp_path / "g.h5", jobs=jobs, batch_size=2, progress=False)
    bad_ids = sorted(u for u in mixed if "bad" in u)
    assert report.n_utterances == 5 and sorted(u for u, _, _ in report.skipped) == bad_ids
    with FeatureArchive(tmp_path / "g.h5") as fa:
        assert sorted(s[0] for s in fa.skipped) == bad_ids


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


def wait_for(condition, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


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
