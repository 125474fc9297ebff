"""Exact resume: a run restarted from a mid-epoch checkpoint sees the same batches and ends with the same weights."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from kept.data.examples import LinkedCorpus, LinkedExample, write_corpus
from kept.data.loading import CorpusDataset, EpochBatchSampler, ResumableDataModule
from kept.train.mlm import MaskedLMModule


def _collate(items):
    """Token masking seeded by (epoch, batch index) only, as the real collators are."""
    epoch, batch_index = items[0][0], items[0][1]
    rng = np.random.default_rng([7, epoch, batch_index])
    length = max(len(x[2]) for x in items) + 2
    ids = np.zeros((len(items), length), np.int64)
    att = np.zeros_like(ids)
    for j, (_, _, ex) in enumerate(items):
        ids[j, 0], ids[j, 1 : 1 + len(ex)], ids[j, 1 + len(ex)] = 2, ex.input_ids, 3
        att[j, : len(ex) + 2] = 1
    labels = np.where((rng.random(ids.shape) < 0.3) & (att == 1), ids, -100)
    return {"input_ids": torch.tensor(np.where(labels != -100, 4, ids)), "attention_mask": torch.tensor(att),
            "labels": torch.tensor(labels)}


class _Data(ResumableDataModule):
    def __init__(self, corpus, num_workers):
        super().__init__()
        self.corpus, self.num_workers = corpus, num_workers

    def train_dataloader(self):
        return self.train_loader(CorpusDataset(self.corpus), _collate, batch_size=8, seed=1,
                                 num_workers=self.num_workers)


class _Record(pl.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append((trainer.current_epoch, batch_idx, int(batch["input_ids"].sum())))


def _run(corpus, ckpt_dir, num_workers, resume=None):
    model = MaskedLMModule(vocab_size=100, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                           max_position_embeddings=64, warmup_steps=2)
    record = _Record()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=3, save_top_k=-1, filename="{step}")
    trainer = pl.Trainer(max_epochs=3, callbacks=[record, ckpt], logger=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, _Data(corpus, num_workers), ckpt_path=resume)
    return record.seen, model.model.cls.predictions.decoder.weight.detach().clone()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("corpus") / "c"
    write_corpus([LinkedExample("t", rng.integers(5, 100, rng.integers(5, 20))) for _ in range(50)], path)
    return LinkedCorpus(path)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_mid_epoch_resume_is_exact(corpus, tmp_path, num_workers):
    seen, weights = _run(corpus, tmp_path / "full", num_workers)
    assert len(seen) == 21  # 3 epochs x 7 batches
    for step in (9, 12):  # mid-epoch checkpoints of epoch 1
        resumed, resumed_weights = _run(corpus, tmp_path / f"r{step}", num_workers,
                                        resume=str(tmp_path / "full" / f"step={step}.ckpt"))
        assert resumed == seen[step:]
        assert torch.equal(resumed_weights, weights)


def test_sampler_orders_differ_by_epoch_and_cover_everything():
    s = EpochBatchSampler(23, 5, seed=3)
    first = [i for batch in s for (_, _, i) in batch]
    s.set_epoch(1)
    second = [i for batch in s for (_, _, i) in batch]
    assert sorted(first) == sorted(second) == list(range(23)) and first != second
    assert len(s) == 5 and [len(b) for b in s] == [5, 5, 5, 5, 3]
