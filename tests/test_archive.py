"""Feature archives: format 2 (contiguous frames + index), format 1 still read, reads planned, EM the same
streamed or in memory."""

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from acoustic_gmm import GMM
from acoustic_gmm.errors import ArchiveError, DataError, OutputError
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.gmm._sources import ArrayFrames, parse_size, within_budget
from acoustic_gmm.speaker import train_ubm
from acoustic_gmm.storage import FeatureArchive, convert_archive, write_features


def format1_contents():
    """Six utterances of synthetic frames with labels and speakers (one without a speaker)."""
    rng = np.random.default_rng(7)
    utts = {}
    for i, (lab, spk) in enumerate([("1", "ann"), ("2", "ann"), ("1", "bob"), ("2", "bob"), ("1", "cy"), ("2", "")]):
        utts[f"{lab}_{spk or 'x'}_{i}"] = ((rng.normal(size=(5 + 3 * i, 8)) + i).astype(np.float32), lab, spk)
    return utts


def write_format1(path, utterances, *, config, sample_rate, manifest, skipped, data_dir):
    """A feature archive as acoustic_gmm's format-1 writer made it (``archive.write_features`` at commit
    c16fbbc, the last release before format 2), call for call: one dataset per utterance with label and
    speaker attributes, and an index without offsets."""
    text = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.attrs.update(format_version=1, content="features", config=config.to_json(), sample_rate=int(sample_rate))
        group = f.create_group("utterances")
        for utt, frames, label, speaker in utterances:
            frames = np.ascontiguousarray(frames, dtype=np.float32)
            dsid = h5py.h5d.create(group.id, utt.encode(), h5py.h5t.IEEE_F32LE, h5py.h5s.create_simple(frames.shape))
            dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, frames)
            attrs = h5py.Dataset(dsid).attrs
            if label is not None:
                attrs.create("label", label)
            if speaker is not None:
                attrs.create("speaker", speaker)
        f.attrs["skipped"] = json.dumps([list(map(str, x)) for x in skipped])
        index = f.create_group("index")
        for key, column in (("ids", 0), ("labels", 2), ("speakers", 3)):
            values = ["" if u[column] is None else u[column] for u in utterances]
            index.create_dataset(key, data=np.array(values, dtype=object), dtype=text)
        index.create_dataset("n_frames", data=np.array([len(u[1]) for u in utterances], dtype=np.int64))
        m = f.create_group("manifest")
        m.attrs["data_dir"] = str(data_dir)
        for name, content in manifest.items():
            m.create_dataset(name, data=content, dtype=text)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """A format-1 archive and its conversion to format 2."""
    folder = tmp_path_factory.mktemp("conv")
    utts = [(u, x, lab, spk or None) for u, (x, lab, spk) in format1_contents().items()]
    write_format1(folder / "v1.h5", utts, config=MfccConfig(n_mfcc=4, n_mels=8, deltas=1, cmvn="none"),
                  sample_rate=8000, manifest={"wav.scp": "r1 /x/r1.wav\n"},
                  skipped=[("bad_0", "/x/bad.wav", "all 800 samples are zero (digital silence)")], data_dir="/x/data")
    assert convert_archive(folder / "v1.h5", folder / "v2.h5") == 6
    return [folder / "v1.h5", folder / "v2.h5"]


def test_format1_archive_from_the_previous_release_reads_the_same_as_its_conversion(both):
    expect = format1_contents()
    whole = np.concatenate([x for x, _, _ in expect.values()])
    for path, version in zip(both, (1, 2)):
        with FeatureArchive(path) as fa:
            assert fa.format_version == version
            assert fa.ids == list(expect)
            assert fa.ids[0] in fa and "nope" not in fa and len(fa) == 6
            assert [fa.labels[u] for u in fa.ids] == [lab for _, lab, _ in expect.values()]
            assert [fa.speakers[u] for u in fa.ids] == [spk for _, _, spk in expect.values()]
            assert fa.skipped == [["bad_0", "/x/bad.wav", "all 800 samples are zero (digital silence)"]]
            assert fa.data_dir == "/x/data" and "wav.scp" in fa.manifest
            for u, (x, _, _) in expect.items():
                np.testing.assert_array_equal(fa[u], x)
            np.testing.assert_array_equal(fa.frames(), whole)
            for size in (1, 7, 13, 1000):  # blocks crossing utterances, and one block for all
                np.testing.assert_array_equal(np.vstack(list(fa.iter_chunks(size))), whole)
            ids = [fa.ids[4], fa.ids[0], fa.ids[5]]  # not in archive order
            sub = np.concatenate([expect[u][0] for u in ids])
            np.testing.assert_array_equal(fa.frames(ids), sub)
            np.testing.assert_array_equal(np.vstack(list(fa.subset(ids).iter_chunks(6))), sub)
            rows = np.array([0, 16, 17, len(sub) - 1])
            np.testing.assert_array_equal(fa.rows(rows, ids), sub[rows])
            assert [len(x) for x in fa.utterances(ids)] == [17, 5, 20]


