"""HTK text MMFs ("master macro files", HTK Book, "HMM Definition Files") holding a diagonal GMM.

:func:`write_mmf` writes a GMM as the one emitting state (state 2) of a 3-state HMM, the usual way to hand a GMM to
HTK; :func:`read_mmf` reads such files, including ones written by HHEd/HERest (see its notes for what it accepts).
Numbers are written with 17 significant digits, so a float64 model reads back exactly.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import ModelFileError, ParameterError
from ..features._htk_config import kind_name, parse_kind
from ..storage._outputs import atomic_path
from ._htk_params import LOG_2PI, QUAL_C, QUAL_K, QUAL_V, kind_code, read_bytes

__all__ = ["write_mmf", "read_mmf"]


class GconstWarning(UserWarning):
    """An MMF mixture's ``<GCONST>`` disagrees with its variances (the variances are used)."""


# ---------------------------------------------------------------------------------------- MMF files

def _fmt(v: float) -> str:
    return f"{float(v):.16e}"


def _check_name(name) -> str:
    if not isinstance(name, str) or not name or re.search(r'[\s"\\<>~]', name) or not name.isprintable():
        raise ParameterError(f"model name must be a non-empty printable string without spaces, quotes, "
                             f"backslashes, '<', '>' or '~', got {name!r}")
    return name


def write_mmf(path, weights, means, variances, *, name: str = "gmm", kind="USER") -> None:
    """Write a diagonal GMM as a text HTK MMF: the one emitting state of a 3-state HMM.

    The file is ``~o <STREAMINFO> 1 D <VECSIZE> D<NULLD><kind><DIAGC>``, then ``~h "name"`` and
    ``<BEGINHMM> <NUMSTATES> 3 <STATE> 2 <NUMMIXES> K``, per component ``<MIXTURE> k w <MEAN> D ...
    <VARIANCE> D ... <GCONST> g`` with ``g = D log(2 pi) + sum(log var)`` (HTK's GCONST), then
    ``<TRANSP> 3`` with rows ``0 1 0 / 0 0.5 0.5 / 0 0 0`` (enter the state; stay or leave with
    probability 1/2: the transitions do not matter for GMM scores) and ``<ENDHMM>``.  Numbers have 17
    significant digits, so :func:`read_mmf` gives back the float64 parameters exactly.  Written
    atomically (:func:`acoustic_gmm.storage.atomic_path`).

    Parameters
    ----------
    path : str or Path
    weights : array_like, (K,)
        Non-negative, summing to 1 (within 1e-5).
    means : array_like, (K, D)
    variances : array_like, (K, D)
        Positive.
    name : str
        The model's ``~h`` name (no spaces, quotes, backslashes).
    kind : str or int
        The parameter kind of the features the model is for, e.g. ``"MFCC_E_D_A_Z"``; the storage
        qualifiers ``_C``/``_K`` and ``_V`` are refused, as HTK's models never carry them.

    Raises
    ------
    ParameterError
        Inconsistent shapes, non-finite values, negative weights or weights not summing to 1,
        non-positive variances, a bad name or kind.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "g.mmf")
    >>> write_mmf(p, [0.25, 0.75], [[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [0.5, 0.5]], name="ubm")
    >>> w, m, v, info = read_mmf(p)
    >>> w.tolist(), info["name"], info["kind"]
    ([0.25, 0.75], 'ubm', 'USER')
    """
    path = Path(path)
    try:
        name = _check_name(name)
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None
    code = kind_code(kind, path)
    if code & (QUAL_C | QUAL_K | QUAL_V):
        raise ParameterError(f"{path}: model kind {kind_name(code)}: _C, _K and _V describe how a parameter file "
                             f"is stored, not the features; give the kind without them")
    w = np.asarray(weights, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    var = np.asarray(variances, dtype=np.float64)
    if w.ndim != 1 or mu.ndim != 2 or var.shape != mu.shape or mu.shape[0] != w.shape[0] or w.size == 0 \
            or mu.shape[1] == 0:
        raise ParameterError(f"{path}: weights (K,), means (K, D) and variances (K, D) expected, got shapes "
                             f"{w.shape}, {mu.shape}, {var.shape}")
    for what, a in (("weights", w), ("means", mu), ("variances", var)):
        if not np.isfinite(a).all():
            raise ParameterError(f"{path}: {what} hold non-finite values")
    if (w < 0).any() or abs(w.sum() - 1.0) > 1e-5:
        raise ParameterError(f"{path}: weights must be non-negative and sum to 1, got sum {float(w.sum())!r}, "
                             f"min {float(w.min())!r}")
    if (var <= 0).any():
        raise ParameterError(f"{path}: variances must be positive (min {float(var.min())!r})")
    K, D = mu.shape
    gconst = D * LOG_2PI + np.log(var).sum(axis=1)
    lines = ["~o", f"<STREAMINFO> 1 {D}", f"<VECSIZE> {D}<NULLD><{kind_name(code)}><DIAGC>",
             f'~h "{name}"', "<BEGINHMM>", "<NUMSTATES> 3", "<STATE> 2", f"<NUMMIXES> {K}"]
    for k in range(K):
        lines += [f"<MIXTURE> {k + 1} {_fmt(w[k])}",
                  f"<MEAN> {D}", " " + " ".join(map(_fmt, mu[k])),
                  f"<VARIANCE> {D}", " " + " ".join(map(_fmt, var[k])),
                  f"<GCONST> {_fmt(gconst[k])}"]
    lines += ["<TRANSP> 3", " " + " ".join(map(_fmt, (0, 1, 0))), " " + " ".join(map(_fmt, (0, 0.5, 0.5))),
              " " + " ".join(map(_fmt, (0, 0, 0))), "<ENDHMM>"]
    text = "\n".join(lines) + "\n"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="ascii")


