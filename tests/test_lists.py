"""Every list file the tools read, disturbed at random: shuffled, a line repeated, a line dropped.

The property: every outcome is either the undisturbed result or an error naming the file; never another
figure with no word.  Shuffling must not change a result; a repeated line is always an error (the one rule of
``storage._datadir.check_unique``); a dropped line is an error wherever the format says the list is complete (a
data directory's tables against each other, a score file against its trials).  spk2utt and trials lists may
legitimately hold fewer lines, so only shuffling and repeating are tried on them.
"""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_gmm import AcousticGMMError
from acoustic_gmm.speaker import Trials, score_file_metrics
from acoustic_gmm.storage import read_data_dir, read_ids, read_spk2utt, write_data_dir

SEEDS = range(40)  # 40 disturbances of each kind and file: about a thousand reads, well under a second each


def _disturb(lines: list[str], how: str, rng) -> list[str]:
    lines = list(lines)
    if how == "shuffle":
        return [lines[i] for i in rng.permutation(len(lines))]
    if how == "repeat":
        i = int(rng.integers(len(lines)))
        lines.insert(int(rng.integers(len(lines) + 1)), lines[i])
        return lines
    del lines[int(rng.integers(len(lines)))]
    return lines


def _check(path, read, how, rng, baseline):
    """Disturb ``path``, read it with ``read()``: the baseline when shuffled, else an error naming the file."""
    original = path.read_text()
    lines = [line for line in original.splitlines() if line.strip()]
    path.write_text("\n".join(_disturb(lines, how, rng)) + "\n")
    try:
        try:
            got = read()
        except AcousticGMMError as exc:
            assert how != "shuffle", f"shuffling {path.name} gave an error: {exc}"
            assert path.name in str(exc), f"{how} in {path.name}: the error does not name it: {exc}"
            return
        assert how == "shuffle", f"{how} in {path.name} changed nothing it said: {got == baseline}"
        assert got == baseline, f"shuffling {path.name} changed the result"
    finally:
        path.write_text(original)


@pytest.fixture
def data_dir(tmp_path):
    wav = {f"rec{i}": f"/audio/rec{i}.wav" for i in range(6)}
    segments = {f"rec{i}-{j}": (f"rec{i}", 0.5 * j, 0.5 * j + 0.4) for i in range(6) for j in range(2)}
    write_data_dir(tmp_path / "d", wav, utt2spk={u: f"spk{u[3]}" for u in segments},
                   utt2label={u: f"w{u[-1]}" for u in segments}, segments=segments)
    return tmp_path / "d"


def _contents(dd):
    return dd.wav, dd.utt2spk, dd.utt2label, dd.segments


@pytest.mark.parametrize("how", ["shuffle", "repeat", "drop"])
@pytest.mark.parametrize("table", ["wav.scp", "segments", "utt2spk", "utt2label"])
def test_data_directory_tables(data_dir, table, how):
    baseline = _contents(read_data_dir(data_dir))
    for seed in SEEDS:
        _check(data_dir / table, lambda: _contents(read_data_dir(data_dir)), how, np.random.default_rng(seed),
               baseline)


@pytest.mark.parametrize("how", ["shuffle", "repeat"])
def test_id_lists_and_spk2utt(tmp_path, how):
    ids = tmp_path / "utts"
    ids.write_text("".join(f"u{i} x\n" for i in range(9)))
    spk2utt = tmp_path / "spk2utt"
    spk2utt.write_text("".join(f"m{i} " + " ".join(f"u{i}-{j}" for j in range(3)) + "\n" for i in range(5)))
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        _check(ids, lambda: sorted(read_ids(ids)), how, rng, sorted(read_ids(ids)))
        _check(spk2utt, lambda: read_spk2utt(spk2utt), how, rng, read_spk2utt(spk2utt))


@pytest.mark.parametrize("how", ["shuffle", "repeat", "drop"])
def test_trials_and_scores(tmp_path, how):
    rng0 = np.random.default_rng(0)
    pairs = [(f"m{m}", f"u{u}") for m in range(4) for u in range(6)]
    trials, scores = tmp_path / "trials", tmp_path / "scores"
    trials.write_text("".join(f"{m} {u} {'target' if m[1:] == str(int(u[1:]) % 4) else 'nontarget'}\n"
                              for m, u in pairs))
    scores.write_text("".join(f"{m} {u} {x:.4f}\n" for (m, u), x in zip(pairs, rng0.normal(size=len(pairs)))))

    def metrics():
        m = score_file_metrics(scores, trials)
        return m["eer"], m["n_scored"], m["n_trials"]

    baseline = metrics()
    for seed in SEEDS:
        _check(scores, metrics, how, np.random.default_rng(seed), baseline)  # a dropped score: "scores 23 of 24"
        if how != "drop":  # fewer trials is another trial list, not a degenerate one
            t = Trials.read(trials)
            _check(trials, lambda: sorted(zip(*vars(Trials.read(trials)).values()), key=str), how,
                   np.random.default_rng(seed), sorted(zip(*vars(t).values()), key=str))


@pytest.mark.parametrize("fmt", ["kaldi", "htk"])
@pytest.mark.parametrize("how", ["shuffle", "repeat"])
def test_import_listings(tmp_path, fmt, how):
    """A Kaldi feats.scp or an HTK script list: its utterances' frames whatever the order, a repeated line an
    error naming the list (a shorter list is a subset, not a degenerate one: only shuffled and repeated)."""
    from acoustic_gmm.interop import import_features, write_htk
    from acoustic_gmm.storage import FeatureArchive

    rng0 = np.random.default_rng(0)
    frames = {f"u{i}": rng0.normal(size=(5 + i, 3)).astype(np.float32) for i in range(6)}
    write_data_dir(tmp_path / "d", {u: f"/audio/{u}.wav" for u in frames}, utt2spk={u: "s" for u in frames})
    if fmt == "kaldi":
        kaldiio = pytest.importorskip("kaldiio")
        listing = tmp_path / "feats.scp"
        kaldiio.save_ark(str(tmp_path / "feats.ark"), frames, scp=str(listing))
    else:
        listing = tmp_path / "list.scp"
        for u, x in frames.items():
            write_htk(tmp_path / f"{u}.htk", x)
        listing.write_text("".join(f"{u}.htk\n" for u in frames))

    def imported():
        import_features(listing, tmp_path / "d", tmp_path / "f.h5", fmt=fmt, sample_rate=8000, overwrite=True)
        with FeatureArchive(tmp_path / "f.h5") as fa:
            return {u: fa[u].tobytes() for u in sorted(fa.ids)}

    baseline = imported()
    for seed in SEEDS[:10]:  # an import writes an archive: ten of each
        _check(listing, imported, how, np.random.default_rng(seed), baseline)
