"""HTK parameter files and MMF model files: headers, compression, the _K check value, round trips, parsing."""

from __future__ import annotations

import itertools
import math
import struct
import warnings

import numpy as np
import pytest

from acoustic_gmm.errors import ArchiveError, DataError, ModelFileError, ParameterError
from acoustic_gmm.features import kind_name, parse_kind
from acoustic_gmm.gmm import DiagGMM
from acoustic_gmm.interop import read_htk, read_mmf, write_htk, write_mmf
from acoustic_gmm.interop._htk_mmf import GconstWarning
from acoustic_gmm.interop._htk_params import htk_checksum

# The format, written down here independently of the module: HTK Book ch. 5 and HParm.c.
BASES = {"WAVEFORM": 0, "LPC": 1, "LPREFC": 2, "LPCEPSTRA": 3, "LPDELCEP": 4, "IREFC": 5, "MFCC": 6, "FBANK": 7,
         "MELSPEC": 8, "USER": 9, "DISCRETE": 10, "PLP": 11}
BITS = {"E": 0o100, "N": 0o200, "D": 0o400, "A": 0o1000, "C": 0o2000, "Z": 0o4000, "K": 0o10000, "0": 0o20000,
        "V": 0o40000, "T": 0o100000}
HTK_ORDER = "EDNATCKZ0V"  # ParmKind2Str


def naive_checksum(body: bytes) -> int:
    """HParm.c's UpdateCRCC, word by word: big-endian unsigned 16-bit words, c = (c * 65536 + w) % 36897."""
    c = 0
    for (w,) in struct.iter_unpack(">H", body):
        c = (c * 65536 + w) % 36897
    return c


def header(raw: bytes):
    n, period, size, kind = struct.unpack(">iihh", raw[:12])
    return n, period, size, kind & 0xFFFF


# ------------------------------------------------------------------------------------------------ kinds

def test_parse_kind_and_kind_name_round_trip_every_code():
    for base, b in BASES.items():
        for r in range(len(BITS) + 1):
            for quals in itertools.combinations(HTK_ORDER, r):
                code = b | sum(BITS[q] for q in quals)
                name = kind_name(code)
                assert name == base + "".join("_" + q for q in quals)   # HTK's order, whatever order given
                assert parse_kind(name) == code
                assert parse_kind("_".join([base.lower()] + list(reversed(quals)))) == code
    assert parse_kind("MFCC_E_D_A") == 6 + 0o100 + 0o400 + 0o1000 == 838
    assert kind_name(parse_kind("MFCC_0_D_A_Z")) == "MFCC_D_A_Z_0"
    assert kind_name(parse_kind("PLP_T_A_D_E_N")) == "PLP_E_D_N_A_T"


@pytest.mark.parametrize("bad, words", [("MFCC_X", "unknown qualifier '_X'"), ("FOO_E", "unknown base kind 'FOO'"),
                                        ("MFCC_E_E", "_E given twice"), ("MFCC__E", "unknown qualifier '_'"),
                                        ("", "unknown base kind ''"), ("MFCC_", "unknown qualifier '_'"),
                                        ("ANON_D", "unknown base kind 'ANON'"), ("MFCC_F", "'_F'")])
def test_parse_kind_refuses_unknown_pieces(bad, words):
    with pytest.raises(ParameterError, match=words):
        parse_kind(bad)


def test_kind_name_refuses_bad_codes():
    for code, words in [(12, "unknown base kind 12"), (0o100 | 63, "unknown base kind 63"), (-1, "outside 0..65535"),
                        (70000, "outside 0..65535"), ("MFCC", "must be an integer"), (True, "must be an integer")]:
        with pytest.raises(ParameterError, match=words):
            kind_name(code)
    with pytest.raises(ParameterError, match="must be a string"):
        parse_kind(6)


# ------------------------------------------------------------------------------------------- checksum

def test_checksum_is_htks_modular_fold():
    assert htk_checksum(b"") == 0
    assert htk_checksum(bytes([0, 1, 0, 2])) == (1 * 65536 + 2) % 36897 == 28641
    rng = np.random.default_rng(0)
    for n_words in (1, 4095, 4096, 4097, 10_001):   # around the 4096-word blocks of the vectorised form
        body = rng.integers(0, 256, size=2 * n_words, dtype=np.uint8).tobytes()
        assert htk_checksum(body) == naive_checksum(body)
    assert htk_checksum(b"\xff\xff" * 5000) == naive_checksum(b"\xff\xff" * 5000)  # largest words: no overflow


