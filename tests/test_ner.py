"""`kept finetune --task ner`: BIO files, entity-level scores (exact spans), tags aligned with K-BERT trees
on the real medical_ner files (branch tokens carry no label), with/without-KG runs that differ only by the
KG, and the saved Hugging Face model."""

import json

import numpy as np
import pytest
import torch
from conftest import ROOT, need_data

from kept.train.finetune import main
from kept.train.ner import IGNORE, TaggingData, TokenTagger, entity_counts, entity_scores, read_tagged

ZH_VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-chinese-vocab.txt"
TINY = ["--hidden-size", "32", "--layers", "1", "--heads", "2", "--intermediate-size", "64", "--no-progress",
        "--accelerator", "cpu"]


def test_entity_scores_count_exact_spans_only():
    gold = [["B-Symptom", "I-Symptom", "O", "B-BodyPart", "I-BodyPart", "I-BodyPart"], ["B-Disease", "I-Disease"]]
    # 1st entity exact; 2nd entity partial (its last character missed); 3rd right span, wrong type
    predicted = [["B-Symptom", "I-Symptom", "O", "B-BodyPart", "I-BodyPart", "O"], ["B-Symptom", "I-Symptom"]]
    scores = entity_scores(gold, predicted)
    assert scores["entities"] == 3
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(1 / 3)
    assert scores["per_type"]["BodyPart"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["per_type"]["Symptom"]["precision"] == 0.5 and scores["per_type"]["Symptom"]["recall"] == 1.0
    # a longer prediction than the gold span does not count either; the whole sentence right does
    assert entity_scores([["B-Cure", "I-Cure", "O"]], [["B-Cure", "I-Cure", "I-Cure"]])["f1"] == 0.0
    assert entity_scores(gold, gold)["f1"] == 1.0
    counts = entity_counts(gold, predicted)                       # per sentence tp, fp, fn
    assert counts.tolist() == [[1, 1, 1], [0, 1, 1]]
    tp, fp, fn = counts.sum(0)
    assert 2 * tp / (2 * tp + fp + fn) == pytest.approx(scores["f1"])
    assert entity_scores([["O", "O"]], [["O", "O"]])["f1"] == 0.0 and entity_scores([["O"]], [["O"]])["entities"] == 0
    with pytest.raises(ValueError, match="differ in length"):
        entity_scores([["O", "O"]], [["O"]])


def test_read_tagged_real_files_and_errors(tmp_path):
    data = need_data("corpus", "zh", "medical_ner")
    sizes = {name: len(read_tagged(data / f"{name}.tsv")[0]) for name in ("dev", "test")}
    assert sizes == {"dev": 939, "test": 755}
    chars, tags = read_tagged(data / "train.tsv.gz")
    assert len(chars) == 6919 and all(len(c) == len(t) for c, t in zip(chars, tags))
    assert chars[0][:2] and {t for row in tags for t in row} >= {"O", "B-Symptom", "I-Cure"}
    bad = tmp_path / "bad.tsv"
    for rows, message in ((["腹 痛\tB-Symptom"], r"bad.tsv:2: 2 characters but 1 tags"),
                          (["腹 痛\tB-Symptom X"], r"bad.tsv:2: tag 'X' is not O, B-TYPE or I-TYPE"),
                          (["腹痛 胀\tO O"], r"bad.tsv:2: token '腹痛' is not one character"),
                          (["腹 痛"], r"bad.tsv:2: expected text_a<TAB>label, got 1 field")):
        bad.write_text("text_a\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            read_tagged(bad)
    headless = tmp_path / "headless.tsv"
    headless.write_text("腹 痛\tB-Symptom I-Symptom\n", encoding="utf-8")
    assert read_tagged(headless) == ([["腹", "痛"]], [["B-Symptom", "I-Symptom"]])


def _dev_data(store, limit=200, max_length=256):
    from kept.fusion.kbert import JiebaSubjectSegmenter
    from kept.fusion.kbert.branches import BranchTable
    from kept.fusion.kbert.tree import SentenceTreeBuilder
    from kept.train.data import load_tokenizer

    tok = load_tokenizer(ZH_VOCAB)
    dev = read_tagged(need_data("corpus", "zh", "medical_ner", "dev.tsv"))
    split = (dev[0][:limit], dev[1][:limit])
    builder = SentenceTreeBuilder(tok, BranchTable(store, tok, "zh") if store is not None else None, max_length)
    return tok, TaggingData({"train": split, "dev": split, "test": split}, JiebaSubjectSegmenter(tok, store),
                            builder), split


def test_tags_align_with_kbert_trees_on_real_files(medical_store):
    tok, data, (chars, tags) = _dev_data(medical_store)
    batch = data.collate(data.examples["dev"])
    branch = batch["is_branch"]
    assert branch.sum() > 200                                     # the Medical KG hangs branches on many words
    assert (batch["labels"][branch] == IGNORE).all()              # branch tokens: no label, no loss, no metric
    index = data.tag_names.index
    from kept.fusion.kbert.branches import CharVocab

    chars_vocab = CharVocab(tok)
    for row, (c, t) in enumerate(zip(chars, tags)):
        trunk = batch["labels"][row] != IGNORE
        assert trunk.sum() == len(t)                              # every character, none cut at 256
        assert batch["labels"][row][trunk].tolist() == [index(x) for x in t]
        assert batch["input_ids"][row][trunk].tolist() == chars_vocab.encode("".join(c))[0].tolist()
        # [CLS] and [SEP] carry no label either
        assert batch["labels"][row][0] == IGNORE and (batch["sentence_index"][row] == len(t) + 1).sum() == 1
    # the loss ignores branch tokens: changing their logits changes nothing
    torch.manual_seed(0)
    tagger = TokenTagger(data.tag_names, len(tok), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    logits = torch.randn(*batch["labels"].shape, len(data.tag_names))
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)
    logits[branch] = 100.0
    assert torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(),
                                             ignore_index=IGNORE) == loss
    # predictions sit at the sentence index of their trunk token, never on a branch
    predicted = tagger.predict_tags(batch, logits)
    assert (predicted[batch["tags"] != IGNORE] == logits.argmax(-1)[batch["labels"] != IGNORE]).all()


def test_with_and_without_kg_differ_only_by_the_branches(medical_store):
    _, plain, _ = _dev_data(None)
    _, kg, _ = _dev_data(medical_store)
    a, b = plain.collate(plain.examples["dev"]), kg.collate(kg.examples["dev"])
    assert not a["is_branch"].any() and b["is_branch"].any()
    for row in range(len(a["lengths"])):
        trunk_a, trunk_b = ~a["is_branch"][row] & (a["attention_mask"][row] > 0), ~b["is_branch"][row] & (
            b["attention_mask"][row] > 0)
        for key in ("input_ids", "labels", "position_ids", "sentence_index"):
            assert a[key][row][trunk_a].tolist() == b[key][row][trunk_b].tolist()
    assert torch.equal(a["tags"], b["tags"])


def test_truncated_characters_count_as_predicted_o(medical_store):
    _, data, (chars, tags) = _dev_data(medical_store, limit=40, max_length=16)
    batch = data.collate(data.examples["dev"])
    cut = (batch["tags"] != IGNORE).sum() - (batch["labels"] != IGNORE).sum()
    assert cut > 0
    tagger = TokenTagger(data.tag_names, 21128, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    logits = torch.zeros(*batch["labels"].shape, len(data.tag_names))
    logits[..., 1] = 1.0                                           # every tree token: B-first type
    predicted = tagger.predict_tags(batch, logits)
    outside = (batch["tags"] != IGNORE) & (predicted == 0)
    assert outside.sum() == cut


@pytest.mark.parametrize("with_kg", [False, True])
def test_finetune_ner_cli_real_files(tmp_path, with_kg, medical_store, capsys):
    from transformers import AutoModelForTokenClassification

    data = need_data("corpus", "zh", "medical_ner")
    out = tmp_path / ("kg" if with_kg else "plain")
    args = ["--task", "ner", "--data", str(data), "--out", str(out), *TINY, "--limit-train", "64",
            "--limit-eval", "32", "--epochs", "1", "--batch-size", "16", "--lr", "2e-3", "--seed", "3"]
    assert main(args + (["--kg", str(medical_store.path)] if with_kg else [])) == 0
    assert "test f1" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "ner" and metrics["steps"] == 4 and metrics["dev_sentences"] == 32
    assert 0.0 <= metrics["test_f1"] <= 1.0 and metrics["test"]["entities"] > 0
    assert (metrics["branch_tokens_per_dev_sentence"] > 0) == with_kg
    assert metrics["kg"] == (str(medical_store.path) if with_kg else None)
    model = AutoModelForTokenClassification.from_pretrained(out / "model", local_files_only=True)
    assert [model.config.id2label[i] for i in range(len(metrics["tags"]))] == metrics["tags"]
    assert (out / "model" / "vocab.txt").read_text(encoding="utf-8").splitlines()[:1] == ["[PAD]"]
    # the saved model is the one scored: dev F1 recomputed from it
    _, dev_data, _ = _dev_data(medical_store if with_kg else None, limit=32)
    tagger = TokenTagger(metrics["tags"], 21128, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    tagger.model = model.eval()
    tagger.tag_array = np.asarray(metrics["tags"], dtype=object)
    batch = dev_data.collate(dev_data.examples["dev"])
    with torch.no_grad():
        predicted = tagger.predict_tags(batch).numpy()
    gold = batch["tags"].numpy()
    names = np.asarray(metrics["tags"], dtype=object)
    n = batch["lengths"].tolist()
    scores = entity_scores([names[g[1 : k + 1]].tolist() for g, k in zip(gold, n)],
                           [names[p[1 : k + 1]].tolist() for p, k in zip(predicted, n)])
    assert scores["f1"] == pytest.approx(metrics["dev_f1"], abs=1e-6)
    tp, fp, fn = np.load(out / "test_entity_counts.npy", allow_pickle=False).sum(0)
    assert 2 * tp / max(2 * tp + fp + fn, 1) == pytest.approx(metrics["test_f1"])
    assert tp + fn == metrics["test"]["entities"]


def test_with_and_without_kg_settings_differ_only_by_the_kg(tmp_path, medical_store):
    data = need_data("corpus", "zh", "medical_ner")
    common = ["--task", "ner", "--data", str(data), *TINY, "--limit-train", "16", "--limit-eval", "8",
              "--max-steps", "2", "--batch-size", "8", "--lr", "0"]
    assert main(common + ["--out", str(tmp_path / "a")]) == 0
    assert main(common + ["--out", str(tmp_path / "b"), "--kg", str(medical_store.path)]) == 0
    a, b = (json.loads((tmp_path / x / "metrics.json").read_text()) for x in "ab")
    assert {k for k in a["settings"] if a["settings"][k] != b["settings"][k]} == {"kg", "out"}
    assert a["tags"] == b["tags"] and a["dev_sentences"] == b["dev_sentences"]
    # same seed: the same initial model (lr 0 keeps it): the runs differ only through the trees
    from safetensors.torch import load_file

    wa, wb = (load_file(tmp_path / x / "model" / "model.safetensors") for x in "ab")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ner_rejects_english_and_bad_files(tmp_path, capsys):
    data = need_data("corpus", "zh", "medical_ner")
    assert main(["--task", "ner", "--data", str(data), "--lang", "en", "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "use --lang zh" in capsys.readouterr().err
    (tmp_path / "d").mkdir()
    for name in ("train", "dev", "test"):
        (tmp_path / "d" / f"{name}.tsv").write_text("text_a\tlabel\n腹 痛\tB-Symptom\n", encoding="utf-8")
    assert main(["--task", "ner", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "train.tsv:2: 2 characters but 1 tags" in capsys.readouterr().err
