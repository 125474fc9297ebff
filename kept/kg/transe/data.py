"""Training data for TransE: splits of a KG store, seeded shuffling, vectorised negatives.

* Splits: the store's ``train``/``valid``/``test`` when it has them, otherwise a seeded
  90 / 5 / 5 % split of ``store.triples`` (:func:`split_triples`).
* Shuffling: each epoch is a permutation drawn from a generator seeded by (seed, epoch),
  so an epoch's batches do not depend on what ran before: a run resumed from a
  checkpoint sees exactly the batches of a run that never stopped.
* Groups: the DataLoader hands out groups of ``group_size`` consecutive batches (default
  8), each batch one optimizer step of the training step. A step is a few milliseconds on
  a CPU; the fixed cost of a DataLoader item and of Lightning's loop around a training
  step is then paid once per group instead of once per step. The batches, their order and
  their negatives do not depend on the group size.
* Negatives (:func:`sample_negatives`): for a batch of B triples, one draw decides per
  triple whether its head or its tail is replaced (``uniform``: 50 / 50; ``bern``: with
  the per-relation probability of Wang et al. 2014, :func:`bernoulli_head_probability`)
  and one draw gives ``[c, k]`` uniformly random entities, chunk j's k negatives shared by
  its ⌈B / c⌉ triples. The generator is seeded by (seed, epoch, batch number).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from kept.kg.store import KGStore, open_store
from kept.kg.transe.evaluate import EvalBatches, KnownTriples, auto_batch_size

SPLIT_FRACTIONS = (0.90, 0.05, 0.05)


def _seed(*values: int) -> int:
    """A well-mixed 63-bit seed from integers (NumPy's SeedSequence)."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def split_triples(triples: np.ndarray, seed: int,
                  fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> dict[str, np.ndarray]:
    """Seeded random split of triples into train / valid / test (default 90 / 5 / 5 %).

    valid and test get ``round(fraction · n)`` triples each (at least 1 when n ≥ 3); train the rest.
    """
    n = len(triples)
    order = np.random.default_rng(seed).permutation(n)
    n_valid = max(int(round(fractions[1] * n)), 1 if n >= 3 else 0)
    n_test = max(int(round(fractions[2] * n)), 1 if n >= 3 else 0)
    parts = {"valid": order[:n_valid], "test": order[n_valid : n_valid + n_test],
             "train": order[n_valid + n_test :]}
    return {name: np.asarray(triples)[np.sort(rows)] for name, rows in parts.items()}


def bernoulli_head_probability(triples: np.ndarray, num_relations: int) -> np.ndarray:
    """float32 [R]: probability of corrupting the head for each relation (Wang et al., 2014).

    ``tph`` = mean number of tails per (head, relation), ``hpt`` = mean number of heads per
    (relation, tail); the head is replaced with probability ``tph / (tph + hpt)`` (so
    one-to-many relations corrupt the head more). Relations without triples get 0.5.
    """
    h, r, t = (np.asarray(triples[:, i], dtype=np.int64) for i in range(3))
    n = max(int(h.max(initial=0)), int(t.max(initial=0))) + 1
    count = np.bincount(r, minlength=num_relations).astype(np.float64)
    n_heads = np.bincount(np.unique(r * n + h) // n, minlength=num_relations)  # distinct (r, h) per r
    n_tails = np.bincount(np.unique(r * n + t) // n, minlength=num_relations)  # distinct (r, t) per r
    with np.errstate(divide="ignore", invalid="ignore"):
        tph, hpt = count / n_heads, count / n_tails
        prob = tph / (tph + hpt)
    return np.where(count > 0, prob, 0.5).astype(np.float32)


def sample_negatives(triples: Tensor, head_probability: Tensor, num_entities: int, negatives: int,
                     chunk_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Vectorised corruption of a batch.

    triples: [B, 3] int64; head_probability: [R] float (0.5 everywhere = uniform sampler);
    negatives: k per positive; chunk_size: triples sharing negatives (0 = the whole batch).
    Returns corrupt_head [B] bool and negatives [c, k] int64 with c = ⌈B / chunk_size⌉.
    """
    B = len(triples)
    chunk = B if chunk_size <= 0 else min(chunk_size, B)
    corrupt_head = torch.rand(B, generator=generator) < head_probability[triples[:, 1]]  # [B]
    entities = torch.randint(num_entities, (-(-B // chunk), negatives), generator=generator)  # [c, k]
    return corrupt_head, entities


class EpochBatchSampler(Sampler):
    """Yields groups of batches of a seeded permutation of ``n`` rows: ``(epoch, [(batch number, row indices), ...])``.

    Batch i of an epoch holds permutation rows i·batch_size .. (i+1)·batch_size − 1; a
    group holds ``group_size`` consecutive batches of this process. Lightning calls
    :meth:`set_epoch` before each epoch. Under torch.distributed each process takes every
    ``world_size``-th batch (equal counts, the remainder dropped).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, group_size: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.group_size = rank, world_size, group_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def num_batches(self) -> int:
        """Batches of this process per epoch."""
        return (-(-self.n // self.batch_size)) // self.world_size

    def __len__(self) -> int:
        return -(-self.num_batches() // self.group_size)

    def __iter__(self) -> Iterator[tuple[int, list[tuple[int, Tensor]]]]:
        generator = torch.Generator().manual_seed(_seed(self.seed, self.epoch))
        order = torch.randperm(self.n, generator=generator)  # [n]
        numbers = [i * self.world_size + self.rank for i in range(self.num_batches())]
        for start in range(0, len(numbers), self.group_size):
            yield self.epoch, [(number, order[number * self.batch_size : (number + 1) * self.batch_size])
                               for number in numbers[start : start + self.group_size]]


class TrainBatches(Dataset):
    """Maps a key of :class:`EpochBatchSampler` to its group of training batches with their negatives.

    A batch is ``{"triples": [B, 3] int64, "corrupt_head": [B] bool, "negatives": [c, k] int64}``;
    its negatives are drawn from a generator seeded by (seed, epoch, batch number).
    """

    def __init__(self, triples: np.ndarray, head_probability: np.ndarray, num_entities: int,
                 negatives: int, chunk_size: int, seed: int):
        self.triples = torch.from_numpy(np.ascontiguousarray(triples, dtype=np.int64))  # [n, 3]
        self.head_probability = torch.from_numpy(head_probability)
        self.num_entities, self.negatives, self.chunk_size, self.seed = num_entities, negatives, chunk_size, seed

    def __len__(self) -> int:
        return len(self.triples)

    def batch(self, epoch: int, number: int, rows: Tensor) -> dict[str, Tensor]:
        triples = self.triples[rows]
        generator = torch.Generator().manual_seed(_seed(self.seed, epoch, number, 1))
        corrupt_head, negatives = sample_negatives(triples, self.head_probability, self.num_entities,
                                                   self.negatives, self.chunk_size, generator)
        return {"triples": triples, "corrupt_head": corrupt_head, "negatives": negatives}

    def __getitem__(self, key: tuple[int, list[tuple[int, Tensor]]]) -> list[dict[str, Tensor]]:
        epoch, batches = key
        return [self.batch(epoch, number, rows) for number, rows in batches]


class TransEDataModule(pl.LightningDataModule):
    """Train / valid / test triples of a KG store for :class:`kept.kg.transe.TransELightning`.

    Args:
        store: a :class:`KGStore` or its path.
        batch_size: positive triples per training batch (default 1024).
        negatives: negatives per positive (default 256).
        chunk_size: triples sharing their negatives (0 = the whole batch; 1 = independent).
        sampler: "bern" (default) or "uniform" head/tail corruption.
        seed: seed of the fallback split, the shuffling and the negatives.
        eval_batch_size: triples per evaluation batch (0 = automatic, see ``auto_batch_size``).
        group_size: training batches per DataLoader item (default 8; see the module docstring;
            1 when training runs in several processes).
    """

    def __init__(self, store: KGStore | str, batch_size: int = 1024, negatives: int = 256, chunk_size: int = 0,
                 sampler: str = "bern", seed: int = 0, eval_batch_size: int = 0, group_size: int = 8):
        super().__init__()
        self.group_size = group_size
        self.store = store if isinstance(store, KGStore) else open_store(store)
        self.batch_size, self.negatives, self.chunk_size = batch_size, negatives, chunk_size
        self.sampler, self.seed = sampler, seed
        self.eval_batch_size = eval_batch_size or auto_batch_size(self.store.num_entities)
        self.splits: dict[str, np.ndarray] = {}
        self.known: KnownTriples | None = None

    @property
    def split_source(self) -> str:
        """"store" when the store has train/valid/test splits, else "seeded 90/5/5"."""
        have = set(self.store.split_names)
        return "store" if {"train", "valid", "test"} <= have else "seeded 90/5/5"

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if self.split_source == "store":
            self.splits = {name: np.asarray(self.store.split(name)) for name in ("train", "valid", "test")}
        else:
            self.splits = split_triples(np.asarray(self.store.triples), self.seed)
        self.known = KnownTriples(np.asarray(self.store.triples), self.store.num_relations)

    def head_probability(self) -> np.ndarray:
        if self.sampler == "bern":
            return bernoulli_head_probability(self.splits["train"], self.store.num_relations)
        return np.full(self.store.num_relations, 0.5, dtype=np.float32)

    def train_dataloader(self) -> DataLoader:
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        train = self.splits["train"]
        batches = TrainBatches(train, self.head_probability(), self.store.num_entities, self.negatives,
                               self.chunk_size, self.seed)
        # DDP synchronises gradients once per forward through its wrapper, i.e. per training step:
        # with several processes every optimizer step needs its own, so groups hold one batch
        group_size = self.group_size if world == 1 else 1
        sampler = EpochBatchSampler(len(train), min(self.batch_size, len(train)), self.seed, rank, world, group_size)
        return DataLoader(batches, sampler=sampler, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(EvalBatches(self.splits["valid"], self.known, self.eval_batch_size), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(EvalBatches(self.splits["test"], self.known, self.eval_batch_size), batch_size=None)
