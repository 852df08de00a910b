"""Kaldi-style data directories: reading, writing and every inconsistency named by file and line."""

from __future__ import annotations

import pytest

from acoustic_gmm import ManifestError
from acoustic_gmm.storage import read_data_dir, read_ids, read_spk2utt, write_data_dir


def write(d, **tables):
    d.mkdir(exist_ok=True)
    for name, text in tables.items():
        (d / name.replace("_", ".", 1) if name == "wav_scp" else d / name).write_text(text)
    return d


def test_round_trip_with_segments(tmp_path):
    write_data_dir(tmp_path / "d", {"rec1": "/a/rec1.wav", "rec2": "rel/rec2.wav"},
                   utt2spk={"s1": "ann", "s2": "ann", "s3": "bob"}, utt2label={"s1": "aa", "s2": "iy", "s3": "aa"},
                   segments={"s1": ("rec1", 0.0, 0.12), "s2": ("rec1", 0.12, 0.3), "s3": ("rec2", 1.5, 1.75)})
    dd = read_data_dir(tmp_path / "d")
    assert dd.utterances == ["s1", "s2", "s3"]
    assert dd.source("s2") == ("rec1", dd.wav["rec1"], 0.12, 0.3)
    assert dd.wav["rec2"] == tmp_path / "d" / "rel" / "rec2.wav"  # relative to the data directory
    assert dd.utt2label == {"s1": "aa", "s2": "iy", "s3": "aa"}
    assert [p.name for _, p in dd.missing_files()] == ["rec1.wav", "rec2.wav"]
    assert (tmp_path / "d" / "segments").read_text().splitlines()[1] == "s2 rec1 0.12 0.3"


@pytest.mark.parametrize("tables, message", [
    ({"wav_scp": "a /x.wav\nb /y.wav\na /z.wav\n"}, r"wav.scp:3: duplicate id 'a' \(first on line 1\)"),
    ({"wav_scp": "a /x.wav\nb\n"}, r"wav.scp:2: expected 'key value', got 'b'"),
    ({"wav_scp": "a sox x.wav -t wav - |\n"}, "wav.scp:1: piped commands are not supported"),
    ({"wav_scp": "a/b /x.wav\n"}, "wav.scp:1: id 'a/b' contains '/'"),
    ({"wav_scp": ""}, "wav.scp: is empty"),
    ({"wav_scp": "a /x.wav\nb /y.wav\n", "utt2spk": "a s1\nc s2\n"}, r"utt2spk:2: id 'c' is not one of the utterances"),
    ({"wav_scp": "a /x.wav\nb /y.wav\n", "utt2spk": "a s1\n"}, "utt2spk: 1 of the utterances of wav.scp have no line: b"),
    ({"wav_scp": "a /x.wav\n", "utt2label": "a one two\n"}, r"utt2label:1: expected 1 value\(s\) after the id"),
    ({"wav_scp": "r /x.wav\n", "segments": "u1 r 0.5 0.2\n"}, r"segments:1: need 0 <= start < end, got 0.5 0.2"),
    ({"wav_scp": "r /x.wav\n", "segments": "u1 q 0.1 0.2\n"}, "segments:1: recording 'q' is not in wav.scp"),
    ({"wav_scp": "r /x.wav\n", "segments": "u1 r zero 0.2\n"}, "segments:1: start and end must be seconds"),
    ({"wav_scp": "r /x.wav\n", "segments": "u1 r 0 0.2\n", "utt2label": "r x\n"},
     r"utt2label:1: id 'r' is not one of the utterances"),
])
def test_inconsistencies_name_file_and_line(tmp_path, tables, message):
    d = write(tmp_path / "d", **tables)
    with pytest.raises(ManifestError, match=message):
        read_data_dir(d)


def test_not_a_data_directory(tmp_path):
    with pytest.raises(ManifestError, match="not a data directory"):
        read_data_dir(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    with pytest.raises(ManifestError, match="has no wav.scp"):
        read_data_dir(tmp_path / "d")


def test_bad_ids_are_refused_on_write(tmp_path):
    with pytest.raises(ManifestError, match="id 'a b' cannot be written"):
        write_data_dir(tmp_path / "d", {"a b": "/x.wav"})


def test_a_repeated_line_of_any_list_is_an_error_naming_both_lines(tmp_path):
    ids = tmp_path / "utts"
    ids.write_text("a\nb\n\na x\n")  # an id list, or the first field of any table: 'a' would train twice
    with pytest.raises(ManifestError, match=r"utts:4: duplicate id 'a' \(first on line 1\)"):
        read_ids(ids)
    spk2utt = tmp_path / "spk2utt"
    spk2utt.write_text("ann u1 u2\nbob u3 u3\n")
    with pytest.raises(ManifestError, match=r"spk2utt:2: duplicate utterance 'u3' of model 'bob' \(first on line 2\)"):
        read_spk2utt(spk2utt)
    ids.write_text("a\nb\n")
    assert read_ids(ids) == ["a", "b"]


def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text("\ufeffa /x.wav\nb /y.wav\n", encoding="utf-8")  # as a Windows editor saves it
    (d / "utt2spk").write_text("a s1\nb s2\n")  # was "utt2spk:1: id 'a' is not one of the utterances"
    dd = read_data_dir(d)
    assert dd.utterances == ["a", "b"] and dd.utt2spk == {"a": "s1", "b": "s2"}
