"""TransE: math, negative sampling, Lightning training and resume, store files, OpenKE export, CLI."""

import gzip
import json
import shutil

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from conftest import need_data
from torch import nn

from kept.cli import main
from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store
from kept.kg.transe.data import (
    EpochBatchSampler,
    TrainBatches,
    TransEDataModule,
    bernoulli_head_probability,
    sample_negatives,
    split_triples,
)
from kept.kg.transe.io import export_openke, load_openke, write_embeddings
from kept.kg.transe.lightning import TransELightning
from kept.kg.transe.model import (
    LazyAdam,
    TransE,
    TransEConfig,
    TransELoss,
    batch_loss,
    loss_and_gradient,
    margin_ranking_loss,
    row_norm,
    self_adversarial_loss,
)
from kept.kg.transe import optim as optim_module
from kept.kg.transe.optim import unique_rows
from kept.kg.transe.train import train_transe

torch.set_num_threads(2)


# ---- a small real KG: the 300 entities of highest degree in FB15k-237 and their triples ---------
def _read_split(path):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as f:
        f.readline()
        return np.loadtxt(f, dtype=np.int64).reshape(-1, 3)  # OpenKE order: h t r


@pytest.fixture(scope="module")
def fb_small(tmp_path_factory):
    src = need_data("kge", "FB15k-237")
    splits = {name: _read_split(next(src.glob(f"{name}2id.txt*"))) for name in ("train", "valid", "test")}
    train = splits["train"]
    names = [line.split("\t")[0] for line in (src / "entity2id.txt").read_text().splitlines()[1:]]
    degree = np.bincount(train[:, :2].ravel(), minlength=len(names))
    keep = np.zeros(len(degree), bool)
    keep[np.argsort(-degree, kind="stable")[:300]] = True
    relations = [line.split("\t")[0] for line in (src / "relation2id.txt").read_text().splitlines()[1:]]
    out = tmp_path_factory.mktemp("fb_small") / "openke"
    out.mkdir()
    new_id = -np.ones(len(degree), np.int64)
    new_id[keep] = np.arange(keep.sum())
    rel_used = np.unique(train[keep[train[:, 0]] & keep[train[:, 1]], 2])
    new_rel = -np.ones(len(relations), np.int64)
    new_rel[rel_used] = np.arange(len(rel_used))
    for name, rows in splits.items():
        rows = rows[keep[rows[:, 0]] & keep[rows[:, 1]] & (new_rel[rows[:, 2]] >= 0)]
        lines = [f"{new_id[h]} {new_id[t]} {new_rel[r]}" for h, t, r in rows.tolist()]
        (out / f"{name}2id.txt").write_text(f"{len(lines)}\n" + "\n".join(lines) + "\n")
    kept_names = [names[i] for i in np.flatnonzero(keep)]
    (out / "entity2id.txt").write_text(f"{len(kept_names)}\n" + "".join(f"{n}\t{i}\n" for i, n in
                                                                       enumerate(kept_names)))
    (out / "relation2id.txt").write_text(f"{len(rel_used)}\n" + "".join(
        f"{relations[r]}\t{i}\n" for i, r in enumerate(rel_used.tolist())))
    store_path = out.parent / "store"
    build_store([(out, "openke")], store_path, BuildOptions(progress=False))
    return open_store(store_path)


def _trainer(epochs, **kwargs):
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, enable_checkpointing=False,
                      use_distributed_sampler=False, **kwargs)


SMALL = dict(dim=32, batch_size=256, negatives=32, lr=0.01, eval_every=1)


