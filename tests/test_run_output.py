"""What a run leaves and shows: the progress bar's text, the export folder (kept.json's store rule,
vocab.txt, the model card, file modes), and a missing logger package as one clear line."""

import json
import os
import stat
import sys
from types import SimpleNamespace

import pytest
from conftest import ROOT
from test_masking import staged_examples

from kept.cli import main
from kept.data.examples import write_corpus
from kept.model_dir import recorded_store
from kept.progress import KeptRichProgressBar, KeptTQDMProgressBar, run_description, with_progress_bar

VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"
TINY = ["--model.hidden_size", "32", "--model.num_layers", "1", "--model.num_heads", "2",
        "--model.intermediate_size", "64"]


def test_run_description_steps_or_epochs():
    by_steps = SimpleNamespace(max_steps=200, max_epochs=-1, global_step=40, current_epoch=3)
    assert run_description(by_steps) == "step 40/200"
    assert run_description(SimpleNamespace(max_steps=200, max_epochs=None, global_step=7, current_epoch=0)) == "step 7/200"
    by_epochs = SimpleNamespace(max_steps=-1, max_epochs=50, global_step=400, current_epoch=4)
    assert run_description(by_epochs) == "epoch 5/50"
    assert "-" not in run_description(SimpleNamespace(max_steps=-1, max_epochs=-1, global_step=0, current_epoch=0))


@pytest.mark.parametrize("bar_class", [KeptTQDMProgressBar, KeptRichProgressBar])
def test_bar_metrics_have_no_v_num(bar_class, monkeypatch):
    from pytorch_lightning.callbacks.progress.progress_bar import ProgressBar

    monkeypatch.setattr(ProgressBar, "get_metrics", lambda self, trainer, module: {"v_num": 3, "train/loss": 1.5})
    assert bar_class().get_metrics(None, None) == {"train/loss": 1.5}


def test_with_progress_bar_respects_the_users_choice():
    from pytorch_lightning.callbacks import TQDMProgressBar

    assert with_progress_bar([], False) == []
    mine = TQDMProgressBar()
    assert with_progress_bar([mine], None) == [mine]
    added = with_progress_bar([], None)
    assert len(added) == 1 and isinstance(added[0], (KeptRichProgressBar, KeptTQDMProgressBar))


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_export_folder_carries_vocab_card_and_plain_modes(tmp_path, umask_022, capsys):
    """`kept pretrain --export`: kept.json, vocab.txt (= the vocabulary trained with), README.md, every
    file 0644 under umask 022 (safetensors writes 0600); the bar shows `step S/MAX`, never v_num."""
    corpus = tmp_path / "corpus"
    write_corpus(staged_examples(40), corpus)
    out = tmp_path / "hf"
    assert main(["pretrain", "--method", "mlm", "--data.corpus", str(corpus), "--data.vocab", str(VOCAB),
                 "--data.batch_size", "8", *TINY, "--trainer.max_steps", "3", "--trainer.val_check_interval", "3",
                 "--trainer.default_root_dir", str(tmp_path / "run"), "--export", str(out)]) == 0
    printed = capsys.readouterr()
    assert "v_num" not in printed.out + printed.err and "Epoch 0/-2" not in printed.out + printed.err
    assert f"checkpoints: {tmp_path / 'run'}" in printed.out and f"logs and config.yaml: {tmp_path / 'run'}" in printed.out
    info = json.loads((out / "kept.json").read_text())
    assert info["method"] == "mlm" and "store" not in info and info["kept_version"]
    assert (out / "vocab.txt").read_text() == VOCAB.read_text()
    card = (out / "README.md").read_text()
    for fact in ("`mlm`", "3 optimizer steps", str(corpus), "kept version", 'pipeline("fill-mask"'):
        assert fact in card, fact
    files = [p for p in out.iterdir() if p.is_file()]
    assert {"model.safetensors", "config.json", "tokenizer.json", "kept.json", "vocab.txt", "README.md"} <= {
        p.name for p in files}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: "0o644" for p in files}
    from transformers import pipeline

    assert len(pipeline("fill-mask", model=str(out), top_k=2)("paris is the capital of [MASK] .")) == 2