_TOKEN = re.compile(r'<[^<>\s]*>|~[A-Za-z]|"(?:[^"\\\n]|\\.)*"|[^\s<>"~]+|\S')


# covariance kinds and options we cannot honour
_VECTOR_MACROS = {"u": "MEAN", "v": "VARIANCE", "d": "DURATION", "w": "SWEIGHTS"}


_FULL_COV = {"INVCOVAR", "LLTCOVAR", "XFORM", "FULLC", "LLTC", "XFORMC", "INVDIAGC"}


_DUR_KINDS = {"NULLD", "POISSOND", "GAMMAD", "GEND"}


class _Tokens:
    def __init__(self, path: Path, text: str):
        self.path = path
        self.toks = []
        line = 1
        last = 0
        for m in _TOKEN.finditer(text):
            line += text.count("\n", last, m.start())
            last = m.start()
            self.toks.append((m.group(), line))
        self.i = 0

    def err(self, msg: str, at: int | None = None) -> ModelFileError:
        i = self.i if at is None else at
        where = f"line {self.toks[i][1]}" if i < len(self.toks) else "end of file"
        return ModelFileError(f"{self.path}: {where}: {msg}")

    def peek(self) -> str | None:
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def peek_kw(self) -> str | None:
        t = self.peek()
        return t[1:-1].upper() if t and t.startswith("<") and t.endswith(">") else None

    def next(self, what: str) -> str:
        if self.i >= len(self.toks):
            raise self.err(f"file ends where {what} was expected (truncated?)")
        t = self.toks[self.i][0]
        self.i += 1
        return t

    def expect(self, kw: str) -> None:
        t = self.peek_kw()
        if t != kw:
            if self.peek() is None:
                raise self.err(f"file ends where <{kw}> was expected (truncated?)")
            raise self.err(f"expected <{kw}>, found {self.peek()!r}")
        self.i += 1

    def integer(self, what: str) -> int:
        t = self.next(what)
        try:
            return int(t)
        except ValueError:
            raise self.err(f"expected an integer ({what}), found {t!r}", self.i - 1) from None

    def number(self, what: str) -> float:
        t = self.next(what)
        try:
            v = float(t)
        except ValueError:
            raise self.err(f"expected a number ({what}), found {t!r}", self.i - 1) from None
        if not math.isfinite(v):
            raise self.err(f"{what} is {t}", self.i - 1)
        return v

    def vector(self, n: int, what: str) -> np.ndarray:
        return np.array([self.number(f"{what} value {j + 1} of {n}") for j in range(n)], dtype=np.float64)

    def string(self, what: str) -> str:
        t = self.next(what)
        if t.startswith(("<", "~")):
            raise self.err(f"expected {what}, found {t!r}", self.i - 1)
        if t.startswith('"'):
            if len(t) < 2 or not t.endswith('"'):
                raise self.err(f"unterminated quoted {what} {t!r}", self.i - 1)
            return re.sub(r"\\(.)", r"\1", t[1:-1])
        return t