# ------------------------------------------------------------------------------------ parameter files

SUPPORTED = "EDNATZ0CK"  # everything but _V


@pytest.mark.parametrize("base", ["MFCC", "FBANK", "USER"])
def test_header_bytes_for_every_qualifier_combination(tmp_path, base):
    X = np.arange(15, dtype=np.float32).reshape(5, 3) * 0.5
    p = tmp_path / "x.htk"
    for r in range(len(SUPPORTED) + 1):
        for quals in itertools.combinations(SUPPORTED, r):
            kind = "_".join((base,) + quals)
            write_htk(p, X, kind=kind, period_s=0.0125)
            raw = p.read_bytes()
            n, period, size, code = header(raw)
            compressed, crc = "C" in quals, "K" in quals
            assert code == BASES[base] + sum(BITS[q] for q in quals), kind
            assert period == 125_000  # 12.5 ms in 100 ns units
            assert size == (2 if compressed else 4) * 3
            assert n == 5 + (4 if compressed else 0)  # A and B count as 4 rows of 16-bit samples
            assert len(raw) == 12 + n * size + (2 if crc else 0)
            if crc:
                assert struct.unpack(">H", raw[-2:])[0] == naive_checksum(raw[12:-2])
            if not compressed:
                assert np.array_equal(np.frombuffer(raw[12:12 + 60], dtype=">f4").reshape(5, 3), X)
    # compress= and crc= set the same bits as the qualifiers
    write_htk(p, X, kind=base, compress=True, crc=True)
    assert header(p.read_bytes())[3] == BASES[base] | BITS["C"] | BITS["K"]
    assert not list(tmp_path.glob(".*"))  # no temporary or lock file left beside it


def test_uncompressed_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((200, 39)) * rng.uniform(0.01, 100, 39) + rng.uniform(-500, 500, 39)).astype(np.float32)
    for kind, crc in [("MFCC_E_D_A_Z", False), ("USER_N", True), ("PLP_0_D_A_T", True)]:
        write_htk(tmp_path / "f.htk", X, kind=kind, period_s=0.01, crc=crc)
        Y, info = read_htk(tmp_path / "f.htk")
        assert Y.dtype == np.float32 and np.array_equal(Y, X)
        assert info["kind"] == kind_name(parse_kind(kind) | (BITS["K"] if crc else 0))
        assert info["period_s"] == 0.01 and info["sample_size"] == 4 * 39 and info["n_samples"] == 200
        assert info["crc"] is crc and info["compressed"] is False
        assert info["energy_suppressed"] is ("_N" in kind)
    write_htk(tmp_path / "g.htk", X.astype(np.float64))   # float64 in: stored as float32
    assert np.array_equal(read_htk(tmp_path / "g.htk")[0], X)


def test_compressed_round_trip_within_htk_quantisation(tmp_path):
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((500, 40)) * rng.uniform(0.01, 100, 40) + rng.uniform(-300, 300, 40)).astype(np.float32)
    X[:, 5] = 3.25                                            # constant column: A = 1, B = xmax, exact
    X[:, 6] = np.float32(2e4) + rng.uniform(0, 1, 500).astype(np.float32)   # offset 4e4 times the range
    p = tmp_path / "c.htk"
    write_htk(p, X, kind="MFCC_E_D_A", compress=True, crc=True)
    Y, info = read_htk(p)
    assert info["compressed"] and info["crc"] and info["n_samples"] == 504 and info["sample_size"] == 80
    assert Y.shape == X.shape and Y.dtype == np.float32
    err = np.abs(Y.astype(np.float64) - X).max(axis=0)
    span = X.max(axis=0).astype(np.float64) - X.min(axis=0)
    A = np.frombuffer(p.read_bytes()[12:12 + 160], dtype=">f4").astype(np.float64)
    # the bound of the brief, and the one of the scheme: half a quantisation step plus float32 rounding of x'
    assert (err <= span / 65534 + np.spacing(np.abs(X).max(axis=0))).all()
    assert (err <= 0.5 / A * (1 + 1e-6) + np.spacing(np.abs(X).max(axis=0)) / 2).all()
    assert err[5] == 0
    # HTK's scaling on ordinary columns (float32 rounding aside); on the offset column float32 rounding of
    # B (ulp 128 at 1.3e9) would push rows past +-32767, so A is a little smaller there
    ok = (span > 0) & (np.arange(40) != 6)
    assert np.allclose(A[ok], 2 * 32767 / span[ok], rtol=2e-6)
    assert 0.99 * 2 * 32767 / span[6] < A[6] < 2 * 32767 / span[6]
    measured = err[ok] / (span[ok] / 65534)
    # half the brief's bound, as rounding to nearest gives, plus float32 rounding of x' (measured: 0.502)
    assert 0.45 < measured.max() <= 0.51