def test_format2_stores_frames_contiguously_with_offsets(both):
    with h5py.File(both[1], "r") as f:
        assert f.attrs["format_version"] == 2 and "utterances" not in f
        assert f["frames"].shape == (75, 8)
        n = f["index/n_frames"][()]
        np.testing.assert_array_equal(f["index/offsets"][()], np.cumsum(n) - n)


def test_nearby_utterances_are_one_read_and_far_ones_are_not(tmp_path, monkeypatch):
    cfg = MfccConfig(n_mfcc=2, n_mels=4, deltas=0)
    utts = [(f"u{i:04d}", np.full((100, 2), i, np.float32), None, None) for i in range(200)]
    write_features(tmp_path / "a.h5", utts, config=cfg, sample_rate=8000)
    with FeatureArchive(tmp_path / "a.h5") as fa:
        reads = []
        original = fa._read
        monkeypatch.setattr(fa, "_read", lambda a, b, out: (reads.append((a, b)), original(a, b, out)))
        X = fa.frames(fa.ids[:150:2])  # every other utterance: gaps of 100 rows are read through
        assert len(reads) == 1 and X[::100, 0].tolist() == list(range(0, 150, 2))
        reads.clear()
        X = fa.frames([fa.ids[0], fa.ids[199]])  # 19,800 rows apart: two reads, not the span
        assert len(reads) == 2 and X[[0, 100], 0].tolist() == [0, 199]


def test_duplicate_ids_and_wrong_widths_are_refused(tmp_path):
    cfg = MfccConfig(n_mfcc=2, n_mels=4, deltas=0)
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(DataError, match="utterance id 'a' occurs twice"):
        write_features(tmp_path / "d.h5", [("a", x, None, None), ("a", x, None, None)], config=cfg, sample_rate=8000)
    with pytest.raises(DataError, match=r"utterance 'b': frames of shape \(3, 5\), expected \(n, 2\)"):
        write_features(tmp_path / "d.h5", [("b", np.zeros((3, 5)), None, None)], config=cfg, sample_rate=8000)
    assert not (tmp_path / "d.h5").exists()


def test_a_damaged_index_or_newer_format_is_an_error_naming_the_file(tmp_path, both):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(Path(both[1]).read_bytes())
    with h5py.File(bad, "a") as f:
        f["index/offsets"][-1] = 70  # 70 + 20 frames > the 75 stored
    with pytest.raises(ArchiveError, match="bad.h5: damaged feature archive .the index points outside"):
        FeatureArchive(bad)
    with h5py.File(bad, "a") as f:
        f.attrs["format_version"] = 4
    with pytest.raises(ArchiveError, match="format_version 4 is newer than this acoustic_gmm understands .3."):
        FeatureArchive(bad)


def test_convert_never_replaces_an_existing_file(tmp_path, both):
    keep = tmp_path / "keep.h5"
    keep.write_bytes(b"precious")
    with pytest.raises(OutputError, match=r"keep\.h5: exists; pass overwrite=True to replace it"):
        convert_archive(both[0], keep)
    assert keep.read_bytes() == b"precious"
    with pytest.raises(OutputError, match="is also an input"):
        convert_archive(both[0], both[0], overwrite=True)


