"""A fast line-oriented N-Triples parser that gives the same triples as rdflib's.

Two tiers, one regular expression per line each. The fast tier takes the
common shape (single spaces, `` .`` at the end, no escapes) with cheap regex
operations and checks each distinct IRI once against rdflib's IRI pattern; any
other line goes to the exact tier, a transcription of rdflib's token patterns
that also decodes escapes and explains malformed lines. The grammar is
rdflib's (7.x, ``rdflib.plugins.parsers.ntriples``) rather than the W3C one, so
both engines accept and reject the same lines (rdflib is more lenient in places,
e.g. ``<a b:c>`` is an IRI, and stricter in others):

* IRIs are ``<scheme:rest>`` (a colon is required; no white space, ``"``, ``<``
  or ``>`` after it). ``\\uXXXX``/``\\UXXXXXXXX`` and the string escapes
  (``\\t \\b \\n \\r \\f \\" \\' \\\\``) are decoded in IRIs and literals alike;
  any other backslash sequence is kept as written.
* Terms are separated by at least one space or tab (``<a> <b> <c>.`` is fine,
  ``<a><b><c> .`` is not); a ``# comment`` may follow the final ``.``; other
  white space (form feed, no-break space) is an error.
* Language tags keep their case (``"x"@en-GB`` has lang ``"en-GB"``).
* Literal lexical forms are kept as written, as rdflib does with
  ``rdflib.NORMALIZE_LITERALS = False`` (its default, True, rewrites e.g.
  ``"01"^^xsd:integer`` to ``"1"`` and ``"+5"^^xsd:decimal`` to ``"5"``). Like
  rdflib in either mode, ``xsd:normalizedString`` values get tab/CR/LF replaced
  by spaces and ``xsd:token`` values are also stripped with runs of spaces
  collapsed.
* A bare carriage return ends a line (N-Triples allows CR, LF and CRLF); a
  byte order mark at the start of the file is dropped (rdflib would reject the line).
* Blank node labels are kept as written (``_:b1`` -> ``"_:b1"``); rdflib itself
  would give each label a fresh document-specific id.

Terms: an IRI is a ``str``, a blank node a ``str`` starting with ``"_:"``, a
literal a :class:`Literal`. :func:`iter_fast_ntriples` streams terms;
:func:`iter_fast_records` is the same parser fused with the record mapping of
:mod:`kept.kg.sources.rdf` (what ``read_ntriples`` uses).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from kept.kg.sources.inputs import InputFile

if TYPE_CHECKING:
    from kept.kg.sources import ReadContext


class Literal(NamedTuple):
    """An RDF literal. value: lexical form; lang: language tag as written (or None);
    datatype: datatype IRI (None for plain and language-tagged literals)."""

    value: str
    lang: str | None = None
    datatype: str | None = None


Term = str | Literal
TermTriple = tuple[str, str, Term]

XSD = "http://www.w3.org/2001/XMLSchema#"
_XSD_NORMALIZED_STRING = XSD + "normalizedString"
_XSD_TOKEN = XSD + "token"

# Token patterns, copied from rdflib's N-Triples parser (carriage returns excluded,
# so a line holding a bare CR never matches and is split on the slow path).
_IRI = r'<([^:\r\x00]+:[^\s"<>\x00]*)>'
_BNODE = r"_:([A-Za-z0-9_:](?:[-A-Za-z0-9_:.]*[-A-Za-z0-9_:])?)"
_LIT = r'"([^"\\\r]*(?:\\[^\r][^"\\\r]*)*)"(?:@([a-zA-Z]+(?:-[a-zA-Z0-9]+)*)|\^\^' + _IRI + ")?"
_TRIPLE = re.compile(
    rf"[ \t]*(?:{_IRI}|{_BNODE})[ \t]+{_IRI}[ \t]+(?:{_IRI}|{_BNODE}|{_LIT})[ \t]*\.[ \t]*(?:#[^\r]*)?"
)
_SKIP = re.compile(r"[ \t]*(?:#.*)?")
_ESCAPE = re.compile(r"""\\(?:([tbnrf"'\\])|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8}))""")
_ESCAPES = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_new_literal = tuple.__new__


def _unescape_match(m: re.Match[str]) -> str:
    char, u4, u8 = m.groups()
    if char is not None:
        return _ESCAPES[char]
    code = int(u4 or u8, 16)
    if code > 0x10FFFF:
        raise ValueError(f"escape \\U{u8} is beyond U+10FFFF")
    return chr(code)


def unescape(s: str) -> str:
    """Decode N-Triples escapes in ``s`` (an IRI or a literal's lexical form) as rdflib does.

    Unknown backslash sequences are left unchanged; raises ValueError for a
    code point beyond U+10FFFF.
    """
    return _ESCAPE.sub(_unescape_match, s) if "\\" in s else s


def _whitespace_facet(value: str, datatype: str) -> str:
    """rdflib's (always applied) whitespace normalisation of xsd:normalizedString/xsd:token."""
    value = value.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    if datatype == _XSD_TOKEN:
        value = re.sub(" +", " ", value.strip())
    return value


def _from_groups(groups: tuple[str | None, ...], escaped: bool) -> TermTriple:
    """Build a triple from the groups of a ``_TRIPLE`` match (``escaped``: the line has a backslash)."""
    s, s_bnode, p, o, o_bnode, lit, lang, dt = groups
    if escaped:
        s = unescape(s) if s is not None else None
        p = unescape(p)  # type: ignore[arg-type]
        o = unescape(o) if o is not None else None
        lit = unescape(lit) if lit is not None else None
        dt = unescape(dt) if dt is not None else None
        bad = next((i for i in (s, p, o, dt) if i is not None and IRI_RULE.fullmatch(i) is None), None)
        if bad is not None:
            raise ValueError(iri_problem(bad))
    obj: Term
    if o is not None:
        obj = o
    elif o_bnode is not None:
        obj = "_:" + o_bnode
    else:
        if dt is not None and (dt == _XSD_TOKEN or dt == _XSD_NORMALIZED_STRING):
            lit = _whitespace_facet(lit, dt)  # type: ignore[arg-type]
        obj = _new_literal(Literal, (lit, lang, dt))
    return (s if s is not None else "_:" + s_bnode, p, obj)  # type: ignore[return-value,operator]


def _explain(line: str) -> str:
    """Why ``line`` is not a triple, following rdflib's token order (only called on errors)."""
    iri, bnode, lit = re.compile(_IRI), re.compile(_BNODE), re.compile(_LIT)
    rest = line.lstrip(" \t")
    for what, patterns, expected in (
        ("subject", (iri, bnode), "an IRI <...> or a blank node _:x"),
        ("predicate", (iri,), "an IRI <...>"),
        ("object", (iri, bnode, lit), 'an IRI <...>, a blank node _:x or a literal "..."'),
    ):
        m = next((m for pat in patterns if (m := pat.match(rest))), None)
        if m is None:
            return f"malformed triple: the {what} should be {expected}, found {rest[:40]!r}"
        rest = rest[m.end() :]
        if what != "object":
            if rest[:1] not in (" ", "\t"):
                return f"malformed triple: expected a space or tab after the {what}, found {rest[:40]!r}"
            rest = rest.lstrip(" \t")
    tail = rest.lstrip(" \t")
    if not tail.startswith("."):
        return f"malformed triple: expected ' .' after the object, found {tail[:40]!r}"
    return f"malformed triple: unexpected text after the final '.': {tail[1:41]!r}"


def parse_ntriples_line(line: str) -> TermTriple | None:
    """Parse one N-Triples line (without its line ending).

    Returns ``(subject, predicate, object)`` in the term representation of this
    module, or None for a blank or comment line. Raises ValueError, with a message
    saying what is wrong, for a malformed line (a line holding a bare carriage
    return counts as two lines in N-Triples; split it first).
    """
    m = _TRIPLE.fullmatch(line)
    if m is not None:
        return _from_groups(m.groups(), "\\" in line)
    if "\r" in line:
        raise ValueError("line holds a bare carriage return (a line break in N-Triples); split it first")
    if _SKIP.fullmatch(line):
        return None
    raise ValueError(_explain(line))


def ntriples_lines(f: InputFile, ctx: ReadContext) -> Iterator[str]:
    """The text lines of an N-Triples file (strict UTF-8, a leading byte order mark dropped)."""
    lines = f.text_lines(ctx.bad)
    for line in lines:
        yield line.removeprefix("\ufeff")
        break
    yield from lines


# The fast tier: the common line shape (IRIs or a literal, single spaces, " ." at the
# end, no escapes), matched with cheap regex operations. Its IRIs are then checked
# against rdflib's IRI pattern once per distinct IRI (a cache of valid IRIs); a line
# that fails any check goes to the exact pattern above, so the result is the same.
_FAST = re.compile(
    r'<([^>]*)> <([^>]*)> (?:<([^>]*)>|"([^"\\\r]*)"(?:@([a-zA-Z]+(?:-[a-zA-Z0-9]+)*)|\^\^<([^>]*)>)?) \.\r?\n?'
)
# rdflib's IRI pattern without escapes; \s spelled out (the characters str.isspace()
# accepts, which is what \s matches), which sre checks faster than the category
_WHITESPACE = "\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_VALID_IRI = re.compile(f'[^:\\r\\\\\\x00]+:[^{_WHITESPACE}"<>\\\\\\x00]*')
#: the IRI rule of every RDF input (N-Triples, Turtle, RDF/XML), escapes decoded: a scheme, then no
#: white space, '"', '<', '>' or NUL
IRI_RULE = re.compile(f'[^:\\r\\x00]+:[^{_WHITESPACE}"<>\\x00]*')
_IRI_CACHE_LIMIT = 1 << 18
_BATCH = 256  # records per list yielded by iter_fast_records (larger lists cost GC promotions)


def iri_problem(iri: str) -> str:
    """The message for an IRI that breaks :data:`IRI_RULE`."""
    return (f"invalid IRI {iri!r}: an IRI is scheme:rest with no white space, '\"', '<', '>' or NUL "
            "(escapes decoded)")


def invalid_iri(triple: TermTriple) -> str | None:
    """The first IRI of a triple (blank nodes and literals aside, a datatype included) that breaks
    :data:`IRI_RULE`, or None: the one IRI rule of N-Triples (both engines), Turtle and RDF/XML."""
    s, p, o = triple
    for term in (s, p, o.datatype if isinstance(o, Literal) else o):
        if isinstance(term, str) and not term.startswith("_:") and IRI_RULE.fullmatch(term) is None:
            return term
    return None


def _admit(iri: str, ok: dict[str, str]) -> str | None:
    """Check an IRI taken by the fast tier against rdflib's pattern; remember it when valid."""
    if _VALID_IRI.fullmatch(iri) is None:
        return None
    if len(ok) > _IRI_CACHE_LIMIT:
        ok.clear()
    ok[iri] = iri
    return iri


def _slow_line(line: str, path: Path, f: InputFile, ctx: ReadContext) -> list[TermTriple]:
    """Parse a line the fast tier did not take (malformed lines go to ``ctx.bad``)."""
    triples = []
    line = line.rstrip("\r\n")
    if f.lineno == 1:
        line = line.removeprefix("\ufeff")  # a byte order mark
    for part in line.split("\r"):  # a bare CR ends a line, as in rdflib
        try:
            triple = parse_ntriples_line(part)
        except ValueError as exc:
            ctx.bad.report(path, f.lineno, str(exc))
            continue
        if triple is not None:
            triples.append(triple)
    return triples


def iter_fast_ntriples(path: Path, ctx: ReadContext) -> Iterator[TermTriple]:
    """Stream the triples of an N-Triples file with the fast parser.

    path: the file (plain or .gz/.bz2/.xz), opened through ``ctx.open``.
    ctx: read context; malformed lines go to ``ctx.bad`` with their line number.
    """
    fast = _FAST.fullmatch
    # IRIs already checked against rdflib's pattern; yielding the stored copy
    # shares one string object (and its cached hash) among the lines naming it.
    ok: dict[str, str] = {}
    known = ok.get
    new, literal, admit, slow = _new_literal, Literal, _admit, _slow_line
    last_s = None
    with ctx.open(path) as f:
        for raw in f.lines():  # f.text_lines() inlined: this loop is the hot path
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                ctx.bad.report(path, f.lineno, f"invalid UTF-8 at byte {exc.start} of the line")
                continue
            m = fast(line)  # a trailing CR (CRLF files) is part of the fast pattern
            if m is None:
                yield from slow(line, path, f, ctx)
                continue
            s, p, o, lit, lang, dt = m.groups()
            if s == last_s:
                s = last_s
            elif (s := known(s) or admit(s, ok)) is None:
                yield from slow(line, path, f, ctx)
                continue
            last_s = s
            if (p := known(p) or admit(p, ok)) is None:
                yield from slow(line, path, f, ctx)
                continue
            if o is not None:
                if (o := known(o) or admit(o, ok)) is None:
                    yield from slow(line, path, f, ctx)
                    continue
                yield (s, p, o)
            elif dt is None:
                yield (s, p, new(literal, (lit, lang, None)))
            else:
                if (dt := known(dt) or admit(dt, ok)) is None:
                    yield from slow(line, path, f, ctx)
                    continue
                if dt == _XSD_TOKEN or dt == _XSD_NORMALIZED_STRING:
                    lit = _whitespace_facet(lit, dt)
                yield (s, p, new(literal, (lit, None, dt)))
