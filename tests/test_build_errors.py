"""Bad input and interruptions: clear errors, and never a partial store at the output path."""

import bz2
import gzip
import sys
import types

import pytest
from conftest import need_data

from kept.cli import main
from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store
from kept.kg.sources import FORMATS
from kept.kg.sources.errors import SourceError
from kept.kg.sources.records import Entity, Triple

QUIET = BuildOptions(progress=False)


def _leftovers(parent):
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def _spo(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_malformed_line_names_file_and_line(tmp_path):
    src = _spo(tmp_path / "kg.spo", ["a\tr\tb", "b\tr\tc", "broken line", "c\tr\td"])
    with pytest.raises(SourceError) as err:
        build_store([(src, None)], tmp_path / "out", QUIET)
    assert err.value.line == 3 and str(src) in str(err.value) and ":3:" in str(err.value)
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_max_bad_lines_skips_and_counts(tmp_path):
    src = _spo(tmp_path / "kg.spo", ["a\tr\tb", "broken", "c\tr\td", "also broken"])
    report = build_store([(src, None)], tmp_path / "out", BuildOptions(progress=False, max_bad_lines=2))
    assert report.meta["counts"]["bad_lines_skipped"] == 2
    assert len(report.bad_line_examples) == 2 and ":2:" in report.bad_line_examples[0]
    assert open_store(tmp_path / "out").num_triples == 2
    with pytest.raises(SourceError, match="more than --max-bad-lines=1"):
        build_store([(src, None)], tmp_path / "out1", BuildOptions(progress=False, max_bad_lines=1))


def test_existing_store_is_untouched(tmp_path, medical_store):
    src = _spo(tmp_path / "kg.spo", ["a\tr\tb"])
    out = tmp_path / "store"
    build_store([(src, None)], out, QUIET)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(FileExistsError, match="--overwrite"):
        build_store([(need_data("kg", "Medical.spo"), None)], out, QUIET)
    # a failing overwrite keeps the old store too
    bad = _spo(tmp_path / "bad.spo", ["x\ty"])
    with pytest.raises(SourceError):
        build_store([(bad, None)], out, BuildOptions(progress=False, overwrite=True))
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not _leftovers(tmp_path)
    # a successful overwrite replaces it
    build_store([(need_data("kg", "Medical.spo"), None)], out, BuildOptions(progress=False, overwrite=True))
    assert open_store(out).num_triples == medical_store.num_triples
    assert not _leftovers(tmp_path)


def _gz(path, data):
    path.write_bytes(gzip.compress(data))
    return path


@pytest.mark.parametrize("case", ["truncated-gz", "corrupt-gz", "truncated-bz2", "bad-utf8", "empty", "empty-gz"])
def test_damaged_inputs_are_clear_errors(tmp_path, case):
    body = "".join(f"e{i}\trel\te{i + 1}\n" for i in range(20000)).encode()
    if case == "truncated-gz":
        src = tmp_path / "kg.spo.gz"
        src.write_bytes(gzip.compress(body)[: len(gzip.compress(body)) // 2])
        match = "truncated or corrupt gzip"
    elif case == "corrupt-gz":
        data = bytearray(gzip.compress(body))
        data[-8:-4] = b"\x00\x00\x00\x00"  # CRC32 of the trailer: deflate itself has no checksum
        src = tmp_path / "kg.spo.gz"
        src.write_bytes(bytes(data))
        match = "truncated or corrupt gzip"
    elif case == "truncated-bz2":
        src = tmp_path / "kg.spo.bz2"
        src.write_bytes(bz2.compress(body)[:-100])
        match = "truncated or corrupt bzip2"
    elif case == "bad-utf8":
        src = tmp_path / "kg.spo"
        src.write_bytes(b"a\tr\tb\nc\tr\t\xff\xfe\n")
        match = ":2: invalid UTF-8"
    elif case == "empty":
        src = tmp_path / "kg.spo"
        src.write_bytes(b"")
        match = "empty input"
    else:
        src = _gz(tmp_path / "kg.spo.gz", b"")
        match = "empty input"
    with pytest.raises(SourceError, match=match) as err:
        build_store([(src, None)], tmp_path / "out", QUIET)
    assert str(src) in str(err.value)
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_unknown_format_and_missing_file(tmp_path):
    odd = tmp_path / "data.weird"
    odd.write_text("x")
    with pytest.raises(SourceError, match="cannot guess the format"):
        build_store([(odd, None)], tmp_path / "out", QUIET)
    with pytest.raises(SourceError, match="no such file"):
        build_store([(tmp_path / "missing.spo", None)], tmp_path / "out", QUIET)
    with pytest.raises(SystemExit):  # argparse rejects an unknown --format
        main(["kg", "build", str(odd), "--format", "nope", "--out", str(tmp_path / "o")])


@pytest.fixture
def interrupting_format(monkeypatch):
    """A format whose reader yields records, then gets Ctrl-C halfway."""
    mod = types.ModuleType("kept_test_interrupt")

    def read_interrupt(path, ctx):
        with ctx.open(path) as f:
            for i, _ in enumerate(f.lines()):
                yield Entity(f"e{i}", label=f"entity {i}")
                yield Triple(f"e{i}", "r", f"e{i + 1}")
                if i == 500:
                    raise KeyboardInterrupt

    mod.read_interrupt = read_interrupt
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(FORMATS, "interrupt", f"{mod.__name__}:read_interrupt")
    return "interrupt"


def test_ctrl_c_leaves_no_half_written_store(tmp_path, interrupting_format, capsys):
    src = _spo(tmp_path / "in.txt", [f"line {i}" for i in range(1000)])
    with pytest.raises(KeyboardInterrupt):
        build_store([(src, interrupting_format)], tmp_path / "out", BuildOptions(progress=False, chunk_triples=100))
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)
    assert main(["kg", "build", str(src), "--format", interrupting_format, "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_cli_reports_bad_input_with_exit_2(tmp_path, capsys):
    src = _spo(tmp_path / "kg.spo", ["a\tr\tb", "oops"])
    assert main(["kg", "build", str(src), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{src}:2:" in err and "kept: error" in err