# ---- math ------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("n_chunks", [1, 3, 10])
def test_forward_matches_per_triple_distances(p, n_chunks):
    g = torch.Generator().manual_seed(0)
    model = TransE(20, 4, 8, p=p, generator=g)
    triples = torch.stack([torch.randint(20, (10,), generator=g), torch.randint(4, (10,), generator=g),
                           torch.randint(20, (10,), generator=g)], dim=1)
    corrupt_head = torch.rand(10, generator=g) < 0.5
    negatives = torch.randint(20, (n_chunks, 5), generator=g)
    negatives[0, 0] = triples[0, 0] if corrupt_head[0] else triples[0, 2]  # a negative equal to the truth
    pos, neg, mask = model(triples, corrupt_head, negatives)
    E, R = model.entity.detach(), model.relation.detach()
    chunk = -(-10 // n_chunks)
    for i, (h, r, t) in enumerate(triples.tolist()):
        assert pos[i].item() == pytest.approx(torch.linalg.vector_norm(E[h] + R[r] - E[t], ord=p).item(), rel=1e-5)
        for j, e in enumerate(negatives[i // chunk].tolist()):
            hh, tt = (e, t) if corrupt_head[i] else (h, e)
            want = torch.linalg.vector_norm(E[hh] + R[r] - E[tt], ord=p).item()
            assert neg[i, j].item() == pytest.approx(want, rel=1e-4, abs=1e-4)
            assert mask[i, j].item() == (e != (h if corrupt_head[i] else t))
    assert not mask[0, 0]


def test_losses():
    pos, neg = torch.tensor([1.0, 2.0]), torch.tensor([[2.5, 0.5], [4.0, 1.0]])
    mask = torch.tensor([[True, True], [True, False]])
    # hinge max(0, 1 + pos - neg): [[0, 1.5], [0, (masked)]]
    assert margin_ranking_loss(pos, neg, 1.0, mask).item() == pytest.approx(1.5 / 3)
    gamma, alpha = 3.0, 2.0
    w = torch.softmax(-alpha * neg[0], 0)
    want = (-torch.nn.functional.logsigmoid(gamma - pos).mean()
            - ((w * torch.nn.functional.logsigmoid(neg[0] - gamma)).sum()
               + torch.nn.functional.logsigmoid(neg[1, 0] - gamma)) / 2) / 2
    assert self_adversarial_loss(pos, neg, gamma, alpha, mask).item() == pytest.approx(want.item(), rel=1e-6)


@pytest.mark.parametrize("compile_from", [0, 1], ids=["eager", "compiled"])
def test_lazy_adam_is_sparse_adam(compile_from):
    """Same rule as torch.optim.SparseAdam (the compiled kernel falls back to eager without a compiler)."""
    g = torch.Generator().manual_seed(0)
    ours, ref = nn.Embedding(40, 6, sparse=True), nn.Embedding(40, 6, sparse=True)
    ref.weight.data.copy_(ours.weight.data)
    opt_ours = LazyAdam(ours.parameters(), lr=0.01, compile_from=compile_from)
    opt_ref = torch.optim.SparseAdam(list(ref.parameters()), lr=0.01)
    for _ in range(5):
        ids = torch.randint(40, (25,), generator=g)  # with duplicates
        weights = torch.randn(25, 6, generator=g)
        for emb, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad()
            (emb(ids) * weights).sum().backward()
            opt.step()
    torch.testing.assert_close(ours.weight, ref.weight, rtol=1e-5, atol=1e-6)
    untouched = torch.ones(40, dtype=torch.bool)
    untouched[ids] = False
    # rows below 20 kept at unit norm (TransE: its entity rows come first in the table)
    unit = LazyAdam([{"params": ours.parameters(), "unit_norm_rows": 20}], lr=0.01, compile_from=compile_from)
    before = ours.weight.detach().clone()
    (ours(ids) * weights).sum().backward()
    unit.step()
    moved = torch.unique(ids)
    norms = ours.weight[moved].norm(dim=1)
    torch.testing.assert_close(norms[moved < 20], torch.ones_like(norms[moved < 20]))  # moved rows renormalised
    assert (norms[moved >= 20] - 1).abs().min() > 1e-3  # moved rows past unit_norm_rows keep their norm
    assert torch.equal(ours.weight[untouched], before[untouched])  # the others untouched


@pytest.mark.parametrize("num_rows, n", [(40, 25), (14_778, 4_096), (100_000, 300), (50, 0)])
def test_unique_rows_is_torch_unique(num_rows, n):
    """The mark-array path (small tables) and the sorting path give torch.unique's exact tensors."""
    ids = torch.randint(num_rows, (n,), generator=torch.Generator().manual_seed(n))
    rows, inverse = unique_rows(ids, num_rows)
    want_rows, want_inverse = torch.unique(ids, return_inverse=True)
    assert torch.equal(rows, want_rows) and torch.equal(inverse, want_inverse)
    assert rows.dtype == want_rows.dtype and inverse.dtype == want_inverse.dtype


def test_lazy_adam_mark_path_gives_the_same_weights(monkeypatch):
    """LazyAdam through the mark array and through torch.unique: bit-identical weights and moments."""
    tables = []
    for mark in (True, False):
        monkeypatch.setattr(optim_module, "MARK_ROWS_PER_ID", 16 if mark else 0)
        g = torch.Generator().manual_seed(0)
        emb = nn.Embedding(60, 5, sparse=True)
        emb.weight.data.copy_(torch.randn(60, 5, generator=g))
        opt = LazyAdam([{"params": emb.parameters(), "unit_norm_rows": 30}], lr=0.01, compile_from=0)
        for _ in range(4):
            ids = torch.randint(60, (40,), generator=g)
            opt.zero_grad()
            (emb(ids) * torch.randn(40, 5, generator=g)).sum().backward()
            opt.step()
        tables.append((emb.weight.detach().clone(), opt.state[emb.weight]["moments"].clone()))
    assert torch.equal(tables[0][0], tables[1][0]) and torch.equal(tables[0][1], tables[1][1])


@pytest.mark.parametrize("p", [1, 2])
def test_row_norm_is_vector_norm(p):
    x = torch.randn(7, 3, 5, generator=torch.Generator().manual_seed(p))
    x[0, 0, 0] = 0.0  # the L1 gradient at 0 is 0 in both
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.randn(7, 3)
    (row_norm(a, p) * weights).sum().backward()
    (torch.linalg.vector_norm(b, ord=p, dim=-1) * weights).sum().backward()
    torch.testing.assert_close(row_norm(x, p), torch.linalg.vector_norm(x, ord=p, dim=-1))
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize(("p", "temperature", "n_chunks"), [(1, 0.0, None), (2, 1.0, None), (2, 1.0, 4)],
                         ids=["L1-margin", "L2-adversarial", "L2-shared-negatives"])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_fused_loss_gives_autograd_gradients(p, temperature, n_chunks, compiled):
    """loss_and_gradient (the loss with its row gradients in one call; torch.compile-fused
    when compiled, eager where no compiler is available), and TransELoss, which hands its
    gradient over through autograd, give the loss and the table gradient, sparse and dense,
    of plain autograd through the lookups."""
    g = torch.Generator().manual_seed(1)
    B, k, N, R = 37, 3, 15, 4  # an odd batch (the last of an epoch is smaller); few entities: duplicate rows
    model = TransE(N, R, 8, p=p, generator=g, normalize=False)
    triples = torch.stack([torch.randint(N, (B,), generator=g), torch.randint(R, (B,), generator=g),
                           torch.randint(N, (B,), generator=g)], dim=1)
    corrupt_head = torch.rand(B, generator=g) < 0.5
    negatives = torch.randint(N, (n_chunks or B, k), generator=g)
    e_h, w_r, e_t, e_neg, mask = model.lookup(triples, corrupt_head, negatives)
    assert not mask.all()  # some corruptions are the true triple: masked out
    want = batch_loss(e_h, w_r, e_t, e_neg, corrupt_head, mask, p, 2.0, temperature)
    want.backward()
    want_grad = model.weight.grad.clone()  # [N + R, d]
    assert want_grad[N:].abs().sum() > 0  # relation rows get gradients too
    args = (triples, corrupt_head, negatives, N, p, 2.0, temperature)
    for sparse in (True, False):
        loss, grad = loss_and_gradient(model.weight, *args, sparse, compiled)
        model.zero_grad()
        TransELoss.apply(model.weight, *args, sparse, compiled).backward()
        for got in (grad, model.weight.grad):
            assert got.is_sparse == sparse
            torch.testing.assert_close(got.to_dense(), want_grad, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(loss, want.detach(), rtol=1e-5, atol=1e-6)
    model.zero_grad()  # a loss scaled before backward scales the gradient
    (3 * TransELoss.apply(model.weight, *args, False, compiled)).backward()
    torch.testing.assert_close(model.weight.grad, 3 * want_grad, rtol=1e-5, atol=1e-6)


# ---- sampling and splits ----------------------------------------------------------------------
def test_bernoulli_probability():
    # relation 0: one head with 3 tails (1-to-N: tph 3, hpt 1) -> corrupt head with p = 3/4
    # relation 1: 2 heads -> one tail (N-to-1: tph 1, hpt 2) -> p = 1/3; relation 2: unused -> 0.5
    triples = np.array([[0, 0, 1], [0, 0, 2], [0, 0, 3], [4, 1, 5], [6, 1, 5]])
    np.testing.assert_allclose(bernoulli_head_probability(triples, 3), [0.75, 1 / 3, 0.5], rtol=1e-6)


def test_sample_negatives_shapes_and_seed():
    triples = torch.tensor([[0, 0, 1]] * 10)
    probability = torch.tensor([1.0])
    a = sample_negatives(triples, probability, 50, 7, 4, torch.Generator().manual_seed(3))
    b = sample_negatives(triples, probability, 50, 7, 4, torch.Generator().manual_seed(3))
    assert a[0].all() and a[1].shape == (3, 7) and torch.equal(a[1], b[1])
    assert sample_negatives(triples, probability, 50, 7, 0, torch.Generator())[1].shape == (1, 7)


def _batches(sampler):
    return [(number, rows) for _, group in sampler for number, rows in group]


def test_epoch_sampler_is_a_seeded_permutation_per_epoch():
    sampler = EpochBatchSampler(10, 4, seed=1)
    first = [rows for _, rows in _batches(sampler)]
    assert sorted(torch.cat(first).tolist()) == list(range(10)) and [len(r) for r in first] == [4, 4, 2]
    assert torch.equal(torch.cat(first), torch.cat([r for _, r in _batches(sampler)]))  # same epoch, same order
    sampler.set_epoch(1)
    assert not torch.equal(torch.cat(first), torch.cat([r for _, r in _batches(sampler)]))
    ranks = [_batches(EpochBatchSampler(10, 2, seed=1, rank=k, world_size=2)) for k in (0, 1)]
    rows = [set(torch.cat([r for _, r in x]).tolist()) for x in ranks]
    assert len(ranks[0]) == len(ranks[1]) == 2 and not rows[0] & rows[1]


def test_groups_hold_the_same_batches():
    """Grouping batches (several optimizer steps per DataLoader item) changes neither the
    batches, their order nor their negatives."""
    triples = np.random.default_rng(0).integers(0, 50, (23, 3))
    dataset = TrainBatches(triples, np.full(50, 0.5, dtype=np.float32), 50, 3, 1, seed=4)
    loaded = {}
    for group_size in (1, 3, 8):
        sampler = EpochBatchSampler(len(triples), 4, seed=2, group_size=group_size)
        sampler.set_epoch(1)
        groups = [dataset[key] for key in sampler]
        assert len(groups) == len(sampler) == -(-6 // group_size) and all(len(g) <= group_size for g in groups)
        loaded[group_size] = [b for g in groups for b in g]
    for batches in (loaded[3], loaded[8]):
        assert len(batches) == len(loaded[1]) == 6
        for ours, ref in zip(batches, loaded[1]):
            assert all(torch.equal(ours[k], ref[k]) for k in ref)


def test_split_triples_is_seeded_90_5_5():
    triples = np.arange(300).reshape(100, 3)
    a, b = split_triples(triples, 0), split_triples(triples, 0)
    assert [len(a[k]) for k in ("train", "valid", "test")] == [90, 5, 5]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sorted(np.concatenate(list(a.values()))[:, 0].tolist()) == list(range(0, 300, 3))


# ---- training -----------------------------------------------------------------------------------
class _Record(pl.Callback):
    """Mean training loss and validation MRR of each epoch."""

    def __init__(self):
        self.loss, self.mrr, self._batch_losses = [], [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._batch_losses.append(float(outputs["loss"]))

    def on_validation_epoch_end(self, trainer, pl_module):
        self.loss.append(float(np.mean(self._batch_losses)))
        self._batch_losses = []

    def on_validation_end(self, trainer, pl_module):
        self.mrr.append(float(trainer.callback_metrics["valid/mrr"]))


@pytest.mark.parametrize("bordes", [False, True], ids=["recipe", "bordes"])
def test_loss_decreases_and_mrr_rises(fb_small, bordes):
    """The default recipe, and Bordes et al.'s setting (margin loss, unit-norm entities)."""
    bordes_settings = {"adversarial_temperature": 0.0, "margin": 1.0, "normalize_entities": True, "sampler": "uniform"}
    config = TransEConfig(**{**SMALL, **(bordes_settings if bordes else {})})
    data = TransEDataModule(fb_small, config.batch_size, config.negatives, sampler=config.sampler)
    module = TransELightning(fb_small.num_entities, fb_small.num_relations, config)
    untrained = _trainer(1).validate(module, datamodule=data, verbose=False)[0]["valid/mrr"]
    record = _Record()
    _trainer(8, callbacks=[record]).fit(module, datamodule=data)
    assert record.loss[-1] < 0.8 * record.loss[0]
    assert record.mrr[-1] > max(3 * untrained, 0.1), (untrained, record.mrr)
    if bordes:  # every entity renormalised, including those the last step did not touch
        norms = module.model.entity.norm(dim=1)
        torch.testing.assert_close(norms, torch.ones_like(norms))


@pytest.mark.parametrize("optimizer", ["sparse_adam", "adam"])
def test_resume_continues_identically(fb_small, tmp_path, optimizer):
    config = TransEConfig(**{**SMALL, "optimizer": optimizer, "normalize_entities": True})

    def fresh():
        data = TransEDataModule(fb_small, config.batch_size, config.negatives, seed=5)
        return TransELightning(fb_small.num_entities, fb_small.num_relations, config), data

    straight, data = fresh()
    _trainer(2).fit(straight, datamodule=data)
    first, data = fresh()
    trainer = _trainer(1)
    trainer.fit(first, datamodule=data)
    trainer.save_checkpoint(tmp_path / "one.ckpt")
    resumed, data = fresh()
    _trainer(2).fit(resumed, datamodule=data, ckpt_path=tmp_path / "one.ckpt")
    assert not torch.equal(first.model.weight, straight.model.weight)
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


@pytest.mark.parametrize("optimizer", ["sparse_adam", "adam"])
def test_ddp_steps_average_both_processes(fb_small, optimizer):
    """Two CPU processes (DDP over gloo): process k trains on batches k, k + 2, ... and every
    step applies the mean of the two batch gradients. The gradient goes through autograd
    (TransELoss) for DDP's hooks: sparse rows all-gathered (lazy Adam) or the dense table
    all-reduced (Adam). Checked against one process applying the same mean by hand."""
    config = TransEConfig(**{**SMALL, "optimizer": optimizer, "normalize_entities": True})
    data = TransEDataModule(fb_small, config.batch_size, config.negatives, seed=5)
    module = TransELightning(fb_small.num_entities, fb_small.num_relations, config)
    reference = TransELightning(fb_small.num_entities, fb_small.num_relations, config)  # the same initial weights
    initial = reference.model.weight.detach().clone()
    steps = 3
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         limit_val_batches=0, use_distributed_sampler=False)
    trainer.fit(module, datamodule=data)

    data.setup()
    train = data.splits["train"]
    batches = TrainBatches(train, data.head_probability(), fb_small.num_entities, config.negatives,
                           config.chunk_size, seed=5)
    keys = list(EpochBatchSampler(len(train), config.batch_size, seed=5))  # one process: batch i is key i
    reference_optimizer = reference.configure_optimizers()
    table = reference.model.weight
    for step in range(steps):
        grads = []
        for number in (2 * step, 2 * step + 1):  # the batch of process 0, then of process 1
            (batch,) = batches[keys[number]]
            grads.append(loss_and_gradient(table, batch["triples"], batch["corrupt_head"], batch["negatives"],
                                           fb_small.num_entities, config.norm, config.margin,
                                           config.adversarial_temperature, optimizer == "sparse_adam", False)[1])
        table.grad = (grads[0] + grads[1]) / 2
        reference_optimizer.step()
        if optimizer == "adam":
            reference.model.normalize_entities_()
    assert not torch.equal(module.model.weight, initial)
    torch.testing.assert_close(module.model.weight, table, rtol=1e-4, atol=1e-5)


def test_keeps_the_best_validated_weights(fb_small, tmp_path, monkeypatch):
    """When the last epoch validates worse than an earlier one, train_transe keeps the
    weights of the best checkpoint (here: the final weights are scrambled before the last
    validation)."""
    def scramble_last(self):
        if self.current_epoch == self.trainer.max_epochs - 1:
            with torch.no_grad():
                self.model.weight.normal_(generator=torch.Generator().manual_seed(0))

    monkeypatch.setattr(TransELightning, "on_validation_epoch_start", scramble_last)
    result = train_transe(fb_small, TransEConfig(**{**SMALL, "epochs": 3}), tmp_path / "work", accelerator="cpu",
                          devices=1, progress=False)
    assert result.metrics["kept_weights"] == "best" and result.metrics["kept_epoch"] == 2
    table = torch.load(tmp_path / "work" / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    table = table["model.table.weight"].numpy()
    assert np.array_equal(result.entity, table[: fb_small.num_entities])
    assert np.array_equal(result.relation, table[fb_small.num_entities :])


# ---- files: the store's embeddings/, OpenKE, the CLI ------------------------------------------
def test_openke_export_round_trips(fb_small, tmp_path):
    store = open_store(shutil.copytree(fb_small.path, tmp_path / "store"))
    with pytest.raises(KeyError, match="kept kg embed"):
        store.entity_vectors()
    rng = np.random.default_rng(0)
    entity = rng.normal(size=(store.num_entities, 6)).astype(np.float32)
    relation = rng.normal(size=(store.num_relations, 6)).astype(np.float32)
    write_embeddings(store, entity, relation, {}, {})
    assert np.array_equal(store.entity_vectors(), entity) and np.array_equal(store.relation_vectors(), relation)
    entities, relations, e, r = load_openke(export_openke(store, tmp_path / "kg_embed"))
    assert entities == [store.entity_key(i) for i in range(store.num_entities)]
    assert relations == [store.relation_key(i) for i in range(store.num_relations)]
    assert np.array_equal(e, entity) and np.array_equal(r, relation)  # exact float32 round trip
    lines = (tmp_path / "kg_embed" / "entity2id.txt").read_text().splitlines()
    assert lines[0] == str(store.num_entities) and lines[1] == f"{store.entity_key(0)}\t0"


def test_cli_embed_end_to_end(medical_store, tmp_path, capsys):
    """A store without splits (seeded 90/5/5): train, write files, export, re-evaluate, resume."""
    store_path = shutil.copytree(medical_store.path, tmp_path / "medical")
    args = ["kg", "embed", str(store_path), "--dim", "8", "--epochs", "2", "--eval-every", "1",
            "--negatives", "8", "--batch-size", "2048", "--no-progress", "--json",
            "--export-openke", str(tmp_path / "openke")]
    assert main(args) == 0
    out = store_path / "embeddings" / "transe"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "entity.npy", "metrics.json", "relation.npy"]
    store = open_store(store_path)
    assert store.entity_vectors().shape == (store.num_entities, 8) and store.entity_vectors().dtype == np.float32
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["split"] == "seeded 90/5/5" and config["dim"] == 8 and metrics["epochs"] == 2
    assert set(metrics["test"]) == {"head", "tail", "overall"}
    assert metrics["test"]["overall"]["count"] == 2 * config["test_triples"]
    printed = json.loads(capsys.readouterr().out)
    assert printed["test"] == metrics["test"]
    _, _, e, _ = load_openke(tmp_path / "openke")
    assert np.array_equal(e, store.entity_vectors())

    assert main(["kg", "embed", str(store_path), "--evaluate-only", "--json"]) == 0
    captured = capsys.readouterr()
    again = json.loads(captured.out)
    assert again == {"valid": metrics["valid"], "test": metrics["test"]}
    assert "matches" in captured.err

    assert main(["kg", "embed", str(store_path), "--resume", "--epochs", "3", "--no-progress", "--json"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3
    assert json.loads((out / "config.json").read_text())["dim"] == 8  # the interrupted run's settings


def test_cli_errors(tmp_path, medical_store, capsys):
    store_path = shutil.copytree(medical_store.path, tmp_path / "medical")
    assert main(["kg", "embed", str(store_path), "--evaluate-only"]) == 2
    assert "kept kg embed" in capsys.readouterr().err
    assert main(["kg", "embed", str(store_path), "--resume"]) == 2
