"""`kept finetune`: reading labelled files, a classifier that learns through sentence trees, with and
without a KG, from a fresh BERT or a local checkpoint, and clear errors."""

import gzip
import json

import numpy as np
import pytest
import torch
from conftest import ROOT, need_data

from kept.train.finetune import main, read_labelled

ZH_VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-chinese-vocab.txt"
TINY = ["--hidden-size", "32", "--layers", "1", "--heads", "2", "--intermediate-size", "64", "--no-progress",
        "--device", "cpu"]


def _write(path, rows, header="label\ttext_a"):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("".join(f"{line}\n" for line in ([header] if header else []) + rows))
    return path


def test_read_labelled_headers_and_errors(tmp_path):
    texts, labels = read_labelled(_write(tmp_path / "a.tsv.gz", ["1\t好书", "0\t差"]))
    assert texts == ["好书", "差"] and labels == [1, 0]
    assert read_labelled(_write(tmp_path / "b.tsv", ["2\t无表头"], header=None)) == (["无表头"], [2])
    assert read_labelled(_write(tmp_path / "c.tsv", ["文本\t1"], header="text_a\tlabel")) == (["文本"], [1])
    with pytest.raises(ValueError, match=r"d.tsv:3: label 'x' is not an integer"):
        read_labelled(_write(tmp_path / "d.tsv", ["1\tok", "x\tbad"]))
    with pytest.raises(ValueError, match=r"e.tsv:2: expected label<TAB>text, got 1 field"):
        read_labelled(_write(tmp_path / "e.tsv", ["just text"]))
    with pytest.raises(ValueError, match="no 'label' column"):
        read_labelled(_write(tmp_path / "f.tsv", ["a\tb"], header="x\ty"))
    with pytest.raises(FileNotFoundError, match="no data file"):
        read_labelled(tmp_path / "none.tsv")


def _synthetic(tmp_path, n_train=96, n_eval=48):
    """A separable task on real review text: label 1 reviews end with 很好看, label 0 with 很难看 (and all
    mention 眼睛发红, a subject of the Medical KG, so that trees branch)."""
    with gzip.open(need_data("corpus", "zh", "book_review", "train.tsv.gz"), "rt", encoding="utf-8") as f:
        next(f)
        texts = [line.rstrip("\n").split("\t", 1)[1][:30] for _, line in zip(range(n_train + 2 * n_eval), f)]
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, len(texts))
    rows = [f"{y}\t{t}，眼睛发红，{'很好看' if y else '很难看'}" for t, y in zip(texts, labels)]
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "train.tsv.gz", rows[:n_train])
    _write(data / "dev.tsv", rows[n_train : n_train + n_eval])
    _write(data / "test.tsv", rows[n_train + n_eval :])
    return data


def test_classifier_learns_through_sentence_trees(tmp_path, medical_store):
    from kept.fusion.kbert import JiebaSubjectSegmenter
    from kept.fusion.kbert.branches import BranchTable
    from kept.fusion.kbert.tree import SentenceTreeBuilder
    from kept.train.data import load_tokenizer
    from kept.train.finetune import SentenceClassifier, TreeClassificationCollate, read_labelled

    tok = load_tokenizer(ZH_VOCAB)
    texts, labels = read_labelled(_synthetic(tmp_path, n_train=16, n_eval=1) / "train.tsv.gz")
    segment = JiebaSubjectSegmenter(tok, medical_store)
    builder = SentenceTreeBuilder(tok, BranchTable(medical_store, tok, "zh"), max_length=48)
    batch = TreeClassificationCollate(builder)([(segment(t), y) for t, y in zip(texts, labels)])
    torch.manual_seed(0)
    module = SentenceClassifier(2, len(tok), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                dropout=0.0)
    optimizer = torch.optim.AdamW(module.parameters(), lr=5e-3)
    losses = []
    assert batch["is_branch"].any()
    for _ in range(20):
        logits = module.forward_logits(batch)
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    assert (module.forward_logits(batch).argmax(-1) == batch["labels"]).all()