class _MMF:
    """Recursive-descent reader of the text MMF grammar (HTK Book, "HMM Definition Files"), diagonal only."""

    def __init__(self, path: Path, text: str):
        self.t = _Tokens(path, text)
        self.path = path
        self.macros: dict = {}      # (type, name) -> parsed structure
        self.models: dict = {}      # name -> hmm dict
        self.opts: dict = {"kind": None, "vecsize": None, "covkind": None}

    # -- options
    def option(self, opts: dict) -> bool:
        t = self.t
        kw = t.peek_kw()
        if kw is None:
            return False
        if kw == "VECSIZE":
            t.i += 1
            opts["vecsize"] = t.integer("<VECSIZE>")
        elif kw == "STREAMINFO":
            t.i += 1
            s = t.integer("number of streams")
            widths = [t.integer("stream width") for _ in range(max(s, 0))]
            if s != 1:
                raise t.err(f"<STREAMINFO> {s} {' '.join(map(str, widths))}: multi-stream models are not supported")
            opts["vecsize"] = opts["vecsize"] or widths[0]
        elif kw == "HMMSETID":
            t.i += 1
            opts["hmmsetid"] = t.string("HMM set id")
        elif kw == "DIAGC":
            t.i += 1
            opts["covkind"] = "DIAGC"
        elif kw in _FULL_COV:
            raise t.err(f"<{kw}>: only diagonal covariances (<DIAGC>) are supported")
        elif kw in _DUR_KINDS:
            t.i += 1
        elif kw in ("INPUTXFORM", "PARENTXFORM", "PROJSIZE", "MSDINFO"):
            raise t.err(f"<{kw}>: not supported here (a plain GMM file has no transforms or MSD streams)")
        else:
            try:
                code = parse_kind(kw)
            except ParameterError:
                if kw.split("_")[0] == "ANON":
                    t.i += 1
                    opts["kind"] = kw
                    return True
                return False
            t.i += 1
            opts["kind"] = kind_name(code)
        return True

    def macro_ref(self, typ: str, what: str):
        t = self.t
        t.i += 1
        name = t.string(f"~{typ} macro name")
        key = (typ, name)
        if key not in self.macros:
            raise t.err(f'~{typ} "{name}" ({what}) is used before it is defined', t.i - 1)
        return self.macros[key]

    # -- pieces
    def mean(self) -> np.ndarray:
        t = self.t
        if t.peek() == "~u":
            return self.macro_ref("u", "a mean")
        t.expect("MEAN")
        return t.vector(t.integer("<MEAN> size"), "<MEAN>")

    def variance(self) -> np.ndarray:
        t = self.t
        tok = t.peek()
        if tok == "~v":
            return self.macro_ref("v", "a variance")
        kw = t.peek_kw()
        if kw in _FULL_COV or tok in ("~i", "~c", "~x"):
            raise t.err(f"{tok}: full or transformed covariances are not supported, only diagonal <VARIANCE>")
        t.expect("VARIANCE")
        return t.vector(t.integer("<VARIANCE> size"), "<VARIANCE>")

    def mixpdf(self) -> dict:
        t = self.t
        if t.peek() == "~m":
            return self.macro_ref("m", "a mixture component")
        if t.peek_kw() == "RCLASS":
            t.i += 1
            t.integer("<RCLASS>")
        start = t.i
        mu = self.mean()
        var = self.variance()
        if len(mu) != len(var):
            raise t.err(f"mean of size {len(mu)} but variance of size {len(var)}", start)
        g = None
        if t.peek_kw() == "GCONST":
            t.i += 1
            g = t.number("<GCONST>")
        return {"mean": mu, "var": var, "gconst": g, "line": t.toks[start][1] if start < len(t.toks) else 0}

    def duration(self) -> None:
        t = self.t
        if t.peek() == "~d":
            self.macro_ref("d", "a duration")
        elif t.peek_kw() == "DURATION":
            t.i += 1
            t.vector(t.integer("<DURATION> size"), "<DURATION>")

    def stateinfo(self) -> dict:
        t = self.t
        if t.peek() == "~s":
            return self.macro_ref("s", "a state")
        n_mix = None
        if t.peek_kw() == "NUMMIXES":
            t.i += 1
            n_mix = t.integer("<NUMMIXES>")
            if n_mix < 1:
                raise t.err(f"<NUMMIXES> {n_mix}: at least one mixture component needed", t.i - 1)
        if t.peek() == "~w":
            self.macro_ref("w", "stream weights")
        elif t.peek_kw() == "SWEIGHTS":
            t.i += 1
            t.vector(t.integer("<SWEIGHTS> size"), "<SWEIGHTS>")
        if t.peek_kw() == "STREAM":
            t.i += 1
            s = t.integer("<STREAM>")
            if s != 1:
                raise t.err(f"<STREAM> {s}: multi-stream models are not supported", t.i - 1)
        if t.peek_kw() in ("TMIX", "DPROB"):
            raise t.err(f"<{t.peek_kw()}>: tied-mixture and discrete models are not supported")
        mixes: dict = {}
        if t.peek_kw() != "MIXTURE":
            mixes[1] = (1.0, self.mixpdf())       # no <MIXTURE>: a single Gaussian of weight 1
        while t.peek_kw() == "MIXTURE":
            at = t.i
            t.i += 1
            k = t.integer("<MIXTURE> number")
            w = t.number("<MIXTURE> weight")
            if k < 1 or (n_mix is not None and k > n_mix) or k in mixes:
                raise t.err(f"<MIXTURE> {k}: " + ("given twice" if k in mixes else
                            f"outside 1..{n_mix if n_mix is not None else 'NUMMIXES'}"), at)
            if w < 0:
                raise t.err(f"<MIXTURE> {k}: negative weight {w}", at)
            mixes[k] = (w, self.mixpdf())
        if n_mix is not None and len(mixes) > n_mix:
            raise t.err(f"{len(mixes)} mixture components but <NUMMIXES> {n_mix}")
        self.duration()
        # fewer components than <NUMMIXES> is fine: HTK leaves defunct ones (weight <= MINMIX) out
        return {"mixes": dict(sorted(mixes.items())), "nummixes": n_mix}

    def transp(self, n: int) -> np.ndarray:
        t = self.t
        if t.peek() == "~t":
            m = self.macro_ref("t", "a transition matrix")
        else:
            t.expect("TRANSP")
            size = t.integer("<TRANSP> size")
            m = t.vector(size * size, "<TRANSP>").reshape(size, size)
        if m.shape != (n, n):
            raise t.err(f"transition matrix is {m.shape[0]}x{m.shape[1]} but the model has {n} states")
        return m

    def hmm(self, name: str) -> dict:
        t = self.t
        t.expect("BEGINHMM")
        opts = dict(self.opts)
        while t.peek_kw() != "NUMSTATES":
            if not self.option(opts):
                raise t.err(f"expected <NUMSTATES> or a global option in model {name!r}, found {t.peek()!r}")
        t.i += 1
        n = t.integer("<NUMSTATES>")
        if n < 3:
            raise t.err(f"<NUMSTATES> {n}: an HTK model has at least 3 states (entry, emitting, exit)", t.i - 1)
        states = {}
        while t.peek_kw() == "STATE":
            at = t.i
            t.i += 1
            j = t.integer("<STATE> number")
            if not 2 <= j <= n - 1 or j in states:
                raise t.err(f"<STATE> {j}: " + ("given twice" if j in states else f"emitting states are 2..{n - 1}"),
                            at)
            states[j] = self.stateinfo()
        missing = sorted(set(range(2, n)) - set(states))
        if missing:
            raise t.err(f"model {name!r}: emitting state(s) {missing} missing")
        if t.peek() == "~r" or t.peek_kw() == "REGTREE":
            raise t.err("regression trees are not supported")
        trans = self.transp(n)
        self.duration()
        t.expect("ENDHMM")
        return {"states": states, "transp": trans, "n_states": n, "opts": opts}

    def parse(self) -> None:
        t = self.t
        while t.peek() is not None:
            tok = t.peek()
            if tok == "~o":
                t.i += 1
                while t.peek() is not None and not t.peek().startswith("~") and t.peek_kw() != "BEGINHMM":
                    if not self.option(self.opts):
                        raise t.err(f"unknown global option {t.peek()!r}")
                continue
            if t.peek_kw() == "BEGINHMM":       # a single definition without ~h: named after the file
                self.add_model(self.path.stem, t.i)
                continue
            if not (tok.startswith("~") and len(tok) == 2):
                raise t.err(f"expected a macro (~o, ~h, ~s, ~m, ...) or <BEGINHMM>, found {tok!r}")
            typ = tok[1].lower()
            at = t.i
            t.i += 1
            name = t.string(f"~{typ} macro name")
            if typ == "h":
                self.add_model(name, at)
            elif typ in "smuvtdw" and (typ, name) in self.macros:
                raise t.err(f'~{typ} "{name}" is defined twice', at)
            elif typ == "s":
                self.macros[("s", name)] = self.stateinfo()
            elif typ == "m":
                self.macros[("m", name)] = self.mixpdf()
            elif typ in _VECTOR_MACROS:  # ~u <MEAN> n ..., ~v <VARIANCE> n ..., ~d <DURATION> ..., ~w <SWEIGHTS> ...
                key = _VECTOR_MACROS[typ]
                t.expect(key)
                self.macros[(typ, name)] = t.vector(t.integer(f"<{key}> size"), f"<{key}>")
            elif typ == "t":
                t.expect("TRANSP")
                size = t.integer("<TRANSP> size")
                self.macros[("t", name)] = t.vector(size * size, "<TRANSP>").reshape(size, size)
            elif typ in "icx":
                raise t.err(f'~{typ} "{name}": full or transformed covariances are not supported', at)
            else:
                raise t.err(f'~{typ} "{name}": macro type ~{typ} (transforms, regression trees, ...) is not '
                            f"supported", at)

    def add_model(self, name: str, at: int) -> None:
        if name in self.models:
            raise self.t.err(f'model "{name}" is defined twice', at)
        self.models[name] = self.hmm(name)