def test_compression_never_clips_a_column_with_a_huge_offset(tmp_path):
    # x in [1e4, 1e4 + 1]: B = 32767 (xmax + xmin) / (xmax - xmin) is ~6.6e8, whose float32 rounding (ulp 64)
    # pushes extreme rows past +-32767 with HTK's own A and B (HTK stops there: "short out of range").
    rng = np.random.default_rng(5)
    X = (np.float32(1e4) + rng.uniform(0, 1, (300, 2))).astype(np.float32)
    lo, hi = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
    A_htk = (2 * 32767 / (hi - lo)).astype(np.float32).astype(np.float64)
    B_htk = ((hi + lo) * 32767 / (hi - lo)).astype(np.float32).astype(np.float64)
    naive = np.rint(X * A_htk - B_htk)
    assert (np.abs(naive) > 32767).any()           # the case is real
    p = tmp_path / "h.htk"
    write_htk(p, X, kind="USER", compress=True)
    Y, _ = read_htk(p)
    raw = p.read_bytes()
    A = np.frombuffer(raw[12:20], dtype=">f4").astype(np.float64)
    s = np.frombuffer(raw[12 + 16:], dtype=">i2")
    assert s.min() >= -32767 and s.max() <= 32767
    assert (0.99 * A_htk < A).all() and (A < A_htk).all()   # A reduced by about B's rounding error only
    err = np.abs(Y.astype(np.float64) - X).max(axis=0)
    assert (err <= (hi - lo) / 65534 + np.spacing(np.float32(1e4 + 1))).all()


def test_hand_made_compressed_file_reads_to_the_expected_numbers(tmp_path):
    A = np.array([2.0, 0.5, 100.0], dtype=">f4")
    B = np.array([1.0, -3.0, 0.0], dtype=">f4")
    s = np.array([[0, 1, -32767], [32767, -2, 5], [-5, 7, 100]], dtype=">i2")
    body = A.tobytes() + B.tobytes() + s.tobytes()
    kind = BASES["MFCC"] | BITS["E"] | BITS["C"]
    (tmp_path / "hand.htk").write_bytes(struct.pack(">iihh", 3 + 4, 100_000, 6, kind) + body)
    Y, info = read_htk(tmp_path / "hand.htk")
    expected = (s.astype(np.float64) + B.astype(np.float64)) / A.astype(np.float64)
    assert np.allclose(Y, expected, rtol=1e-7, atol=0)
    assert Y[1, 0] == np.float32(32768 / 2) and Y[0, 1] == np.float32(-4.0)
    assert info["kind"] == "MFCC_E_C" and info["n_samples"] == 7 and Y.shape == (3, 3)

    # the same with _K: a correct check value reads, a wrong one is refused
    kind_k = kind | BITS["K"]
    good = struct.pack(">iihh", 7, 100_000, 6, struct.unpack(">h", struct.pack(">H", kind_k))[0]) + body
    (tmp_path / "k.htk").write_bytes(good + struct.pack(">H", naive_checksum(body)))
    assert np.array_equal(read_htk(tmp_path / "k.htk")[0], Y)
    (tmp_path / "k.htk").write_bytes(good + struct.pack(">H", (naive_checksum(body) + 1) % 36897))
    with pytest.raises(ArchiveError, match=r"k\.htk: _K check value mismatch"):
        read_htk(tmp_path / "k.htk")


