"""The `acoustic-gmm` command group itself: version, help and a light start-up; the one output policy of every
command (nothing replaced unasked, no input overwritten, directories made, permissions from the umask, one writer
at a time); and no traceback reaching a user: an unexpected error is one line, Ctrl-C exits 130, a run killed with
its workers leaves no worker, no broken pipe and nothing beside its output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

import acoustic_gmm
from acoustic_gmm import GMM
from acoustic_gmm.cli import main
from acoustic_gmm.errors import ModelFileError
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.storage import locked, write_features

from ..conftest import invoke, wait_for


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"acoustic-gmm, version {acoustic_gmm.__version__}"


def test_help():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Gaussian-mixture acoustic modelling of speech" in result.output


def test_import_keeps_heavy_modules_lazy():
    code = ("import sys, acoustic_gmm.cli; "
            "print(sorted(m for m in ('h5py', 'librosa', 'scipy', 'sklearn', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_command_refuses_to_replace_an_output_without_overwrite(corpus, tmp_path):
    tmp, feats, trials = corpus
    out = tmp_path / "keep.h5"
    out.write_bytes(b"precious")
    for args in (["train", feats, "-k", "2", "--out", out], ["ubm", feats, "-k", "2", "--out", out],
                 ["enroll", tmp / "ubm.h5", feats, "--out", out],
                 ["verify", tmp / "spk.h5", trials, feats, "--scores", out],
                 ["evaluate", tmp / "models.h5", feats, "--metrics", out]):
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        flag = "--scores" if args[0] == "verify" else "--metrics" if args[0] == "evaluate" else "--out"
        assert f"Error: {flag} {out}: exists; pass --overwrite to replace it" in result.output
        assert out.read_bytes() == b"precious"
    result = invoke("train", feats, "-k", "2", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def test_an_output_that_is_an_input_is_refused_even_with_overwrite(corpus, tmp_path):
    tmp, feats, trials = corpus
    before = feats.read_bytes()
    for args in (["train", feats, "-k", "2", "--out", feats, "--overwrite"],
                 ["evaluate", tmp / "models.h5", feats, "--metrics", feats, "--overwrite"],
                 ["eer", trials, trials, "--metrics", trials, "--overwrite"]):
        result = invoke(*args)
        assert result.exit_code == 1 and "is also an input; write the result elsewhere" in result.output, result.output
    assert feats.read_bytes() == before


def test_missing_directories_are_made_and_nothing_is_left_beside_the_output(corpus, tmp_path):
    tmp, feats, trials = corpus
    deep = tmp_path / "a" / "b"
    for args in (["train", feats, "-k", "2", "--out", deep / "m.h5"], ["ubm", feats, "-k", "2", "--out", deep / "u.h5"],
                 ["enroll", tmp / "ubm.h5", feats, "--out", deep / "s.h5"],
                 ["verify", tmp / "spk.h5", trials, feats, "--scores", deep / "scores"],
                 ["evaluate", tmp / "models.h5", feats, "--metrics", deep / "m.json"],
                 ["eer", deep / "scores", trials, "--metrics", deep / "eer.json"]):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
    assert sorted(os.listdir(deep)) == ["eer.json", "m.h5", "m.json", "s.h5", "scores", "u.h5"]


def test_outputs_get_the_umask_permissions(corpus, tmp_path):
    tmp, feats, _ = corpus
    old = os.umask(0o027)
    try:
        result = invoke("evaluate", tmp / "models.h5", feats, "--metrics", tmp_path / "m.json")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o640


def test_a_second_run_on_one_output_stops_at_once(corpus, tmp_path):
    """Another process holds the output's lock (as a running `train` does): this one stops, touching nothing."""
    _, feats, _ = corpus
    out = tmp_path / "m.h5"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom acoustic_gmm.storage import locked\n"
                               f"with locked({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = invoke("train", feats, "-k", "2", "--out", out)
        assert result.exit_code == 1
        assert f"{out}: another acoustic-gmm run is writing it" in result.output
        assert not out.exists()
        with pytest.raises(ModelFileError, match="another acoustic-gmm run is writing it"):
            GMM(2).fit(np.random.default_rng(0).normal(size=(100, 2))).save(out)
    finally:
        holder.kill()
        holder.wait()
    with locked(out), locked(out):  # re-entrant within a process; free again once the holder is gone
        pass
    assert os.listdir(tmp_path) == []


