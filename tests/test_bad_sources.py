"""Bad source files: BOM, NUL bytes, one IRI rule for every RDF input, DTD entities, truncated
compressed files: `kept kg build` says `kept: error: <file>:<line>: <problem>` (exit 2), and
writes nothing."""

from __future__ import annotations

import bz2
import gzip
import lzma

import pytest

from kept.cli import main
from kept.kg.store import open_store


def _build(tmp_path, src, *extra):
    out = tmp_path / "store"
    status = main(["kg", "build", str(src), "--out", str(out), "--no-progress", *extra])
    return status, out


def _error(capsys, status, out, where):
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith(f"kept: error: {where}"), err
    assert "Traceback" not in err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), "nothing may be left behind"
    return err


@pytest.mark.parametrize("name", ["kg.spo", "baike_triples.txt"])
def test_bom_is_not_part_of_the_first_key(tmp_path, capsys, name):
    src = tmp_path / name
    src.write_bytes("\ufeff眼睛发红\t症状\t结膜炎\n头痛\t症状\t感冒\n".encode())
    status, out = _build(tmp_path, src, "--format", "spo" if name.endswith(".spo") else "cndbpedia")
    assert status == 0, capsys.readouterr().err
    store = open_store(out)
    assert store.label(store.entity_id("眼睛发红")) == "眼睛发红"


@pytest.mark.parametrize("name, fmt", [("kg.spo", "spo"), ("baike_triples.txt", "cndbpedia")])
def test_nul_byte_in_a_key_is_an_error(tmp_path, capsys, name, fmt):
    src = tmp_path / name
    src.write_bytes(b"a\tr\tb\nc\x00d\tr\te\n")
    status, out = _build(tmp_path, src, "--format", fmt)
    err = _error(capsys, status, out, f"{src}:2: ")
    assert "NUL" in err
    status, out = _build(tmp_path, src, "--format", fmt, "--max-bad-lines", "1")
    assert status == 0
    assert open_store(out).meta["counts"]["bad_lines_skipped"] == 1


@pytest.mark.parametrize("line", [b"<http://x/a\x00b> <http://x/p> <http://x/c> .",
                                  b"<http://x/a> <http://x/p> <http://x/\\u0000c> ."])
@pytest.mark.parametrize("engine", ["fast", "rdflib"])
def test_nul_in_an_ntriples_iri_is_an_error(tmp_path, capsys, line, engine):
    src = tmp_path / "kg.nt"
    src.write_bytes(b"<http://x/a> <http://x/p> <http://x/b> .\n" + line + b"\n")
    status, out = _build(tmp_path, src, "--ntriples-engine", engine)
    _error(capsys, status, out, f"{src}:2: ")


SPACE_IRI = {
    "kg.nt": b"<http://x/a> <http://x/p> <http://x/b> .\n<http://x/a> <http://x/p> <http://x/b\\u0020c> .\n",
    "kg.ttl": b"<http://x/a> <http://x/p> <http://x/b> .\n<http://x/a> <http://x/p> <http://x/b c> .\n",
    "kg.rdf": b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:x="http://x/">
  <rdf:Description rdf:about="http://x/a"><x:p rdf:resource="http://x/b"/></rdf:Description>
  <rdf:Description rdf:about="http://x/a"><x:p rdf:resource="http://x/b c"/></rdf:Description>
</rdf:RDF>
""",
}


@pytest.mark.parametrize("name", list(SPACE_IRI))
def test_one_iri_rule_for_every_rdf_input(tmp_path, capsys, name):
    src = tmp_path / name
    src.write_bytes(SPACE_IRI[name])
    status, out = _build(tmp_path, src)
    err = _error(capsys, status, out, f"{src}:")
    assert "invalid IRI" in err and "b c" in err
    status, out = _build(tmp_path, src, "--max-bad-lines", "1")
    assert status == 0
    assert open_store(out).num_triples == 1


def test_billion_laughs_is_refused_at_once(tmp_path, capsys, monkeypatch):
    lol = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    src = tmp_path / "bomb.rdf"
    src.write_text(f'<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF [\n<!ENTITY lol0 "lol">\n{lol}]>\n'
                   '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:x="http://x/">'
                   '<rdf:Description rdf:about="http://x/a"><x:p>&lol9;</x:p></rdf:Description></rdf:RDF>\n')
    import rdflib

    def no_parse(*args, **kwargs):  # the file must be refused before any XML parser expands it
        raise AssertionError("rdflib parsed a file with DTD entity declarations")

    monkeypatch.setattr(rdflib.Graph, "parse", no_parse)
    status, out = _build(tmp_path, src)
    err = _error(capsys, status, out, f"{src}:3: ")
    assert "<!ENTITY" in err


def _lines(n):
    return "".join(f"x{i}\tr\ty{i}\n" for i in range(n)).encode()


def _truncated_gz(data):
    return gzip.compress(data)[:-40]


def _truncated_xz(data):
    return lzma.compress(data)[:-40]


def _truncated_bz2(data):
    # bzip2 decodes whole blocks: two streams, the second cut, so the first one's lines come out
    half = data.index(b"x100\t")
    return bz2.compress(data[:half]) + bz2.compress(data[half:])[:-40]


@pytest.mark.parametrize("suffix, damage", [(".gz", _truncated_gz), (".xz", _truncated_xz),
                                            (".bz2", _truncated_bz2)])
@pytest.mark.parametrize("helper", [True, False])
def test_truncated_compressed_file_reports_the_failing_line(tmp_path, capsys, monkeypatch, suffix, damage, helper):
    if not helper:
        monkeypatch.setattr("kept.kg.sources.inputs.sys.executable", "")
    data = _lines(3000)
    src = tmp_path / f"kg.spo{suffix}"
    src.write_bytes(damage(data))
    status, out = _build(tmp_path, src)
    err = _error(capsys, status, out, f"{src}:")
    line = int(err.split(f"{src}:")[1].split(":")[0])
    assert line > 100, err  # after the good lines, not line 1
    assert "truncated or corrupt" in err
