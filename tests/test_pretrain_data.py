"""The pretraining data module: exact curriculum switches in every worker, resumable, seeded masks."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from conftest import ROOT
from test_masking import detect_level, staged_examples

from kept.data.examples import write_corpus
from kept.masking import MaskingCurriculum
from kept.train.data import PretrainDataModule

VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"


class _Recorder(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, str]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.global_step, detect_level(batch)))
        return (self.weight * batch["labels"].ne(-100).sum()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.fixture(scope="module")
def staged_corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("staged") / "corpus"
    write_corpus(staged_examples(48), path)
    return path


@pytest.mark.parametrize("num_workers", [0, 2])
def test_curriculum_switches_exactly_at_its_steps(staged_corpus, num_workers):
    curriculum = MaskingCurriculum({"phrase": 3, "entity": 9})
    data = PretrainDataModule(str(staged_corpus), str(VOCAB), batch_size=4, max_length=32, mask_prob=0.5,
                              num_workers=num_workers, val_fraction=0)
    data.collator.max_predictions = 32
    model = _Recorder()
    trainer = pl.Trainer(max_steps=16, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[curriculum])
    trainer.fit(model, datamodule=data)
    assert [s for s, _ in model.seen] == list(range(16))          # 12 batches per epoch: crosses an epoch
    assert [built for _, built in model.seen] == [curriculum.level_at(s) for s in range(16)]


def test_masks_are_seeded_by_batch_and_differ_by_epoch(staged_corpus):
    data = PretrainDataModule(str(staged_corpus), str(VOCAB), masking="basic", batch_size=4, max_length=32,
                              val_fraction=0)
    data.setup()
    loader = data.train_dataloader()
    first = [b["labels"] for b in loader]
    again = [b["labels"] for b in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, again))    # same epoch: same batches
    loader.batch_sampler.set_epoch(1)
    later = [b["labels"] for b in loader]
    assert not any(torch.equal(a, b) for a, b in zip(first, later))  # next epoch: new masks (and order)


def test_validation_split_and_vocab_size(staged_corpus):
    data = PretrainDataModule(str(staged_corpus), str(VOCAB), batch_size=4, val_fraction=0.25)
    data.setup()
    assert len(data.val_indices) == 12 and len(data.train_indices) == 36
    assert not set(data.val_indices) & set(data.train_indices)
    assert data.vocab_size == 30522
    val = [b["labels"] for b in data.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(val, [b["labels"] for b in data.val_dataloader()]))
    assert np.concatenate([v.ne(-100).sum(1).numpy() for v in val]).sum() > 0


def test_uncased_vocab_is_detected_despite_non_ascii_capitals(tmp_path):
    """The shipped bert-base-uncased vocab holds 'ℝ' (upper-case to Python): it must still lowercase,
    or every capitalised word becomes [UNK]. A vocab with ASCII capitals is cased."""
    from kept.train.data import load_tokenizer, vocab_is_uncased

    vocab = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"
    assert vocab_is_uncased(vocab)
    tok = load_tokenizer(vocab)
    ids = tok("Louis Jules Trochu was a French military leader", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    cased = tmp_path / "vocab.txt"
    cased.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nThe\nthe\n##s\n")
    assert not vocab_is_uncased(cased)
    assert load_tokenizer(cased)("The", add_special_tokens=False)["input_ids"] == [5]