def test_hand_made_irefc_file(tmp_path):
    s = np.array([[32767, -32767], [0, 16384]], dtype=">i2")
    (tmp_path / "r.htk").write_bytes(struct.pack(">iihh", 2, 100_000, 4, BASES["IREFC"]) + s.tobytes())
    Y, info = read_htk(tmp_path / "r.htk")
    assert np.allclose(Y, s / 32767.0, rtol=1e-7) and info["kind"] == "IREFC" and not info["compressed"]
    write_htk(tmp_path / "w.htk", Y, kind="LPREFC", compress=True)   # saved as IREFC, as HTK does
    assert header((tmp_path / "w.htk").read_bytes()) == (2, 100_000, 4, BASES["IREFC"])
    assert np.allclose(read_htk(tmp_path / "w.htk")[0], Y, atol=0.5 / 32767)


def test_corrupted_data_fails_the_check(tmp_path):
    p = tmp_path / "d.htk"
    write_htk(p, np.arange(40.0).reshape(10, 4), kind="FBANK_Z", crc=True)
    raw = bytearray(p.read_bytes())
    raw[40] ^= 0x10
    p.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match=r"d\.htk: _K check value mismatch: the file says \d+, its data give \d+"):
        read_htk(p)


def test_truncated_and_padded_files_are_refused_with_their_name(tmp_path):
    p = tmp_path / "t.htk"
    write_htk(p, np.ones((10, 4)), kind="MFCC", crc=True)
    raw = p.read_bytes()
    for cut, words in [(len(raw) - 1, r"truncated: .* needs 174 bytes, the file has 173"),
                       (len(raw) - 2, "truncated"), (20, "truncated"), (12, "truncated"),
                       (7, "7 bytes, shorter than the 12-byte HTK header"), (0, "0 bytes")]:
        p.write_bytes(raw[:cut])
        with pytest.raises(ArchiveError, match=f"t\\.htk: {words}"):
            read_htk(p)
    p.write_bytes(raw + b"\0\0\0\0")
    with pytest.raises(ArchiveError, match=r"t\.htk: 4 bytes more than the header"):
        read_htk(p)
    with pytest.raises(ArchiveError, match=r"nope\.htk: no such HTK parameter file"):
        read_htk(tmp_path / "nope.htk")


@pytest.mark.parametrize("hdr, size, words", [
    ((5, 100_000, 6, 9), 30, "sampSize = 6 bytes is not a positive multiple of 4"),
    ((5, 100_000, 0, 9), 0, "sampSize = 0"),
    ((0, 100_000, 8, 9), 0, "nSamples = 0"),
    ((-3, 100_000, 8, 9), 0, "nSamples = -3"),
    ((5, 0, 8, 9), 40, "sampPeriod = 0"),
    ((5, 100_000, 8, 0), 40, "kind WAVEFORM is not a feature matrix"),
    ((5, 100_000, 8, 10), 40, "kind DISCRETE is not a feature matrix"),
    ((5, 100_000, 8, 9 | 0o40000), 40, "USER_V: _V files carry VQ indices"),
    ((5, 100_000, 8, 13), 40, "unknown base kind 13"),
    ((3, 100_000, 8, 9 | 0o2000), 24, r"leaves -1 frames after the 4 rows"),
])
def test_impossible_headers_are_refused(tmp_path, hdr, size, words):
    p = tmp_path / "bad.htk"
    p.write_bytes(struct.pack(">iiHH", *hdr) + b"\0" * size)
    with pytest.raises(ArchiveError, match=rf"bad\.htk: .*{words}"):
        read_htk(p)


def test_little_endian_files_get_a_hint(tmp_path):
    p = tmp_path / "le.htk"
    p.write_bytes(struct.pack("<iiHH", 2, 100_000, 8, 9) + np.ones(4, dtype="<f4").tobytes())
    with pytest.raises(ArchiveError, match="reads as a little-endian file"):
        read_htk(p)


