"""Corrupt KG stores: every command that opens one says `kept: error: <path>: <problem>`, exit 2."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from kept.cli import main
from kept.kg.build import BuildOptions, build_store
from kept.kg.store import StoreError, open_store


@pytest.fixture(scope="module")
def good_store(tmp_path_factory):
    src = tmp_path_factory.mktemp("src") / "tiny.spo"
    rows = [f"e{i}\tr{i % 3}\te{(i * 7 + 1) % 40}" for i in range(60)]
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("stores") / "tiny"
    build_store([(src, None)], out, BuildOptions(progress=False))
    return out


def _npy(path, array):
    np.save(path, array, allow_pickle=True)


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _meta(store, update):
    meta = json.loads((store / "meta.json").read_text())
    update(meta)
    (store / "meta.json").write_text(json.dumps(meta))


def _sqlite_drop(store):
    db = sqlite3.connect(store / "names.sqlite")
    db.execute("DROP TABLE aliases")
    db.commit()
    db.close()


CORRUPTIONS = {
    # name: (file named in the message, corrupt(store))
    "triples truncated": ("triples.npy", lambda s: _truncate(s / "triples.npy")),
    "triples empty": ("triples.npy", lambda s: (s / "triples.npy").write_bytes(b"")),
    "triples 1-D": ("triples.npy", lambda s: _npy(s / "triples.npy", np.arange(10, dtype=np.int32))),
    "triples object": ("triples.npy", lambda s: _npy(s / "triples.npy", np.array([[1, "a", None]] * 3, dtype=object))),
    "triples float": ("triples.npy", lambda s: _npy(s / "triples.npy",
                                                    np.load(s / "triples.npy").astype(np.float32))),
    "triples garbage": ("triples.npy", lambda s: (s / "triples.npy").write_bytes(b"\x00garbage" * 50)),
    "triples missing": ("triples.npy", lambda s: (s / "triples.npy").unlink()),
    "head id out of range": ("triples.npy", lambda s: _set(s / "triples.npy", (0, 0), 10**6)),
    "relation id out of range": ("triples.npy", lambda s: _set(s / "triples.npy", (0, 1), 99)),
    "negative tail id": ("triples.npy", lambda s: _set(s / "triples.npy", (5, 2), -3)),
    "out_indptr wrong length": ("out_indptr.npy", lambda s: _npy(s / "out_indptr.npy",
                                                                 np.load(s / "out_indptr.npy")[:-5])),
    "out_indptr truncated": ("out_indptr.npy", lambda s: _truncate(s / "out_indptr.npy")),
    "in_indptr bad end": ("in_indptr.npy", lambda s: _set(s / "in_indptr.npy", (-1,), 3)),
    "in_index out of range": ("in_index.npy", lambda s: _set(s / "in_index.npy", (0,), 10**5)),
    "in_index float": ("in_index.npy", lambda s: _npy(s / "in_index.npy",
                                                      np.load(s / "in_index.npy").astype(np.float64))),
    "meta garbage": ("meta.json", lambda s: (s / "meta.json").write_bytes(b"{not json")),
    "meta empty": ("meta.json", lambda s: (s / "meta.json").write_bytes(b"")),
    "meta array": ("meta.json", lambda s: (s / "meta.json").write_text("[1, 2, 3]")),
    "meta bad utf-8": ("meta.json", lambda s: (s / "meta.json").write_bytes(b'{"format_version": 1, "x": "\xff\xfe"}')),
    "meta no counts": ("meta.json", lambda s: _meta(s, lambda m: m.pop("counts"))),
    "meta counts not numbers": ("meta.json", lambda s: _meta(s, lambda m: m["counts"].update(entities="many"))),
    "meta missing": ("meta.json", lambda s: (s / "meta.json").unlink()),
    "meta counts disagree": ("triples.npy", lambda s: _meta(s, lambda m: m["counts"].update(triples=5))),
    "names garbage": ("names.sqlite", lambda s: (s / "names.sqlite").write_bytes(b"garbage" * 1000)),
    "names truncated": ("names.sqlite", lambda s: _truncate(s / "names.sqlite", 0.3)),
    "names empty": ("names.sqlite", lambda s: (s / "names.sqlite").write_bytes(b"")),
    "names missing": ("names.sqlite", lambda s: (s / "names.sqlite").unlink()),
    "names missing a table": ("names.sqlite", _sqlite_drop),
}


def _set(path, index, value):
    a = np.load(path)
    a[index] = value
    np.save(path, a)


@pytest.fixture
def corrupt(good_store, tmp_path, request):
    store = tmp_path / "store"
    shutil.copytree(good_store, store)
    name, damage = CORRUPTIONS[request.param]
    damage(store)
    return store, name


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS), indirect=True)
def test_kg_info_reports_a_corrupt_store(corrupt, capsys):
    store, name = corrupt
    status = main(["kg", "info", str(store)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("kept: error: ") and err.count("\n") == 1, err
    assert str(store) in err and name in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("corrupt", ["names truncated", "head id out of range", "meta garbage"], indirect=True)
def test_open_store_raises_store_error(corrupt):
    store, name = corrupt
    with pytest.raises(StoreError, match=name.replace(".", r"\.")):
        open_store(store, validate=True)


def test_good_store_passes_every_check(good_store, capsys):
    assert main(["kg", "info", str(good_store)]) == 0
    assert "entities" in capsys.readouterr().out
    open_store(good_store, validate=True)


def test_not_a_store(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    for path in (tmp_path / "nothing", tmp_path / "afile", tmp_path):
        assert main(["kg", "info", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"kept: error: {path}") and "Traceback" not in err


def test_kg_info_into_a_closed_pipe_is_quiet(good_store):
    """`kept kg info STORE | head -1`: the reader is gone before kept writes; no BrokenPipeError."""
    code = f"import sys; from kept.cli import main; sys.exit(main(['kg', 'info', {str(good_store)!r}]))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away at once, as `head -1` does after its line
    err = proc.stderr.read().decode()
    assert proc.wait() == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