def test_unexpected_errors_are_one_line_and_ctrl_c_exits_130(corpus, monkeypatch):
    _, feats, _ = corpus
    import acoustic_gmm.interop._describe as archive

    def boom(path):
        raise RuntimeError("something we did not foresee")
    monkeypatch.setattr(archive, "describe", boom)
    result = invoke("info", feats)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("Error: unexpected RuntimeError: something we did not foresee\n")
    assert "please report it" in result.output and "--debug" in result.output
    result = invoke("--debug", "info", feats)
    assert isinstance(result.exception, RuntimeError)  # the traceback, for the report

    def interrupted(path):
        raise KeyboardInterrupt
    monkeypatch.setattr(archive, "describe", interrupted)
    result = invoke("info", feats)
    assert result.exit_code == 130 and result.output.strip() == "interrupted"


@pytest.mark.slow
def test_ctrl_c_during_a_real_command_prints_one_line(corpus, tmp_path):
    """SIGINT to `acoustic-gmm ubm` in EM: one line, exit 130, no traceback, no file left."""
    _, feats, _ = corpus
    big = tmp_path / "big.h5"
    rng = np.random.default_rng(2)
    write_features(big, [(f"u{i}", rng.normal(size=(1000, 20)).astype(np.float32), None, None) for i in range(200)],
                   config=MfccConfig(n_mfcc=20, n_mels=30, deltas=0), sample_rate=8000)
    exe = os.path.join(os.path.dirname(sys.executable), "acoustic-gmm")
    proc = subprocess.Popen([exe, "ubm", str(big), "-k", "512", "--out", str(tmp_path / "u.h5")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "u.h5.ckpt"
    end = time.monotonic() + 60
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)  # EM under way: its first stage has been saved (the whole fit takes over 10 s)
    assert ckpt.exists() and proc.poll() is None
    proc.send_signal(subprocess.signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted"
    # no model, no temporary or lock file: only the checkpoint the same command resumes from
    assert sorted(os.listdir(tmp_path)) == ["big.h5", "u.h5.ckpt"]


def _slow_train_archive(path):
    """Eight classes of 20,000 frames: `train -k 32 --jobs 2` on it takes a few seconds."""
    rng = np.random.default_rng(1)
    write_features(path, [(f"s0_{c}_{i}", (rng.normal(size=(4000, 13)) + c).astype(np.float32), f"c{c}", "s0")
                          for c in range(8) for i in range(5)],
                   config=MfccConfig(n_mfcc=13, n_mels=20, deltas=0), sample_rate=8000)


def _cli(args, tmp_path, name):
    """The real `acoustic-gmm` in a process of its own; its output goes to files (workers inherit them)."""
    out, err = open(tmp_path / f"{name}.out", "w"), open(tmp_path / f"{name}.err", "w")
    proc = subprocess.Popen([sys.executable, "-m", "acoustic_gmm.cli", *map(str, args)], stdout=out, stderr=err,
                            start_new_session=True)
    out.close()
    err.close()
    return proc


@pytest.mark.slow
def test_two_real_train_runs_on_one_output(tmp_path):
    feats, out = tmp_path / "feats.h5", tmp_path / "m.h5"
    _slow_train_archive(feats)
    args = ["train", feats, "-k", "32", "--jobs", "2", "--out", out]
    first = _cli(args, tmp_path, "first")
    try:
        assert wait_for(lambda: (tmp_path / ".m.h5.lock").exists() or first.poll() is not None)
        assert first.poll() is None, (tmp_path / "first.err").read_text()
        second = _cli(args, tmp_path, "second")
        assert second.wait(60) == 1
        assert first.wait(120) == 0, (tmp_path / "first.err").read_text()
    finally:
        first.kill()
    message = (tmp_path / "second.err").read_text() + (tmp_path / "second.out").read_text()
    assert f"{out}: another acoustic-gmm run is writing it (lock file {tmp_path / '.m.h5.lock'})" in message
    assert "Traceback" not in message and message.count("\n") == 1, message
    assert sorted(GMM.load(out, name=f"c{i}#0").n_components for i in range(8)) == [32] * 8
    assert sorted(os.listdir(tmp_path)) == sorted(["feats.h5", "m.h5", "first.out", "first.err", "second.out",
                                                   "second.err"])


@pytest.mark.slow
def test_kill_9_of_train_with_workers(tmp_path):
    psutil = pytest.importorskip("psutil")
    feats, out = tmp_path / "feats.h5", tmp_path / "m.h5"
    _slow_train_archive(feats)
    args = ["train", feats, "-k", "32", "--jobs", "2", "--out", out]
    run = _cli(args, tmp_path, "run")
    workers = []
    try:
        assert wait_for(lambda: len(psutil.Process(run.pid).children(recursive=True)) >= 2
                         or run.poll() is not None)
        workers = psutil.Process(run.pid).children(recursive=True)
        time.sleep(0.5)
        assert run.poll() is None, (tmp_path / "run.err").read_text()
        run.kill()  # kill -9: the parent cannot stop its pool or remove anything
        run.wait(10)

        def gone():
            return all(not w.is_running() or w.status() == psutil.STATUS_ZOMBIE for w in workers)
        assert wait_for(gone, 10), "workers outlived their parent"
    finally:
        for w in workers:
            if w.is_running():
                w.kill()
    err = (tmp_path / "run.err").read_text()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert not out.exists()
    # the same command again works, and leaves nothing of the killed run beside the output
    again = _cli(args, tmp_path, "again")
    assert again.wait(120) == 0, (tmp_path / "again.err").read_text()
    assert GMM.load(out, name="c3#0").n_components == 32
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], os.listdir(tmp_path)


def test_library_messages_are_shown_in_the_command_lines_words():
    """The library names its parameters (``name=value``); a command shows them as its flags."""
    import click

    from acoustic_gmm.cli._main import message

    with click.Context(main.get_command(None, "ubm"), parent=click.Context(main)) as ctx:
        assert message("subsample=2 is not available with client= (a Dask cluster)", ctx) == \
            "--subsample 2 is not available with --scheduler (a Dask cluster)"
        assert message("out=m.h5: exists; pass overwrite=True to replace it", ctx) == \
            "--out m.h5: exists; pass --overwrite to replace it"
        # another command's option is known by its flag too, a quoted value loses its quotes
        assert message("extract with cmvn='mean' or cmvn='sliding'", ctx) == "extract with --cmvn mean or --cmvn sliding"
        assert message("norm='z' needs impostor utterances (cohort_utts=)", ctx) == \
            "--norm z needs impostor utterances (--cohort-utts)"
        assert message("the overwrite flag and outputs stay as they are", ctx) == \
            "the overwrite flag and outputs stay as they are"  # only name= is a parameter


def test_a_full_disk_is_one_line_naming_the_output_not_a_bug(corpus, tmp_path, monkeypatch):
    import errno

    from acoustic_gmm.classes import _model_set
    from acoustic_gmm.cli._main import environment_error

    _, feats, _ = corpus
    out = tmp_path / "m.h5"

    def full(self, path):  # what the atomic writer meets on a full disk, in its temporary file beside the output
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".m.h5.k3j2x9q1.tmp"))
    monkeypatch.setattr(_model_set.ModelSet, "save", full)
    result = invoke("train", feats, "--slices", "1", "-k", "1", "-j", "1", "--out", out)
    assert result.exit_code == 1, result.output  # was 2 and "This is a bug in acoustic-gmm: please report it"
    assert result.output.strip() == f"Error: no space left on the device while writing {out}"
    # h5py says it in its message, without an errno attribute
    h5 = OSError(f"Can't write data (file write failed: time = now, filename = '{tmp_path}/.f.h5.abcd1234.tmp', "
                 "file descriptor = 4, errno = 28, error message = 'No space left on device')")
    assert environment_error(h5) == f"no space left on the device while writing {tmp_path}/f.h5"
    assert environment_error(OSError(errno.ENOENT, "No such file")) is None  # a missing file is not the machine