def test_write_htk_refusals(tmp_path):
    p = tmp_path / "o.htk"
    write_htk(p, np.ones((2, 2)))
    before = p.read_bytes()
    for kwargs, exc, words in [
        (dict(frames=np.array([[1.0, np.nan]])), DataError, "non-finite"),
        (dict(frames=np.ones((0, 3))), DataError, "0 frame"),
        (dict(frames=np.ones(3)), DataError, "2-D"),
        (dict(frames=np.array([[1e39]])), DataError, "float32 range"),
        (dict(kind="WAVEFORM"), ParameterError, "not a float feature matrix"),
        (dict(kind="DISCRETE"), ParameterError, "not a float feature matrix"),
        (dict(kind="MFCC_V"), ParameterError, "_V files"),
        (dict(kind="MFCC_Q"), ParameterError, "unknown qualifier"),
        (dict(period_s=0), ParameterError, "positive number"),
        (dict(period_s=0.5), ParameterError, "HTK reads 1 to 1000000"),
        (dict(frames=np.ones((2, 1251))), ParameterError, "at most 5000 bytes"),
        (dict(kind="IREFC", frames=np.full((2, 2), 1.5)), DataError, r"\[-1, 1\]"),
    ]:
        args = {"frames": np.ones((2, 2)), **kwargs}
        with pytest.raises(exc, match=words) as info:
            write_htk(p, args.pop("frames"), **args)
        assert "o.htk" in str(info.value)
        assert p.read_bytes() == before  # a refused write leaves the old file
    write_htk(p, np.ones((2, 1251)), compress=True)  # 16-bit columns fit 2502 bytes
    assert header(p.read_bytes())[2] == 2502


# -------------------------------------------------------------------------------------------- MMF files

def random_gmm(K=4, D=5, seed=3):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(K))
    return w, rng.standard_normal((K, D)) * 10, rng.uniform(0.01, 30, (K, D))


def test_mmf_round_trip_is_exact_and_scores_agree(tmp_path):
    w, mu, var = random_gmm()
    p = tmp_path / "m.mmf"
    write_mmf(p, w, mu, var, name="ubm", kind="MFCC_E_D_A_Z")
    w2, mu2, var2, info = read_mmf(p)
    # 17 significant digits: float64 back bit for bit (so certainly within the brief's 1e-7 relative)
    assert np.array_equal(w2, w) and np.array_equal(mu2, mu) and np.array_equal(var2, var)
    assert info["name"] == "ubm" and info["names"] == ["ubm"] and info["kind"] == "MFCC_E_D_A_Z"
    assert info["vecsize"] == 5 and info["n_states"] == 3 and info["state"] == 2 and info["nummixes"] == 4
    assert np.array_equal(info["transp"], [[0, 1, 0], [0, 0.5, 0.5], [0, 0, 0]])
    gconst = 5 * math.log(2 * math.pi) + np.log(var).sum(axis=1)
    assert np.allclose(info["gconst"], gconst, rtol=1e-15)
    X = np.random.default_rng(4).standard_normal((300, 5)) * 12
    a = DiagGMM(w, mu, var, dtype="float64").score_samples(X)
    b = DiagGMM(w2, mu2, var2, dtype="float64").score_samples(X)
    assert np.max(np.abs(a - b)) <= 1e-10


def test_mmf_text_layout(tmp_path):
    p = tmp_path / "l.mmf"
    write_mmf(p, [1.0], [[0.5, -1.0]], [[2.0, 0.25]], name="g1")
    text = p.read_text()
    assert text.startswith('~o\n<STREAMINFO> 1 2\n<VECSIZE> 2<NULLD><USER><DIAGC>\n~h "g1"\n<BEGINHMM>\n'
                           '<NUMSTATES> 3\n<STATE> 2\n<NUMMIXES> 1\n<MIXTURE> 1 1.0000000000000000e+00\n<MEAN> 2\n')
    g = float(text.split("<GCONST>")[1].split()[0])
    assert g == pytest.approx(2 * math.log(2 * math.pi) + math.log(2.0) + math.log(0.25), rel=1e-15)
    assert text.rstrip().endswith("<ENDHMM>")


HAND_MMF = """~o
<STREAMINFO> 1 2
<VecSize> 2<NullD><MFCC_D_A_0><DiagC>
~v "varFloor1"
<Variance> 2
 1.0e-02 1.0e-02
~h "sil"
<BeginHMM>
<NumStates> 3
<State> 2
<Mean> 2
 1.0 -2.0
<Variance> 2
 0.5 2.0
<GConst> 3.675754e+00
<TransP> 3
 0.0 1.0 0.0
 0.0 0.6 0.4
 0.0 0.0 0.0
<EndHMM>
~h "yes"
<BEGINHMM>
<numstates> 3
<STATE> 2
<NumMixes> 3
<Mixture> 1 4.000000e-01
<MEAN> 2
 0.0 0.0
<VARIANCE> 2
 1.0 1.0
<Mixture> 3 6.0e-01
<RClass> 1
<mean> 2
 3.0 4.0
<variance> 2
 2.0 8.0
<gconst> 6.448343e+00
<TRANSP> 3
 0 1 0 0 .5 .5 0 0 0
<ENDHMM>
"""