def read_mmf(path, name: str | None = None, *, state: int | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Read a diagonal GMM from a text HTK MMF (the mixture of one emitting state of one model).

    Reads what :func:`write_mmf` writes and what HTK's HHEd/HERest write in text form: ``~o`` global
    options, one or more ``~h`` models (``name`` picks one; without it the file must hold exactly one),
    shared ``~s ~m ~u ~v ~t ~d ~w`` macros (defined before use, as HTK requires), ``<NUMMIXES>`` absent
    meaning one Gaussian, ``<MIXTURE>`` weights (components HTK left out as defunct are simply absent),
    optional ``<GCONST>`` and ``<RCLASS>``, keywords in any case.  Full or transformed covariances
    (``<INVCOVAR>``, ``<FULLC>``, ...), several streams, tied mixtures, regression trees, transforms and
    binary MMFs are refused with a clear error.

    Each ``<GCONST>`` is checked against ``D log(2 pi) + sum(log var)``: a difference above 1e-3 relative
    (of ``max(1, |gconst|)``) gives a :class:`GconstWarning`, not an error, and the variances are used
    (HTK would use the stale GCONST; the variances are the model).

    Parameters
    ----------
    path : str or Path
    name : str, optional
        The ``~h`` model to read.
    state : int, optional
        The emitting state (2..N-1) to read; needed only if the model has more than one.

    Returns
    -------
    weights : ndarray, float64, (K,)
    means : ndarray, float64, (K, D)
    variances : ndarray, float64, (K, D)
    info : dict
        ``name``, ``names`` (all models in the file), ``kind`` (parameter kind or None), ``vecsize``,
        ``n_states``, ``state``, ``transp`` ((N, N) ndarray), ``gconst`` ((K,) ndarray, NaN where absent),
        ``mixture_ids`` (the ``<MIXTURE>`` numbers read), ``nummixes`` (``<NUMMIXES>`` or None).

    Raises
    ------
    ModelFileError
        (an :class:`~acoustic_gmm.errors.ArchiveError`) Missing or unreadable file, a syntax error (with
        its line), an unsupported construct, inconsistent sizes, weights not summing to 1 (within 1e-3),
        non-positive variances, a name not in the file (the message lists the names).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "one.mmf")
    >>> _ = open(p, "w").write('~h "sil" <BeginHMM> <NumStates> 3 <State> 2 <Mean> 2 0 1 <Variance> 2 1 4 '
    ...                        '<TransP> 3 0 1 0 0 .6 .4 0 0 0 <EndHMM>')
    >>> w, m, v, info = read_mmf(p)
    >>> w.tolist(), m.tolist(), v.tolist(), info["name"]
    ([1.0], [[0.0, 1.0]], [[1.0, 4.0]], 'sil')
    """
    path = Path(path)
    raw = read_bytes(path, ModelFileError, "MMF file")
    if re.search(rb"[\x00-\x08\x0e-\x1f]", raw):
        raise ModelFileError(f"{path}: holds binary data (an HTK binary MMF, saved with -B?); only text MMFs "
                             f"are read: convert with HHEd without -B")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    p = _MMF(path, text)
    p.parse()
    names = list(p.models)
    if not names:
        raise ModelFileError(f"{path}: no model (~h ... <BEGINHMM>) in the file")
    if name is None:
        if len(names) > 1:
            raise ModelFileError(f"{path}: holds {len(names)} models ({', '.join(names)}); pass name= to pick one")
        name = names[0]
    elif name not in p.models:
        raise ModelFileError(f"{path}: no model named {name!r}; the file holds {', '.join(names)}")
    hmm = p.models[name]
    n = hmm["n_states"]
    if state is None:
        if n != 3:
            raise ModelFileError(f"{path}: model {name!r} has {n - 2} emitting states (2..{n - 1}); pass state= "
                                 f"to pick the one holding the GMM")
        state = 2
    if state not in hmm["states"]:
        raise ModelFileError(f"{path}: model {name!r} has no emitting state {state} (its states are 2..{n - 1})")
    mixes = hmm["states"][state]["mixes"]
    ids = list(mixes)
    w = np.array([mixes[k][0] for k in ids], dtype=np.float64)
    dims = {len(mixes[k][1]["mean"]) for k in ids}
    vecsize = hmm["opts"].get("vecsize")
    if len(dims) != 1 or (vecsize is not None and dims != {vecsize}):
        raise ModelFileError(f"{path}: model {name!r} state {state}: mean sizes {sorted(dims)} "
                             f"disagree{'' if vecsize is None else f' with <VECSIZE> {vecsize}'}")
    means = np.array([mixes[k][1]["mean"] for k in ids], dtype=np.float64)
    variances = np.array([mixes[k][1]["var"] for k in ids], dtype=np.float64)
    if (variances <= 0).any():
        k = ids[int(np.flatnonzero((variances <= 0).any(axis=1))[0])]
        raise ModelFileError(f"{path}: model {name!r} state {state} mixture {k}: non-positive variance")
    if abs(w.sum() - 1.0) > 1e-3:
        raise ModelFileError(f"{path}: model {name!r} state {state}: mixture weights sum to {float(w.sum())!r}, not 1")
    D = means.shape[1]
    expected = D * LOG_2PI + np.log(variances).sum(axis=1)
    gconst = np.array([np.nan if mixes[k][1]["gconst"] is None else mixes[k][1]["gconst"] for k in ids])
    off = np.abs(gconst - expected) > 1e-3 * np.maximum(1.0, np.abs(expected))
    if off.any():
        j = int(np.flatnonzero(off)[0])
        warnings.warn(f"{path}: model {name!r} state {state}: <GCONST> of {int(off.sum())} mixture(s) disagrees "
                      f"with the variances (mixture {ids[j]}: file {float(gconst[j])!r}, D log 2pi + sum log var = "
                      f"{float(expected[j])!r}); the variances are used", GconstWarning, stacklevel=2)
    info = {"name": name, "names": names, "kind": hmm["opts"].get("kind"), "vecsize": vecsize if vecsize else D,
            "n_states": n, "state": state, "transp": hmm["transp"], "gconst": gconst, "mixture_ids": ids,
            "nummixes": hmm["states"][state]["nummixes"]}
    return w, means, variances, info
