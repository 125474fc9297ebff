"""`kept pretrain` end to end, learning on a fixed batch, and the Hugging Face export."""

import numpy as np
import pytest
import torch
from conftest import ROOT, fit_batch
from test_masking import staged_examples

from kept.cli import main
from kept.data.examples import write_corpus
from kept.masking import UnitMaskingCollator
from kept.train.data import load_tokenizer
from kept.train.mlm import MaskedLMModule

VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"
TINY = ["--model.hidden_size", "32", "--model.num_layers", "1", "--model.num_heads", "2",
        "--model.intermediate_size", "64"]


@pytest.mark.parametrize("level", ["token", "entity"])
def test_loss_on_a_fixed_batch_goes_down(level):
    tok = load_tokenizer(VOCAB)
    batch = UnitMaskingCollator(tok, max_length=32, level=level, mask_prob=0.3, max_predictions=32,
                                seed=0)(staged_examples(8))
    assert batch["labels"].ne(-100).any()
    module = MaskedLMModule(vocab_size=len(tok), hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                            dropout=0.0)
    losses = [step["loss"] for step in fit_batch(module, batch, steps=30, lr=3e-3)]
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize("method", ["mlm", "ernie-baidu"])
def test_kept_pretrain_cli_and_export(tmp_path, method, capsys):
    corpus = tmp_path / "corpus"
    write_corpus(staged_examples(40), corpus)
    args = ["pretrain", "--method", method, "--data.corpus", str(corpus), "--data.vocab", str(VOCAB),
            "--data.batch_size", "8", *TINY, "--trainer.max_steps", "4", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--export", str(tmp_path / "hf")]
    if method == "ernie-baidu":
        args += ["--trainer.callbacks.init_args.boundaries", '{"phrase": 1, "entity": 2}']
    assert main(args) == 0
    assert "Hugging Face format" in capsys.readouterr().out
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "hf", local_files_only=True)
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf", local_files_only=True)
    inputs = tok("paris is the capital of [MASK] .", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], 30522)
    ckpts = list((tmp_path / "run").rglob("*.ckpt"))
    assert ckpts  # Lightning's checkpoint, resumable with --ckpt_path


def test_batch_without_predictions_has_zero_loss():
    from kept.train.mlm import masked_lm_loss

    logits = torch.randn(2, 5, 11, requires_grad=True)
    loss = masked_lm_loss(logits, torch.full((2, 5), -100))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None
    labels = torch.full((2, 5), -100)
    labels[0, 1] = 3
    assert torch.isclose(masked_lm_loss(logits, labels), torch.nn.functional.cross_entropy(logits[0, 1:2], labels[0, 1:2]))


def test_unknown_method_is_a_clear_error():
    with pytest.raises(SystemExit, match="unknown method 'ernie-x'"):
        main(["pretrain", "--method", "ernie-x"])


def test_missing_method_names_the_choices():
    from kept.methods import METHODS

    with pytest.raises(SystemExit, match="give --method NAME, one of " + ", ".join(METHODS)):
        main(["pretrain", "--trainer.max_steps", "1"])


def test_pretrain_help_lists_every_registered_method(capsys):
    from kept.methods import METHODS

    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for name, m in METHODS.items():
        assert f"  {name}" in out and m.description in out, name


def test_exported_weights_match_the_module(tmp_path):
    tok = load_tokenizer(VOCAB)
    module = MaskedLMModule(vocab_size=len(tok), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    module.export_hf(tmp_path / "hf", tok)
    from transformers import AutoModelForMaskedLM

    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "hf", local_files_only=True)
    a = dict(module.model.named_parameters())
    for name, p in loaded.named_parameters():
        assert np.allclose(a[name].detach().numpy(), p.detach().numpy()), name


@pytest.mark.parametrize("name", ["mlm", "ernie-baidu", "kbert", "uktp"])
def test_every_stock_bert_method_starts_from_a_pretrained_checkpoint(name, tmp_path):
    """--model.pretrained DIR: the shared base model of the knowledge study (ERNIE-T: tests/test_ernie_t.py)."""
    from transformers import BertConfig, BertForMaskedLM

    from kept.methods import get_method, resolve

    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    base = BertForMaskedLM(config)
    base.save_pretrained(tmp_path / "base")
    module = resolve(get_method(name).module)(vocab_size=40, pretrained=str(tmp_path / "base"))
    for (key, a), b in zip(base.state_dict().items(), module.model.state_dict().values()):
        assert torch.equal(a, b), key
    scratch = resolve(get_method(name).module)(vocab_size=40, hidden_size=16, num_layers=2, num_heads=2,
                                               intermediate_size=32)
    assert not torch.equal(scratch.model.bert.embeddings.word_embeddings.weight,
                           base.bert.embeddings.word_embeddings.weight)


def test_method_help_describes_every_model_and_data_argument(capsys):
    """`kept pretrain --method NAME --help` lists the method's model and data arguments, each with a description
    (LightningCLI takes it from the class docstring's Args section: one `name: text` line per argument)."""
    import re

    from kept.methods import METHODS
    from kept.train.cli import method_help

    for name, method in METHODS.items():
        text = method_help(method)
        options = re.findall(r"^  (--(?:model|data)\.\w+)(?: \S+)?\n?\s*(.*)$", text, flags=re.M)
        assert len(options) > 5, (name, text[:500])
        undescribed = [flag for flag, first in options if first.startswith("(type:") or first.startswith("(required,")]
        assert not undescribed, f"{name}: no description for {undescribed}"
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--method", "mlm", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    flat = " ".join(out.split())
    assert "[--method METHOD]" in flat and "one of: " + ", ".join(METHODS) in flat
    assert re.search(r"--model\.pretrained PRETRAINED\s+a local BERT directory", out)
    assert re.search(r"--data\.corpus CORPUS\s+a linked-corpus directory", out)
