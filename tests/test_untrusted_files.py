"""Files a user receives (a shared store, its linker cache, a checkpoint) never run code.

Each crafted file carries a payload whose unpickling writes a marker file; a control load
with pickle allowed proves the payload works, then kept's own loading must not run it.
"""

from __future__ import annotations

import ast
import json
import pathlib
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_linker import _write_toy

from kept.cli import main
from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store
from kept.kg.linking import EntityLinker, LinkerConfig, index_cache_dir
from kept.kg.linking.alias_index import AliasIndex, InvalidIndexCache

PACKAGE = Path(__file__).resolve().parents[1] / "kept"
TEXT = "Paris, son of Priam, met Helen."


class Payload:
    """Unpickling this writes ``marker``: what a malicious file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.write_text, (pathlib.Path(self.marker), "the payload ran")


@pytest.fixture(scope="module")
def built_store(tmp_path_factory):
    work = tmp_path_factory.mktemp("untrusted")
    build_store([(_write_toy(work / "toy.nt"), None)], work / "store", BuildOptions(progress=False))
    return work / "store"


@pytest.fixture
def store(built_store, tmp_path):
    return Path(shutil.copytree(built_store, tmp_path / "store"))


def link(store: Path, capsys) -> tuple[int, list, str]:
    rc = main(["link", "--store", str(store), "--text", TEXT, "--no-progress"])
    captured = capsys.readouterr()
    return rc, json.loads(captured.out)["mentions"] if rc == 0 else None, captured.err


def cache_of(store: Path) -> Path:
    return index_cache_dir(open_store(store), LinkerConfig().index_options())


# ---- the linker cache ---------------------------------------------------------------------------
def test_cache_holds_no_pickle(store, capsys):
    rc, _, _ = link(store, capsys)
    directory = cache_of(store)
    assert rc == 0 and not list(directory.glob("*.pkl"))
    for path in directory.glob("*.npy"):
        np.load(path, allow_pickle=False)  # plain arrays only


def test_crafted_pickle_cache_runs_nothing(store, tmp_path, capsys):
    rc, expected, _ = link(store, capsys)
    directory = cache_of(store)
    marker = tmp_path / "marker"
    with open(directory / "automaton_folded.pkl", "wb") as f:  # the old format's file name
        pickle.dump(Payload(marker), f)
    np.save(directory / "key_chars.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    np.load(directory / "key_chars.npy", allow_pickle=True)  # control: the payload works...
    assert marker.exists()
    marker.unlink()
    rc, mentions, err = link(store, capsys)  # ...kept's loading does not run it
    assert rc == 0 and not marker.exists()
    assert mentions == expected
    assert err.count("kept: notice: rebuilding the linker cache") == 1 and str(directory) in err
    assert not list(directory.glob("*.pkl"))
    assert link(store, capsys)[2] == ""  # the rebuilt cache is valid: no second notice


def _corrupt(directory: Path, how: str) -> None:
    if how == "meta garbage":
        (directory / "meta.json").write_bytes(b"\xff\x00garbage")
    elif how == "meta array":
        (directory / "meta.json").write_text("[1, 2]")
    elif how == "meta missing":
        (directory / "meta.json").unlink()
    elif how == "truncated":
        data = (directory / "key_indptr.npy").read_bytes()
        (directory / "key_indptr.npy").write_bytes(data[: len(data) // 2])
    elif how == "empty":
        (directory / "cand_entity.npy").write_bytes(b"")
    elif how == "float":
        np.save(directory / "cand_entity.npy", np.load(directory / "cand_entity.npy").astype(np.float32))
    elif how == "2-D":
        np.save(directory / "key_length.npy", np.load(directory / "key_length.npy")[:, None])
    elif how == "ids out of range":
        ids = np.load(directory / "cand_entity.npy")
        ids[0] = 10**6
        np.save(directory / "cand_entity.npy", ids)
    elif how == "indptr wrong":
        ptr = np.load(directory / "key_indptr.npy")
        np.save(directory / "key_indptr.npy", ptr[::-1].copy())
    elif how == "not code points":
        chars = np.load(directory / "key_chars.npy")
        chars[0] = 0xFFFFFFFF
        np.save(directory / "key_chars.npy", chars)
    elif how == "a file":
        shutil.rmtree(directory)
        directory.write_text("not a directory")


@pytest.mark.parametrize("how", ["meta garbage", "meta array", "meta missing", "truncated", "empty", "float", "2-D",
                                 "ids out of range", "indptr wrong", "not code points", "a file"])
def test_corrupt_cache_is_rebuilt_with_a_notice(store, capsys, how):
    rc, expected, _ = link(store, capsys)
    directory = cache_of(store)
    _corrupt(directory, how)
    rc, mentions, err = link(store, capsys)
    assert rc == 0 and mentions == expected, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("kept: notice: rebuilding the linker cache")
    assert str(directory) in err and "Traceback" not in err
    AliasIndex.load(directory, LinkerConfig().index_options())  # valid again


def test_cache_of_other_options_is_refused(store):
    EntityLinker.from_store(store)
    directory = cache_of(store)
    with pytest.raises(InvalidIndexCache, match="other options"):
        AliasIndex.load(directory, LinkerConfig(case="sensitive").index_options())


# ---- checkpoints ----------------------------------------------------------------------------------
def _crafted_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": {"config": Payload(marker)}, "state_dict": {}, "epoch": 0}, path)
    torch.load(path, weights_only=False)  # control: the payload works
    assert marker.exists()
    marker.unlink()
    return path


def test_transe_resume_refuses_a_crafted_checkpoint(store, tmp_path, capsys):
    marker = tmp_path / "marker"
    ckpt = _crafted_checkpoint(store / "embeddings" / ".work-transe" / "checkpoints" / "last.ckpt", marker)
    assert main(["kg", "embed", str(store), "--resume", "--no-progress", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert err.startswith(f"kept: error: {ckpt}: not a kept TransE checkpoint") and "Traceback" not in err


def test_transe_lightning_resume_is_weights_only(store, tmp_path):
    from kept.kg.transe.config import TransEConfig
    from kept.kg.transe.train import train_transe

    marker = tmp_path / "marker"
    ckpt = _crafted_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(pickle.UnpicklingError):
        train_transe(store, TransEConfig(dim=4, epochs=1), tmp_path / "work", "cpu", 1, resume=ckpt, progress=False)
    assert not marker.exists()


def test_pretrain_ckpt_path_is_weights_only(tmp_path):
    from test_masking import staged_examples
    from test_pretrain import TINY, VOCAB

    from kept.data.examples import write_corpus

    marker = tmp_path / "marker"
    ckpt = _crafted_checkpoint(tmp_path / "evil.ckpt", marker)
    write_corpus(staged_examples(16), tmp_path / "corpus")
    args = ["pretrain", "--method", "mlm", "--data.corpus", str(tmp_path / "corpus"), "--data.vocab", str(VOCAB),
            "--data.batch_size", "8", *TINY, "--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--ckpt_path", str(ckpt)]
    try:
        rc = main(args)
    except Exception:  # noqa: BLE001 - how it fails is not the point here, that nothing ran is
        rc = None
    assert rc != 0 and not marker.exists()


# ---- the package never loads pickles --------------------------------------------------------------
def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))]


def test_package_has_no_pickle_loads():
    found = [f"{p}:{i}" for p, text in _sources() for i, line in enumerate(text.splitlines(), 1)
             if re.search(r"\bpickle\.loads?\b|\bdill\b|\bjoblib\.load\b|allow_pickle\s*=\s*True|\bahocorasick\.load\b",
                          line)]
    assert not found


def test_every_torch_load_is_weights_only():
    bad = []
    for path, text in _sources():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            kw = {k.arg: k.value for k in node.keywords}
            safe = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
            loads = ast.unparse(node.func).split(".")[-1] in ("load", "load_checkpoint", "pl_load", "_load") and \
                ast.unparse(node.func) not in ("np.load", "json.load", "numpy.load")
            if (loads and ast.unparse(node.func).startswith(("torch", "super()", "pl_load", "_load")) or
                    "weights_only" in kw) and not safe:
                bad.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    assert not bad