@pytest.fixture()
def small_disk(tmp_path):
    """A 1 MB file system of its own (tmpfs, mounted for the test): a disk that really fills up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root (a real full disk)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk, leave: int) -> None:
    """Fill ``disk`` to ``leave`` bytes free (tmpfs counts whole pages)."""
    import shutil

    (disk / "filler").write_bytes(b"\0" * max(0, shutil.disk_usage(disk).free - leave))


def cli(*args):
    """The command in its own process, as a user runs it: everything it prints, whoever prints it (libhdf5)."""
    exe = os.path.join(os.path.dirname(sys.executable), "acoustic-gmm")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def twenty_classes(tmp_path_factory):
    """An archive of 20 classes of 39 features: its models take about 115 kB."""
    rng = np.random.default_rng(1)
    feats = tmp_path_factory.mktemp("twenty") / "feats.h5"
    write_features(feats, [(f"u{i:03d}", (rng.normal(size=(30, 39)) + i % 20).astype(np.float32), f"c{i % 20:02d}",
                            "s") for i in range(60)], config=MfccConfig(), sample_rate=8000)
    return feats


def test_train_on_a_full_disk_stops_before_training_naming_the_need(small_disk, twenty_classes):
    fill(small_disk, 0)
    out = small_disk / "m.h5"
    run = cli("train", twenty_classes, "--slices", "1", "-k", "4", "-j", "1", "--out", out)
    assert run.returncode == 1, run.stderr
    # 20 models x (4 x 79 x 8 bytes + 2 kB): 89 kB at least; tmpfs leaves no page free
    assert run.stderr == (f"Error: {out}: the models of 20 classes will need at least 89 kB and only 0 kB is free on "
                          f"its device: free some space or write it elsewhere\n")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_a_disk_that_fills_while_writing_is_one_line_and_keeps_the_old_file(small_disk, twenty_classes):
    """The check passes (the models need more than its lower bound): the write itself meets the full disk.  It
    used to print some 800 lines of h5py "Exception ignored ... errno = 28" and could crash the interpreter."""
    out = small_disk / "m.h5"
    out.write_bytes(b"the models of an earlier run")
    fill(small_disk, 100 * 1024)  # more than the 89 kB bound, less than the 115 kB written
    run = cli("train", twenty_classes, "--slices", "1", "-k", "4", "-j", "1", "--out", out, "--overwrite")
    assert (run.returncode, run.stdout, run.stderr) == (
        1, "", f"Error: no space left on the device while writing {out}\n")
    assert out.read_bytes() == b"the models of an earlier run"
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "m.h5"]  # no temporary file, no lock
    (small_disk / "filler").unlink()
    again = cli("train", twenty_classes, "--slices", "1", "-k", "4", "-j", "1", "--out", out, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert 100 * 1024 < out.stat().st_size < 130 * 1024


def test_features_on_a_full_disk_stop_before_extracting_and_leave_nothing(small_disk, make_corpus):
    from ..conftest import tone

    data, _ = make_corpus({f"u{i}": tone(1.0, seed=i) for i in range(10)})
    out = small_disk / "f.h5"
    fill(small_disk, 100 * 1024)
    run = cli("features", data, "-j", "1", "--out", out)
    assert run.returncode == 1, run.stderr
    # 10 x (1000 - 25 ms) / 10 ms frames of 39 float32 and a voiced flag, for the shards and the archive: 299 kB
    said = re.fullmatch(rf"Error: {out}: the features will need at least 299 kB and only (\d+) kB is free on its "
                        rf"device: free some space or write it elsewhere\n", run.stderr)
    assert said and 90 <= int(said.group(1)) <= 100, run.stderr  # the job file beside it takes a page
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no OUT.partial/ left to block a rerun
    (small_disk / "filler").unlink()
    again = cli("features", data, "-j", "1", "--out", out)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["f.h5"]


def test_every_command_shows_warnings_as_one_line_messages(corpus, monkeypatch):
    """A warning a library call raises reaches the user as ``warning: ...`` in the command line's words, never as
    Python's ``file:line: UserWarning`` (evaluate, features and ivector train did not catch theirs); a run of
    them is summarised; shown before the line of an error that follows."""
    import warnings

    from acoustic_gmm.classes import _evaluation

    tmp, feats, _ = corpus
    real = _evaluation.evaluate

    def warns(*args, fail=False, **kwargs):
        for i in range(6):
            warnings.warn(f"speaker s{i}: adapt= found too few frames", UserWarning, stacklevel=2)
        if fail:
            raise RuntimeError("boom")
        return real(*args, **kwargs)
    monkeypatch.setattr(_evaluation, "evaluate", warns)
    result = invoke("evaluate", tmp / "models.h5", feats)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines == ["warning: speaker s0: --adapt found too few frames", "warning: speaker s1: --adapt found too few "
                     "frames", "warning: speaker s2: --adapt found too few frames", "warning: ... and 3 more like "
                     "them (acoustic-gmm --verbose shows every one)"]
    monkeypatch.setattr(_evaluation, "evaluate", lambda *a, **k: warns(*a, fail=True, **k))
    failed = invoke("evaluate", tmp / "models.h5", feats)
    assert failed.exit_code == 2
    assert failed.stderr.splitlines()[3:5] == ["warning: ... and 3 more like them (acoustic-gmm --verbose shows every "
                                               "one)", "Error: unexpected RuntimeError: boom"]


def test_features_on_a_disk_that_fills_while_merging_keep_their_batches(small_disk, make_corpus):
    """Room for the least the check counts (the frames, twice) but not for the archive's index and sums: the merge
    meets the full disk.  One line, exit 1, no crash of libhdf5's on the way out (it used to end in a
    segmentation fault), the finished batches kept: the same command continues once there is room."""
    from ..conftest import tone

    data, _ = make_corpus({f"u{i}": tone(1.0, seed=i) for i in range(10)}, name="tones")
    out = small_disk / "f.h5"
    fill(small_disk, 8 * 1024)  # room for the job file, not the frames: the check says what they need
    need = int(re.search(r"need at least (\d+) kB", cli("features", data, "-j", "1", "--out", out).stderr).group(1))
    (small_disk / "filler").unlink()
    fill(small_disk, (need + 8) * 1024)
    run = cli("features", data, "-j", "1", "--out", out)
    assert (run.returncode, run.stderr) == (1, f"Error: no space left on the device while writing {out}\n")
    partial = small_disk / "f.h5.partial"
    assert sorted(p.name for p in small_disk.iterdir()) == ["f.h5.partial", "filler"]
    assert not list(partial.glob(".*.tmp")), "the archive's temporary file is left behind"
    (small_disk / "filler").unlink()
    again = cli("features", data, "-j", "1", "--out", out)
    assert again.returncode == 0, again.stderr
    assert "resumed: 1 batch(es) were already done" in again.stdout
