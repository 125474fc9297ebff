"""No build destroys user data: what --overwrite may replace, concurrent builds, stale temp
folders, read-only output folders, exported file modes.

Every refusal is checked the same way: exit status 2, a ``kept: error: <path>: ...`` line naming
the path, no traceback, nothing left behind, and what was there byte-identical.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from test_linker import _write_toy

from kept.cli import main
from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store

VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (itself included) -> its bytes (None for folders)."""
    if root.is_file():
        return {".": root.read_bytes()}
    out: dict[str, bytes | None] = {".": None} if root.exists() else {}
    for path in sorted(root.rglob("*")):
        out[str(path.relative_to(root))] = None if path.is_dir() else path.read_bytes()
    return out


def run(argv: list[str], capsys) -> tuple[int, str]:
    rc = main(argv)
    return rc, capsys.readouterr().err


def assert_refused(rc: int, err: str, path: Path, problem: str) -> None:
    assert rc == 2, err
    assert err.startswith(f"kept: error: {path}"), err
    assert problem in err and "Traceback" not in err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


@pytest.fixture
def toy_input(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    return _write_toy(tmp_path / "in" / "toy.nt")


def kg_build(source: Path, out: Path, *extra: str) -> list[str]:
    return ["kg", "build", str(source), "--out", str(out), "--no-progress", *extra]


# ---- read-only folders: permissions hold even for root (CAP_DAC_OVERRIDE dropped meanwhile) ----
_CAPS = (1, 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


@contextlib.contextmanager
def _without_dac_override():
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _Header(0x20080522, 0), (_Data * 2)()
    assert libc.capget(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())
    saved = [_Data(d.effective, d.permitted, d.inheritable) for d in data]
    for cap in _CAPS:
        data[0].effective &= ~(1 << cap)
    assert libc.capset(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())
    try:
        yield
    finally:
        restore = (_Data * 2)(*saved)
        assert libc.capset(ctypes.byref(_Header(0x20080522, 0)), restore) == 0


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` mode 0555 and, for root, this thread without the capability that ignores it."""
    mode = folder.stat().st_mode
    folder.chmod(0o555)
    try:
        with _without_dac_override():
            with pytest.raises(PermissionError):  # the folder really is read-only now
                (folder / "probe").write_bytes(b"")
            yield
    finally:
        folder.chmod(mode)


# ---- kept kg build --overwrite --------------------------------------------------------------------
def test_overwrite_refuses_a_folder_that_is_not_a_store(toy_input, tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.tex").write_text("years of work")
    (out / "sub" / "meta.json").write_text("{}")
    before = snapshot(out)
    rc, err = run(kg_build(toy_input, out, "--overwrite"), capsys)
    assert_refused(rc, err, out, "is not a kept store")
    assert snapshot(out) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("meta", [None, b"garbage", b"[1, 2]", b'{"format_version": 1}', b"\xff\xfe"])
def test_overwrite_refuses_a_folder_without_a_valid_meta(toy_input, tmp_path, capsys, meta):
    out = tmp_path / "almost"
    out.mkdir()
    (out / "data.bin").write_bytes(b"\x00" * 100)
    if meta is not None:
        (out / "meta.json").write_bytes(meta)
    before = snapshot(out)
    rc, err = run(kg_build(toy_input, out, "--overwrite"), capsys)
    assert_refused(rc, err, out, "is not a kept store")
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_overwrite_refuses_a_file(toy_input, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    rc, err = run(kg_build(toy_input, out, "--overwrite"), capsys)
    assert_refused(rc, err, out, "is not a kept store")
    assert out.read_text() == "keep me" and leftovers(tmp_path) == []


@pytest.mark.parametrize("which", ["the input folder", "a parent of the input"])
def test_overwrite_refuses_a_path_holding_the_input(toy_input, tmp_path, capsys, which):
    source = toy_input.parent if which == "the input folder" else toy_input
    out = toy_input.parent if which == "the input folder" else tmp_path
    before = snapshot(toy_input.parent)
    rc, err = run(kg_build(source, out, "--overwrite"), capsys)
    assert_refused(rc, err, out, "is or contains the input")
    assert snapshot(toy_input.parent) == before and leftovers(out.parent) == []


def test_overwrite_refuses_a_store_holding_the_input(toy_input, tmp_path, capsys):
    out = tmp_path / "store"
    build_store([(toy_input, None)], out, BuildOptions(progress=False))
    source = out / "toy.nt"
    source.write_bytes(toy_input.read_bytes())
    before = snapshot(out)
    rc, err = run(kg_build(source, out, "--overwrite"), capsys)
    assert_refused(rc, err, out, "is or contains the input")
    assert snapshot(out) == before


def test_overwrite_replaces_a_store(toy_input, tmp_path, capsys):
    out = tmp_path / "store"
    build_store([(toy_input, None)], out, BuildOptions(progress=False))
    rc, err = run(kg_build(toy_input, out), capsys)
    assert_refused(rc, err, out, "already exists")
    assert run(kg_build(toy_input, out, "--overwrite"), capsys)[0] == 0
    assert open_store(out).num_entities > 0 and leftovers(tmp_path) == []


# ---- concurrent builds ----------------------------------------------------------------------------
def test_concurrent_builds_the_second_fails(toy_input, tmp_path, capsys, monkeypatch):
    """Build B finishes while build A is writing: A's final rename must not replace B's store."""
    from kept.kg import build as build_module

    out = tmp_path / "store"
    real = build_module.store_writer.write_store
    state = {}

    def write_then_race(root, ingest, options):
        counts = real(root, ingest, options)
        if not state:  # build A, just before its rename: build B runs to the end
            state["b"] = True  # another process (its own .store.tmp-PID)
            subprocess.run([sys.executable, "-m", "kept.cli", *kg_build(toy_input, out)], check=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
            state["snapshot"] = snapshot(out)
        return counts

    monkeypatch.setattr(build_module.store_writer, "write_store", write_then_race)
    rc, err = run(kg_build(toy_input, out), capsys)
    assert_refused(rc, err, out, "already exists")
    assert snapshot(out) == state["snapshot"] and leftovers(tmp_path) == []


def test_two_processes_race_one_wins(toy_input, tmp_path):
    out = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "kept.cli", *kg_build(toy_input, out)]
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    assert "already exists" in next(err for rc, err in results if rc == 2)
    assert open_store(out).num_entities > 0 and leftovers(tmp_path) == []


# ---- stale temp folders -----------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_folders_are_removed(toy_input, tmp_path, capsys):
    out = tmp_path / "store"
    dead = _dead_pid()
    stale = [tmp_path / f".store.tmp-{dead}", tmp_path / f".store.old-{dead}"]
    kept_ones = [tmp_path / f".store.tmp-{os.getppid()}",   # a live process: still building
                 tmp_path / f".store.tmp-{dead}x",          # not kept's naming
                 tmp_path / f".other.tmp-{dead}",           # another output's
                 tmp_path / f"store.tmp-{dead}"]            # not hidden: the user's
    for folder in stale + kept_ones:
        (folder / "_work").mkdir(parents=True)
        (folder / "_work" / "rows.bin").write_bytes(b"\x00" * (1 << 16))
    assert run(kg_build(toy_input, out), capsys)[0] == 0
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept_ones)


# ---- read-only output folders ---------------------------------------------------------------------
def test_kg_build_into_a_read_only_folder(toy_input, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        rc, err = run(kg_build(toy_input, folder / "store"), capsys)
        rc2, err2 = run(kg_build(toy_input, folder / "deeper" / "store"), capsys)
    assert_refused(rc, err, folder, "Permission denied")
    assert_refused(rc2, err2, folder / "deeper", "Permission denied")
    assert list(folder.iterdir()) == []


def test_kg_build_overwrite_in_a_read_only_folder(toy_input, tmp_path, capsys):
    folder = tmp_path / "ro"
    build_store([(toy_input, None)], folder / "store", BuildOptions(progress=False))
    before = snapshot(folder)
    with read_only(folder):
        rc, err = run(kg_build(toy_input, folder / "store", "--overwrite"), capsys)
    assert_refused(rc, err, folder, "Permission denied")
    assert snapshot(folder) == before


# ---- kept data build --out ------------------------------------------------------------------------
@pytest.fixture
def texts(tmp_path) -> Path:
    path = tmp_path / "texts" / "t.txt"
    path.parent.mkdir()
    path.write_text("Paris met Helen.\nPriam is the king of Troy.\n")
    return path


def data_build(source: Path, out: Path, *extra: str) -> list[str]:
    return ["data", "build", str(source), "--out", str(out), "--vocab", str(VOCAB), "--phrases", "none",
            "--workers", "0", *extra]


@pytest.mark.parametrize("overwrite", [False, True])
def test_data_build_never_empties_a_folder(texts, tmp_path, capsys, overwrite):
    out = tmp_path / "results"
    out.mkdir()
    (out / "table.csv").write_text("a,b\n1,2\n")
    before = snapshot(out)
    rc, err = run(data_build(texts, out, *(["--overwrite"] if overwrite else [])), capsys)
    assert_refused(rc, err, out, "is not a linked corpus" if overwrite else "already exists")
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_data_build_replaces_a_corpus_only_with_overwrite(texts, tmp_path, capsys):
    out = tmp_path / "corpus"
    assert run(data_build(texts, out), capsys)[0] == 0
    assert run(data_build(texts, out), capsys)[0] == 0  # up to date: reused
    texts.write_text("Troy fell.\n")
    before = snapshot(out)
    rc, err = run(data_build(texts, out), capsys)
    assert_refused(rc, err, out, "already exists")
    assert snapshot(out) == before
    assert run(data_build(texts, out, "--overwrite"), capsys)[0] == 0
    assert json.loads((out / "meta.json").read_text())["examples"] == 1 and leftovers(tmp_path) == []


def test_data_build_refuses_the_input_folder(texts, capsys):
    before = snapshot(texts.parent)
    rc, err = run(data_build(texts, texts.parent, "--overwrite"), capsys)
    assert_refused(rc, err, texts.parent, "is or contains the input")
    assert snapshot(texts.parent) == before


def test_data_build_into_a_read_only_folder(texts, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        rc, err = run(data_build(texts, folder / "corpus"), capsys)
    assert_refused(rc, err, folder, "Permission denied")
    assert list(folder.iterdir()) == []


# ---- kept link --out ------------------------------------------------------------------------------
@pytest.fixture
def toy_store_dir(toy_input, tmp_path) -> Path:
    build_store([(toy_input, None)], tmp_path / "store", BuildOptions(progress=False))
    return tmp_path / "store"


def test_link_out_into_a_read_only_folder(toy_store_dir, texts, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        rc, err = run(["link", "--store", str(toy_store_dir), "--input", str(texts), "--out", str(folder / "l.jsonl"),
                       "--no-progress"], capsys)
    assert_refused(rc, err, folder, "Permission denied")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("which", ["the input", "a folder"])
def test_link_out_refuses_the_input_and_folders(toy_store_dir, texts, capsys, which):
    out = texts if which == "the input" else texts.parent
    before = snapshot(texts.parent)
    rc, err = run(["link", "--store", str(toy_store_dir), "--input", str(texts), "--out", str(out), "--no-progress"], capsys)
    assert_refused(rc, err, out, "is the input" if which == "the input" else "is a directory")
    assert snapshot(texts.parent) == before


# ---- exported weights ---------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_exported_weights_get_the_umask_mode(tmp_path, mask):
    from kept.train.data import load_tokenizer
    from kept.train.mlm import MaskedLMModule

    tok = load_tokenizer(VOCAB)
    module = MaskedLMModule(vocab_size=len(tok), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    saved = os.umask(mask)
    try:
        out = module.export_hf(tmp_path / "hf", tok)
    finally:
        os.umask(saved)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()}
    assert modes["model.safetensors"] == 0o666 & ~mask
    assert set(modes.values()) == {0o666 & ~mask}, modes