def test_hand_written_htk_mmf_parses(tmp_path):
    p = tmp_path / "hmmdefs"
    p.write_text(HAND_MMF)
    with pytest.raises(ModelFileError, match=r"hmmdefs: holds 2 models \(sil, yes\); pass name="):
        read_mmf(p)
    with pytest.raises(ModelFileError, match=r"no model named 'no'; the file holds sil, yes"):
        read_mmf(p, "no")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # the GCONSTs above are right (to 7 digits)
        w, mu, var, info = read_mmf(p, "sil")
        assert w.tolist() == [1.0] and mu.tolist() == [[1.0, -2.0]] and var.tolist() == [[0.5, 2.0]]
        assert info["kind"] == "MFCC_D_A_0" and info["nummixes"] is None and info["mixture_ids"] == [1]
        assert np.allclose(info["transp"][1], [0, 0.6, 0.4])
        # mixture 2 left out (defunct, as HTK writes it), no GCONST on mixture 1
        w, mu, var, info = read_mmf(p, "yes")
    assert w.tolist() == [0.4, 0.6] and mu.tolist() == [[0, 0], [3, 4]] and var.tolist() == [[1, 1], [2, 8]]
    assert info["mixture_ids"] == [1, 3] and info["nummixes"] == 3
    assert np.isnan(info["gconst"][0]) and info["gconst"][1] == pytest.approx(2 * math.log(2 * math.pi) + math.log(16))


def test_mmf_macros_are_resolved(tmp_path):
    text = ('~o <VECSIZE> 2 <USER> <DIAGC>\n~u "m0" <MEAN> 2 1 2\n~v "v0" <VARIANCE> 2 3 4\n'
            '~m "c1" <MEAN> 2 5 6 <VARIANCE> 2 7 8\n~t "T" <TRANSP> 3 0 1 0 0 0.7 0.3 0 0 0\n'
            '~s "S" <NUMMIXES> 2 <MIXTURE> 1 0.25 ~u "m0" ~v "v0" <MIXTURE> 2 0.75 ~m "c1"\n'
            '~h "a" <BEGINHMM> <NUMSTATES> 3 <STATE> 2 ~s "S" ~t "T" <ENDHMM>\n')
    (tmp_path / "mac.mmf").write_text(text)
    w, mu, var, info = read_mmf(tmp_path / "mac.mmf")
    assert w.tolist() == [0.25, 0.75] and mu.tolist() == [[1, 2], [5, 6]] and var.tolist() == [[3, 4], [7, 8]]
    assert info["transp"][1].tolist() == [0, 0.7, 0.3]
    (tmp_path / "undef.mmf").write_text(text.replace('~u "m0" <MEAN> 2 1 2\n', ""))
    with pytest.raises(ModelFileError, match=r'undef\.mmf: line 5: ~u "m0" \(a mean\) is used before it is defined'):
        read_mmf(tmp_path / "undef.mmf")


def test_mmf_without_h_is_named_after_the_file_and_states_can_be_picked(tmp_path):
    p = tmp_path / "proto"
    p.write_text("<BeginHMM> <NumStates> 4 <State> 2 <Mean> 1 0 <Variance> 1 1 <State> 3 <Mean> 1 5 "
                 "<Variance> 1 2 <TransP> 4 0 1 0 0 0 .5 .5 0 0 0 .5 .5 0 0 0 0 <EndHMM>")
    with pytest.raises(ModelFileError, match=r"proto: model 'proto' has 2 emitting states \(2..3\); pass state="):
        read_mmf(p)
    _, mu, var, info = read_mmf(p, state=3)
    assert mu.tolist() == [[5.0]] and var.tolist() == [[2.0]] and info["name"] == "proto"