def test_recorded_store_absolute_and_older_relative_paths(tmp_path, monkeypatch):
    store = tmp_path / "stores" / "trex"
    store.mkdir(parents=True)
    (store / "meta.json").write_text("{}")
    model = tmp_path / "model"
    model.mkdir()
    assert recorded_store(model, {"store": str(store)}) == store
    assert recorded_store(model, {"method": "mlm"}) is None
    monkeypatch.chdir(tmp_path)  # an older export: the path relative to where it was trained
    assert recorded_store(model, {"store": "stores/trex"}).resolve() == store
    (model / "kg").mkdir()
    (model / "kg" / "meta.json").write_text("{}")  # or relative to the model folder
    assert recorded_store(model, {"store": "kg"}) == model / "kg"


def test_finish_export_makes_the_store_absolute(tmp_path, monkeypatch):
    from transformers import BertConfig, BertForMaskedLM

    from kept.train.data import load_tokenizer
    from kept.train.export import finish_export

    out = tmp_path / "hf"
    BertForMaskedLM(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32)).save_pretrained(out)
    (out / "kept.json").write_text(json.dumps({"method": "ernie-t", "store": "stores/trex"}))
    monkeypatch.chdir(tmp_path)
    datamodule = SimpleNamespace(tokenizer=load_tokenizer(VOCAB), hparams={"corpus": "c", "batch_size": 4})
    finish_export(out, "ernie-t", None, datamodule, None)
    assert json.loads((out / "kept.json").read_text())["store"] == str(tmp_path / "stores" / "trex")
    (out / "kept.json").write_text(json.dumps({"method": "uktp"}))
    finish_export(out, "uktp", None, SimpleNamespace(hparams={"store": "kg2"}), None)  # from the data module
    assert json.loads((out / "kept.json").read_text())["store"] == str(tmp_path / "kg2")
    assert "ErnieTFillMask" not in (out / "README.md").read_text()  # uktp: a stock BERT
    (out / "kept.json").unlink()
    finish_export(out, None, None, datamodule, None)  # a run from --config files alone: a plain BERT
    assert not (out / "kept.json").exists() and (out / "vocab.txt").is_file()


def test_tensorboard_logger_without_tensorboard_is_one_line(tmp_path, monkeypatch, capsys):
    for name in ("tensorboard", "tensorboardX"):  # as if not installed, even where it is
        monkeypatch.setitem(sys.modules, name, None)
    corpus = tmp_path / "corpus"
    write_corpus(staged_examples(8), corpus)
    status = main(["pretrain", "--method", "mlm", "--data.corpus", str(corpus), "--data.vocab", str(VOCAB), *TINY,
                   "--trainer.max_steps", "1", "--trainer.logger", "TensorBoardLogger",
                   "--trainer.logger.save_dir", str(tmp_path / "tb")])
    err = capsys.readouterr().err
    assert status == 2
    assert "pip install 'kept[tensorboard]'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_data_build_says_what_it_does_and_when_it_reused(tmp_path, capsys):
    from kept.data.build import CorpusOptions, build_linked_corpus

    texts = tmp_path / "texts.txt"
    texts.write_text("paris is the capital of france .\nberlin is the capital of germany .\n" * 5)
    options = CorpusOptions(min_phrase_count=2)
    build_linked_corpus(texts, tmp_path / "corpus", VOCAB, None, options, workers=0)
    first = capsys.readouterr().err
    assert f"segmenting {texts} with no worker processes" in first and "reused" not in first
    corpus = build_linked_corpus(texts, tmp_path / "corpus", VOCAB, None, options, workers=0)
    second = capsys.readouterr().err
    assert len(corpus) == 10 and second.strip() == f"{tmp_path / 'corpus'}: reused (built before from the same " \
        "input, vocabulary, store and options)"


def test_demo_stage_table():
    from kept.demo_common import stage_table, timed

    times: dict = {}
    assert timed(times, "kg build", lambda x: x + 1, 1) == 2 and list(times) == ["kg build"]
    table = stage_table({"kg build": 1.25, "pretrain ernie-baidu": 12.0}, 13.3).splitlines()
    assert table[0].split() == ["stage", "seconds"] and table[-1].split() == ["total", "13.3"]
    assert table[3].split() == ["pretrain", "ernie-baidu", "12.0"]