def test_convert_leaves_a_raw_archive_alone(tmp_path):
    """A raw archive is the current format; rewriting it would keep one view and lose the others."""
    cfg = MfccConfig(n_mfcc=2, n_mels=4, deltas=0)
    write_features(tmp_path / "raw.h5", [("u", np.ones((3, 2), np.float32), "a", "s", np.ones(3, bool))],
                   config=cfg, sample_rate=8000, raw=True)
    with pytest.raises(DataError, match=r"raw.h5: a raw archive \(format 3\), the current format: nothing to "
                                        r"convert"):
        convert_archive(tmp_path / "raw.h5", tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


@pytest.fixture(scope="module")
def mixture_archive(tmp_path_factory):
    """600 'utterances' of 50 to 149 frames from 3 well-separated Gaussians in 4-D."""
    rng = np.random.default_rng(3)
    cfg = MfccConfig(n_mfcc=4, n_mels=8, deltas=0)
    centres = np.array([[0, 0, 0, 0], [6, 0, 6, 0], [0, 6, 0, 6]], np.float32)
    utts = []
    for i in range(600):
        c = centres[rng.integers(3, size=int(rng.integers(50, 150)))]
        utts.append((f"u{i:04d}", (c + rng.normal(size=c.shape)).astype(np.float32), None, f"s{i % 7}"))
    path = tmp_path_factory.mktemp("mix") / "mix.h5"
    write_features(path, utts, config=cfg, sample_rate=8000)
    return path


@pytest.mark.parametrize("init", ["split", "kmeans"])
def test_em_streamed_from_the_archive_equals_em_in_memory(mixture_archive, init):
    with FeatureArchive(mixture_archive) as fa:
        X = fa.frames()
        ids = fa.ids[100:500:3]
        fits = [GMM(3, init=init, random_state=0, chunk_size=4096).fit(X),
                GMM(3, init=init, random_state=0, chunk_size=4096, max_memory=0).fit(fa),          # streamed
                GMM(3, init=init, random_state=0, chunk_size=4096).fit(str(mixture_archive))]   # read in once
        for g in fits[1:]:
            np.testing.assert_array_equal(g.means_, fits[0].means_)
            np.testing.assert_array_equal(g.history_, fits[0].history_)
        sub = GMM(3, init=init, random_state=0, chunk_size=1000, max_memory=0).fit(fa.subset(ids))
        ref = GMM(3, init=init, random_state=0, chunk_size=1000).fit(fa.frames(ids))
        np.testing.assert_array_equal(sub.means_, ref.means_)
        assert ref.history_[-1] >= ref.history_[0]  # and EM did not descend


def test_ubm_on_a_subset_streams_and_subsamples_the_same_frames(mixture_archive):
    with FeatureArchive(mixture_archive) as fa:
        ids = fa.ids[::5]
        expect = GMM(4).fit(fa.frames(ids)[::3])
        for budget in (0, None):
            model, meta = train_ubm(fa, 4, ids=ids, subsample=3, max_memory=budget)
            np.testing.assert_array_equal(model.means_, expect.means_)
            assert meta["n_frames"] == len(fa.frames(ids)[::3])


def test_the_memory_budget_decides_between_loading_and_streaming(mixture_archive):
    with FeatureArchive(mixture_archive) as fa:
        size = fa.n_frames_total * fa.n_features * 4
        assert within_budget(fa, size) is not fa and isinstance(within_budget(fa, size), ArrayFrames)
        assert within_budget(fa, size - 1) is fa
        np.testing.assert_array_equal(within_budget(fa, size).X, fa.frames())
    assert parse_size("1.5k") == 1536 and parse_size("4GiB") == 4 << 30 and parse_size("0") == 0
    with pytest.raises(ValueError, match="not a size: 'lots'"):
        parse_size("lots")


def test_chunks_read_directly_from_the_file_are_what_h5py_reads(mixture_archive):
    with FeatureArchive(mixture_archive) as fa:
        assert fa._chunks is not None  # the fast path is taken for archives we write
        stored = fa._data[()]
        ids = fa.ids[7:300:11]
        expect = np.concatenate([stored[fa._offset[u]:fa._offset[u] + fa.n_frames[u]] for u in ids])
        fast = fa.frames(), fa.frames(ids), np.vstack(list(fa.iter_chunks(3000, ids)))
        os.close(fa._chunks.fd)
        fa._chunks = None  # h5py's own reads, for comparison
        slow = fa.frames(), fa.frames(ids), np.vstack(list(fa.iter_chunks(3000, ids)))
    for a, b, want in zip(fast, slow, (stored, expect, expect)):
        np.testing.assert_array_equal(a, want)
        np.testing.assert_array_equal(b, want)


def test_info_on_a_format1_archive_names_the_command_that_converts_it(both):
    from acoustic_gmm.interop import describe, format_description

    text = format_description(describe(both[0]))
    assert f"'acoustic-gmm convert {both[0]} --out NEW.h5' rewrites it in format 2" in text


def test_streaming_blocks_are_views_of_the_mapped_file_where_the_layout_allows(tmp_path, monkeypatch):
    """Written in several appends, the chunks of /frames are not all back to back: blocks inside one run
    of chunks come straight from the mapped file, a block across two runs is read into a ring buffer;
    either way the values and EM's result are the in-memory ones."""
    from acoustic_gmm.storage import _archive as archive
    from acoustic_gmm.storage import _archive_write

    # small chunks, appended a few at a time: HDF5 puts the chunk index's new nodes between them
    monkeypatch.setattr(_archive_write, "WRITE_ROWS", 3000)
    monkeypatch.setattr(_archive_write, "CHUNK_ROWS", 64)
    rng = np.random.default_rng(5)
    utts = [(f"u{i:03d}", rng.normal(i % 3, 1, size=(int(rng.integers(20, 90)), 4)).astype(np.float32), None, None)
            for i in range(400)]
    write_features(tmp_path / "a.h5", utts, config=MfccConfig(n_mfcc=4, n_mels=8, deltas=0), sample_rate=8000)
    with FeatureArchive(tmp_path / "a.h5") as fa:
        mapped = np.frombuffer(fa._chunks.mapped, np.uint8)

        def in_map(block):
            return mapped.ctypes.data <= block.ctypes.data < mapped.ctypes.data + len(mapped)

        X = fa.frames()
        runs = fa._chunks.run
        assert 1 < len(set(runs.tolist())) < len(runs)  # some chunks back to back, some not
        released = []
        release = fa._release
        monkeypatch.setattr(fa, "_release", lambda b: (released.append(len(b)), release(b)))
        for window in (archive.MAPPED_BYTES, 2000):  # everything stays mapped; a few blocks stay mapped
            monkeypatch.setattr(archive, "MAPPED_BYTES", window)
            released.clear()
            for size in (50, 500, 5000):
                got, kinds = [], []
                for block in fa.iter_chunks(size, reuse=2):
                    kinds.append(in_map(block))
                    got.append(block.copy())
                np.testing.assert_array_equal(np.vstack(got), X)
                assert any(kinds) and not all(kinds)
            assert (len(released) > 100) == (window == 2000)
            b = GMM(3, chunk_size=512, max_memory=0).fit(fa)
            np.testing.assert_array_equal(GMM(3, chunk_size=512).fit(X).means_, b.means_)
        ids = fa.ids[::3]
        np.testing.assert_array_equal(np.vstack([b.copy() for b in fa.iter_chunks(700, ids, reuse=3)]),
                                      fa.frames(ids))
        # a block whose pages were given back reads the same when touched again
        first = next(b for b in fa.iter_chunks(1024, reuse=1) if in_map(b))
        keep = first.copy()
        fa._release(first)
        np.testing.assert_array_equal(first, keep)
    np.testing.assert_array_equal(first, keep)  # closing the archive leaves a block in use valid


def test_a_read_past_the_end_of_a_damaged_file_is_an_archive_error(mixture_archive):
    """One flipped bit in a chunk's address made libhdf5 raise a bare OSError ("addr overflow") from frames()."""
    class Damaged:
        shape = (10**6, 4)

        def __getitem__(self, *args, **kwargs):
            raise OSError("Can't synchronously read data (addr overflow, addr = 1099511642680)")

        read_direct = __getitem__

    with FeatureArchive(mixture_archive) as fa:
        fa._chunks, fa._data = None, Damaged()
        with pytest.raises(ArchiveError, match=rf"{mixture_archive}: damaged feature archive \(reading stored frames "
                                               rf"0 to \d+: Can't synchronously read data \(addr overflow"):
            fa.frames()


def test_one_utterance_by_id_the_same_every_way(tmp_path):
    rng = np.random.default_rng(3)
    utts = [(f"u{i}", rng.normal(size=(5 + i, 4)).astype(np.float32), "a", "s") for i in range(3)]
    write_features(tmp_path / "a.h5", utts, config=MfccConfig(n_mfcc=4, n_mels=8, deltas=0), sample_rate=8000)
    with FeatureArchive(tmp_path / "a.h5") as fa:
        np.testing.assert_array_equal(fa.frames("u1"), utts[1][1])  # one id, as README shows it
        np.testing.assert_array_equal(fa["u1"], utts[1][1])
        np.testing.assert_array_equal(fa.utterances(["u1"])[0], utts[1][1])
        np.testing.assert_array_equal(fa.frames(["u2", "u0"]), np.vstack([utts[2][1], utts[0][1]]))
        with pytest.raises(DataError, match=r"1 listed utterance\(s\) are not in .*a\.h5: nobody"):
            fa.frames("nobody")