def test_mmf_gconst_mismatch_warns(tmp_path):
    p = tmp_path / "gc.mmf"
    write_mmf(p, [0.5, 0.5], [[0.0], [1.0]], [[1.0], [2.0]])
    text = p.read_text()
    g = text.split("<GCONST> ")[2].split()[0]
    p.write_text(text.replace(f"<GCONST> {g}", "<GCONST> 9.0"))
    with pytest.warns(GconstWarning, match=r"gc\.mmf: model 'gmm' state 2: <GCONST> of 1 mixture\(s\) disagrees .*"
                                           r"mixture 2: file 9\.0"):
        var = read_mmf(p)[2]
    assert var.tolist() == [[1.0], [2.0]]
    # 1e-3 relative is the threshold: HTK's own 7-digit GCONSTs pass, a 2e-3 error does not
    ok = math.log(2 * math.pi) + math.log(2.0)
    p.write_text(text.replace(f"<GCONST> {g}", f"<GCONST> {ok * (1 + 0.9e-3)!r}"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_mmf(p)
    p.write_text(text.replace(f"<GCONST> {g}", f"<GCONST> {ok * (1 + 2e-3)!r}"))
    with pytest.warns(GconstWarning):
        read_mmf(p)


@pytest.mark.parametrize("change, words", [
    (("<VARIANCE> 2", "<INVCOVAR> 2"), "line 12: <INVCOVAR>: full or transformed covariances are not supported"),
    (("<DIAGC>", "<FULLC>"), r"<FULLC>: only diagonal covariances"),
    (("<STREAMINFO> 1 2", "<STREAMINFO> 2 1 1"), "multi-stream models are not supported"),
    (("<NUMMIXES> 2", "<NUMMIXES> 1"), "<MIXTURE> 2: outside 1..1"),
    (("<MIXTURE> 2", "<MIXTURE> 1"), "<MIXTURE> 1: given twice"),
    (("<MEAN> 2\n", "<MEAN> 3\n"), "expected a number"),
    (("<TRANSP> 3", "<TRANSP> 2"), r"transition matrix is 2x2 but the model has 3 states"),
    (("<ENDHMM>", ""), r"end of file: file ends where <ENDHMM> was expected \(truncated\?\)"),
    (("<NUMSTATES> 3", "<NUMSTATES> 3 <FOO>"), r"expected <STATE>|emitting state\(s\) \[2\] missing"),
    (("<MIXTURE> 1 5.", "<MIXTURE> 1 9."), "weights sum to"),
    (('~h "gmm"', '~r "tree"'), "macro type ~r"),
    (("<VECSIZE> 2", "<VECSIZE> 3"), r"mean sizes \[2\] disagree with <VECSIZE> 3"),
])
def test_mmf_errors_name_the_file_and_the_problem(tmp_path, change, words):
    p = tmp_path / "e.mmf"
    write_mmf(p, [0.5, 0.5], [[0.0, 1.0], [1.0, 2.0]], [[1.0, 2.0], [2.0, 3.0]])
    text = p.read_text()
    assert change[0] in text
    p.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(ModelFileError, match=r"e\.mmf: .*" + words):
        read_mmf(p)


def test_mmf_refuses_binary_and_missing_files(tmp_path):
    (tmp_path / "b.mmf").write_bytes(b"~o\n<VECSIZE> 2\x00\x01\x02")
    with pytest.raises(ModelFileError, match=r"b\.mmf: holds binary data"):
        read_mmf(tmp_path / "b.mmf")
    with pytest.raises(ModelFileError, match=r"none\.mmf: no such MMF file"):
        read_mmf(tmp_path / "none.mmf")


def test_write_mmf_refusals(tmp_path):
    p = tmp_path / "r.mmf"
    good = ([0.5, 0.5], [[0.0], [1.0]], [[1.0], [2.0]])
    for args, kwargs, words in [
        (([0.5, 0.6], *good[1:]), {}, "sum to 1"),
        (([1.5, -0.5], *good[1:]), {}, "non-negative"),
        ((good[0], good[1], [[1.0], [0.0]]), {}, "variances must be positive"),
        ((good[0], good[1], [[1.0, 2.0], [1.0, 2.0]]), {}, "shapes"),
        ((good[0], [[np.nan], [1.0]], good[2]), {}, "non-finite"),
        (good, {"name": 'a "b'}, "model name"),
        (good, {"name": ""}, "model name"),
        (good, {"kind": "MFCC_C"}, "_C, _K and _V"),
        (good, {"kind": "MFCC_W"}, "unknown qualifier"),
    ]:
        with pytest.raises(ParameterError, match=words) as info:
            write_mmf(p, *args, **kwargs)
        assert "r.mmf" in str(info.value)
    assert not p.exists()