@pytest.mark.parametrize("with_kg", [False, True])
def test_finetune_cli_with_and_without_knowledge(tmp_path, with_kg, medical_store, capsys):
    data = _synthetic(tmp_path, n_train=48, n_eval=24)
    args = ["--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--epochs", "2", "--batch-size", "16",
            "--lr", "2e-3", "--max-length", "48", "--seed", "3"]
    if with_kg:
        args += ["--store", str(medical_store.path), "--max-branches", "2"]
    assert main(args) == 0
    assert "test accuracy" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 2 * 3 and metrics["train_examples"] == 48 and metrics["test_examples"] == 24
    assert "best-step=" in metrics["evaluated"]
    assert (metrics["branch_tokens_per_dev_sentence"] > 0) == with_kg
    assert metrics["kg"] == (str(medical_store.path) if with_kg else None)
    # the reported dev accuracy is the best checkpoint's, recomputed here by hand
    from kept.fusion.kbert import JiebaSubjectSegmenter
    from kept.fusion.kbert.branches import BranchTable
    from kept.fusion.kbert.tree import SentenceTreeBuilder
    from kept.train.data import load_tokenizer
    from kept.train.finetune import SentenceClassifier, TreeClassificationCollate

    tok = load_tokenizer(ZH_VOCAB)
    store = medical_store if with_kg else None
    segment = JiebaSubjectSegmenter(tok, store)
    builder = SentenceTreeBuilder(tok, BranchTable(store, tok, "zh") if with_kg else None, max_length=48)
    texts, labels = read_labelled(data / "dev.tsv")
    batch = TreeClassificationCollate(builder)([(segment(t), y) for t, y in zip(texts, labels)])
    best = SentenceClassifier.load_from_checkpoint(metrics["evaluated"]).eval()
    with torch.no_grad():
        accuracy = (best.forward_logits(batch).argmax(-1) == batch["labels"]).float().mean().item()
    assert accuracy == pytest.approx(metrics["dev_accuracy"], abs=1e-6)
    # the Hugging Face model saved beside metrics.json is the checkpoint just evaluated
    from transformers import AutoModelForSequenceClassification

    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model", local_files_only=True)
    assert saved.config.id2label == {0: "0", 1: "1"} and (tmp_path / "run" / "model" / "vocab.txt").exists()
    for name, weight in best.model.state_dict().items():
        torch.testing.assert_close(saved.state_dict()[name], weight)
    predictions = np.load(tmp_path / "run" / "test_predictions.npy", allow_pickle=False)   # [N, 2] predicted, gold
    assert predictions.shape == (24, 2)
    assert (predictions[:, 0] == predictions[:, 1]).mean() == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_finetune_from_a_local_checkpoint_and_step_limit(tmp_path, capsys):
    from kept.train.data import load_tokenizer
    from kept.train.mlm import MaskedLMModule

    tok = load_tokenizer(ZH_VOCAB)
    pretrained = MaskedLMModule(vocab_size=len(tok), hidden_size=32, num_layers=1, num_heads=2,
                                intermediate_size=64, max_position_embeddings=128)
    pretrained.export_hf(tmp_path / "mlm", tok)
    data = _synthetic(tmp_path, n_train=40, n_eval=16)
    assert main(["--data", str(data), "--out", str(tmp_path / "run"), "--pretrained", str(tmp_path / "mlm"),
                 "--max-steps", "3", "--batch-size", "8", "--max-length", "48", "--no-progress",
                 "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["evaluated"] == "final model"  # stopped before the epoch's validation
    from kept.train.finetune import SentenceClassifier

    classifier = SentenceClassifier(2, len(tok), str(tmp_path / "mlm"))
    torch.testing.assert_close(classifier.model.bert.embeddings.word_embeddings.weight,
                               pretrained.model.bert.embeddings.word_embeddings.weight)


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    data = _synthetic(tmp_path, n_train=20, n_eval=8)
    _write(data / "dev.tsv", ["5\tunknown label"])
    assert main(["--data", str(data), "--out", str(tmp_path / "run"), *TINY]) == 2
    assert "dev split has labels [5] that the training split lacks" in capsys.readouterr().err
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "run"), *TINY]) == 2
    assert "no train.tsv or train.tsv.gz in" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "--store" in capsys.readouterr().out
