"""Bad vocabularies, corpora, checkpoints, model directories and fine-tuning files: each is
`kept: error: <path>: <problem>` with exit 2 (never a traceback), and nothing is written."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT

from kept.cli import main
from kept.data.examples import LinkedExample, write_corpus

VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"
TINY = ["--model.hidden_size", "32", "--model.num_layers", "1", "--model.num_heads", "2",
        "--model.intermediate_size", "64", "--trainer.max_steps", "1", "--trainer.enable_progress_bar", "false",
        "--data.batch_size", "2", "--trainer.accelerator", "cpu"]


def _err(capsys, status, path):
    err = capsys.readouterr().err
    assert status == 2, err
    assert f"kept: error: {path}" in err, err
    assert "Traceback" not in err
    return err


def _corpus(path, n=6, top_id=2000):
    rng = np.random.default_rng(0)
    write_corpus([LinkedExample(f"text {i}", rng.integers(999, top_id, 12)) for i in range(n)], path)
    return path


def _pretrain(tmp_path, corpus, vocab, *extra):
    return main(["pretrain", "--method", "mlm", "--data.corpus", str(corpus), "--data.vocab", str(vocab), *TINY,
                 "--trainer.default_root_dir", str(tmp_path / "run"), *extra])


VOCABS = {
    "random bytes": lambda p: p.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8))),
    "empty": lambda p: p.write_bytes(b""),
    "no [UNK]": lambda p: p.write_text("[PAD]\n[CLS]\n[SEP]\n[MASK]\nthe\n"),
    "NUL bytes": lambda p: p.write_bytes(b"[PAD]\n[UNK]\x00\x00\n"),
}


@pytest.mark.parametrize("kind", list(VOCABS))
def test_bad_vocabulary(tmp_path, capsys, kind):
    vocab = tmp_path / "vocab.txt"
    VOCABS[kind](vocab)
    _err(capsys, _pretrain(tmp_path, _corpus(tmp_path / "c"), vocab), vocab)
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").rglob("*.ckpt"))


def test_vocabulary_that_is_a_directory(tmp_path, capsys):
    (tmp_path / "v").mkdir()
    _err(capsys, _pretrain(tmp_path, _corpus(tmp_path / "c"), tmp_path / "v"), tmp_path / "v")


def test_corpus_built_with_another_vocabulary(tmp_path, capsys):
    corpus = _corpus(tmp_path / "c", top_id=40000)  # ids beyond bert-base-uncased's 30,522
    err = _err(capsys, _pretrain(tmp_path, corpus, VOCAB), corpus)
    assert "30522" in err and "another vocabulary" in err


CORPUS_DAMAGE = {
    "input_ids.npy": lambda c: (c / "input_ids.npy").unlink(),
    "tokens_indptr.npy": lambda c: (c / "tokens_indptr.npy").write_bytes(b"garbage"),
    "meta.json": lambda c: (c / "meta.json").write_bytes(b"\xff{"),
    "texts.jsonl": lambda c: (c / "texts.jsonl").unlink(),
    "offsets.npy": lambda c: np.save(c / "offsets.npy", np.zeros((3, 2), np.int32)),
}


@pytest.mark.parametrize("name", list(CORPUS_DAMAGE))
def test_missing_or_garbled_corpus_files(tmp_path, capsys, name):
    corpus = _corpus(tmp_path / "c")
    CORPUS_DAMAGE[name](corpus)
    _err(capsys, _pretrain(tmp_path, corpus, VOCAB), corpus / name)


@pytest.mark.parametrize("kind", ["missing", "garbage", "truncated", "directory"])
def test_bad_ckpt_path(tmp_path, capsys, kind):
    ckpt = tmp_path / "last.ckpt"
    if kind == "garbage":
        ckpt.write_bytes(b"not a checkpoint" * 100)
    elif kind == "truncated":
        import torch

        torch.save({"state_dict": {"w": torch.zeros(1000)}}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:2000])
    elif kind == "directory":
        ckpt.mkdir()
    _err(capsys, _pretrain(tmp_path, _corpus(tmp_path / "c"), VOCAB, "--ckpt_path", str(ckpt)), ckpt)


# ---- model directories (kept probe) -------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from kept.data.tokenizer import load_tokenizer
    from kept.train.mlm import MaskedLMModule

    tok = load_tokenizer(VOCAB)
    out = tmp_path_factory.mktemp("models") / "mlm"
    MaskedLMModule(vocab_size=len(tok), hidden_size=32, num_layers=1, num_heads=2,
                   intermediate_size=64).export_hf(out, tok)
    return out


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


MODEL_DAMAGE = {
    "config.json": lambda m: (m / "config.json").write_text("{broken"),
    "config.json ": lambda m: (m / "config.json").write_text("[]"),
    "model.safetensors": lambda m: _truncate(m / "model.safetensors"),
    "": lambda m: (m / "model.safetensors").unlink(),  # no weights: the directory is named
}


@pytest.mark.parametrize("name", list(MODEL_DAMAGE))
def test_broken_model_directory(tmp_path, capsys, model_dir, name):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    MODEL_DAMAGE[name](model)
    data = ROOT / "kg_data" / "trex" / "probe"
    status = main(["probe", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "out"),
                   "--no-progress", "--max-facts", "2"])
    _err(capsys, status, model / name.strip() if name.strip() else model)
    assert not (tmp_path / "out" / "metrics.json").exists()


# ---- kept finetune ------------------------------------------------------------------------

def _tsv(tmp_path, train=b"label\ttext_a\n0\tgood\n1\tbad\n"):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_bytes(train)
    for name in ("dev", "test"):
        (data / f"{name}.tsv").write_bytes(b"label\ttext_a\n0\tgood\n1\tbad\n")
    return data


FT = ["--hidden-size", "32", "--layers", "1", "--heads", "2", "--intermediate-size", "64", "--no-progress",
      "--device", "cpu", "--max-steps", "1", "--vocab", str(VOCAB)]


@pytest.mark.parametrize("payload", [b"0\tgood\n1\tok\n\x89PNG\r\n\x1a\n\xff\xd8\x00\x10\n", b"0\tgood\n1\tok\nab\x00cd\n"])
def test_finetune_binary_bytes_name_file_and_line(tmp_path, capsys, payload):
    data = _tsv(tmp_path, b"label\ttext_a\n" + payload)
    status = main(["finetune", "--data", str(data), "--out", str(tmp_path / "run"), *FT])
    _err(capsys, status, f"{data / 'train.tsv'}:4: ")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["missing", "garbage", "a file"])
def test_finetune_bad_kg(tmp_path, capsys, kind):
    data = _tsv(tmp_path)
    kg = tmp_path / "kg"
    if kind == "garbage":
        kg.mkdir()
        (kg / "meta.json").write_bytes(b"\x00\x01garbage")
    elif kind == "a file":
        kg.write_text("x")
    status = main(["finetune", "--data", str(data), "--out", str(tmp_path / "run"), "--store", str(kg), *FT])
    _err(capsys, status, kg)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("method", ["kbert", "ernie-t", "uktp"])
def test_every_data_module_checks_ids_against_the_vocabulary(tmp_path, method):
    """Each registered method's data module opens the corpus with the vocabulary check (not only mlm's)."""
    from kept.errors import InputError
    from kept.kg.build import BuildOptions, build_store
    from kept.methods import get_method, resolve

    store = tmp_path / "store"
    build_store([(ROOT / "kg_data" / "kbert" / "Medical.spo", None)], store,
                BuildOptions(progress=False))
    corpus = _corpus(tmp_path / "c", top_id=40000)
    m = get_method(method)
    data = resolve(m.datamodule)(corpus=str(corpus), vocab=str(VOCAB), store=str(store))
    with pytest.raises(InputError, match="another vocabulary"):
        data.setup("fit")
