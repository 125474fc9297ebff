"""ERNIE 3.0 UKTP: pairing vs brute force, labels, layout, masking rule, batch mix, learning, CLI, export, resume."""

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from conftest import ROOT, fit_batch

from kept.data.examples import LinkedCorpus, LinkedExample, write_corpus
from kept.fusion.uktp.data import (
    ELEMENTS,
    LabelTable,
    UktpCollator,
    build_label_tables,
    choose_triples,
    load_pairing,
    pair_triples,
)
from kept.fusion.uktp.train import (
    MixedBatchSampler,
    UktpDataModule,
    UktpModule,
    benchmark_batch,
    is_uktp_batch,
    uktp_batches_before,
    uktp_losses,
)
from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store
from kept.train.data import load_tokenizer

VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"
NAMES = ["paris", "france", "berlin", "germany", "rome", "italy", "madrid", "spain", "london", "england", "tokyo",
         "japan", "cairo", "egypt", "lima", "peru", "oslo", "norway", "vienna", "austria", "new york city"]
RELATIONS = ["capital of", "located in", "twinned with", "larger than"]
TINY = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_position_embeddings=128)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(VOCAB)


@pytest.fixture(scope="module")
def kg(tmp_path_factory):
    """A small store: random facts among NAMES (several relations per pair, one self-loop)."""
    rng = np.random.default_rng(0)
    lines = {f"{NAMES[h]}\t{RELATIONS[r]}\t{NAMES[t]}" for h, r, t in zip(rng.integers(0, len(NAMES), 90),
                                                                          rng.integers(0, 4, 90),
                                                                          rng.integers(0, len(NAMES), 90)) if h != t}
    lines |= {"paris\tcapital of\tfrance", "paris\tlocated in\tfrance", "rome\ttwinned with\trome"}
    path = tmp_path_factory.mktemp("kg") / "tiny.spo"
    path.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    out = path.parent / "store"
    build_store([(path, None)], out, BuildOptions(progress=False))
    return open_store(out)


def random_examples(store, n: int, seed: int = 0) -> list[LinkedExample]:
    """Sentences of random words with 0..5 mentions of random store entities (repeats included)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(rng.integers(12, 40))
        k = int(rng.integers(0, 6))
        starts = np.sort(rng.choice(np.arange(0, length - 1, 2), k, replace=False))
        out.append(LinkedExample("t", rng.integers(2000, 8000, length), entity_spans=np.stack([starts, starts + 1], 1),
                                 entity_ids=rng.integers(0, store.num_entities, k), entity_scores=np.ones(k)))
    return out


@pytest.fixture(scope="module")
def corpus(kg, tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "c"
    write_corpus(random_examples(kg, 120), path)
    return LinkedCorpus(path)


def brute_force(corpus, triples) -> list[list[int]]:
    """Rows of the triples (h != t) whose head and tail are both linked in each example, by plain loops."""
    out = []
    for i in range(len(corpus)):
        linked = set(corpus.field("entity_ids", i).tolist())
        out.append([k for k, (h, _, t) in enumerate(triples.tolist()) if h != t and h in linked and t in linked])
    return out


# ---- pairing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk_examples", [7, 65536])
def test_pairing_matches_brute_force(kg, corpus, chunk_examples):
    triples = np.asarray(kg.triples)
    pairing = pair_triples(corpus.arrays["entity_ids"], corpus.indptr["entities"], triples, kg.num_entities,
                           chunk_examples=chunk_examples)
    reference = brute_force(corpus, triples)
    assert sum(map(len, reference)) > 20 and any(not r for r in reference)
    for i in range(len(corpus)):
        rows = pairing.triple_rows[pairing.indptr[i] : pairing.indptr[i + 1]]
        assert rows.tolist() == reference[i], i
        linked = set(corpus.field("entity_ids", i).tolist())
        for h, r, t in pairing.triples[pairing.indptr[i] : pairing.indptr[i + 1]].tolist():
            assert h in linked and t in linked and h != t
            assert (h, r, t) in set(map(tuple, triples.tolist()))


def test_pairing_on_the_shipped_trex_corpus(trex_sample):
    store, corpus = open_store(trex_sample[0]), LinkedCorpus(trex_sample[1])
    pairing = pair_triples(corpus.arrays["entity_ids"], corpus.indptr["entities"], store.triples, store.num_entities)
    by_pair: dict[tuple[int, int], list[int]] = {}
    for k, (h, _, t) in enumerate(np.asarray(store.triples).tolist()):
        by_pair.setdefault((h, t), []).append(k)
    for i in range(len(corpus)):
        linked = set(corpus.field("entity_ids", i).tolist())
        expected = sorted(k for h in linked for t in linked if h != t for k in by_pair.get((h, t), []))
        assert pairing.triple_rows[pairing.indptr[i] : pairing.indptr[i + 1]].tolist() == expected
    assert (pairing.counts > 0).mean() > 0.9  # T-REx sentences were chosen for one of their facts


def test_pairing_cache_and_foreign_ids(kg, corpus, tmp_path):
    first = load_pairing(corpus, kg)
    cached = list(corpus.path.glob("uktp_pairs-*.npz"))
    assert len(cached) == 1
    again = load_pairing(corpus, kg)
    assert np.array_equal(first.triples, again.triples) and np.array_equal(first.indptr, again.indptr)
    write_corpus([LinkedExample("t", [5, 6], entity_spans=[[0, 1]], entity_ids=[kg.num_entities + 3],
                                entity_scores=[1.0])], tmp_path / "foreign")
    with pytest.raises(ValueError, match="foreign with store .*was the corpus linked against this store"):
        load_pairing(LinkedCorpus(tmp_path / "foreign"), kg)


def test_choose_triples_draws_among_the_pairs(kg, corpus):
    pairing = load_pairing(corpus, kg)
    rich = int(np.argmax(pairing.counts))
    assert pairing.counts[rich] >= 2
    paired = np.flatnonzero(pairing.counts > 0)
    generator = torch.Generator().manual_seed(0)
    for i, triple in zip(paired, choose_triples(pairing, paired, generator)):
        assert triple.tolist() in pairing.triples[pairing.indptr[i] : pairing.indptr[i + 1]].tolist()
    draws = choose_triples(pairing, np.full(4000, rich), generator)
    _, counts = np.unique(draws, axis=0, return_counts=True)
    assert len(counts) == pairing.counts[rich] and counts.min() > 0.8 * 4000 / len(counts)   # uniform
    with pytest.raises(ValueError, match="example .* has no triple"):
        choose_triples(pairing, np.flatnonzero(pairing.counts == 0)[:1], generator)


# ---- labels and layout ---------------------------------------------------------------------------
def test_label_table(tok):
    table = LabelTable.build(np.array([9, 2, 5]), ["new york city", "paris", ""], tok, max_tokens=2)
    starts, lengths = table.spans(np.array([2, 9, 5, 9]))
    pieces = [table.token_ids[s : s + n].tolist() for s, n in zip(starts, lengths)]
    assert pieces == [tok.convert_tokens_to_ids(["paris"]), tok.convert_tokens_to_ids(["new", "york"]),
                      [tok.unk_token_id], tok.convert_tokens_to_ids(["new", "york"])]
    with pytest.raises(KeyError, match="id 4"):
        table.spans(np.array([2, 4]))


def collator_for(kg, corpus, tok, **kwargs) -> UktpCollator:
    entity_labels, relation_labels = build_label_tables(kg, load_pairing(corpus, kg), tok, max_tokens=8)
    return UktpCollator(tok, entity_labels, relation_labels, **kwargs)


def test_layout_is_triple_then_sentence(kg, corpus, tok):
    collator = collator_for(kg, corpus, tok, max_length=40)
    paris, france = kg.entity_id("paris"), kg.entity_id("france")
    triple = [paris, kg.relation_id("capital of"), france]
    short = LinkedExample("s", tok.convert_tokens_to_ids(["it", "is", "paris", "."]))
    long = LinkedExample("l", np.arange(2000, 2100))
    batch = collator.layout([short, long], np.array([triple, triple]))
    words = lambda s: tok.convert_tokens_to_ids(s.split())  # noqa: E731
    head = [tok.cls_token_id, *words("paris capital of france"), tok.sep_token_id]
    expected_short = head + words("it is paris .") + [tok.sep_token_id]
    assert batch["input_ids"].shape == (2, 40)
    assert batch["input_ids"][0, : len(expected_short)].tolist() == expected_short
    assert (batch["input_ids"][0, len(expected_short) :] == tok.pad_token_id).all()
    assert batch["token_type_ids"][0].tolist() == [0] * len(head) + [1] * 5 + [0] * (40 - len(head) - 5)
    assert batch["attention_mask"][0].sum() == len(expected_short) and batch["attention_mask"][1].all()
    assert batch["element"][0, : len(head)].tolist() == [-1, 0, 1, 1, 2, -1]
    # the long sentence is cut to what fits after the triple, its [SEP] kept
    assert batch["input_ids"][1, len(head) : 39].tolist() == list(range(2000, 2000 + 39 - len(head)))
    assert batch["input_ids"][1, 39] == tok.sep_token_id
    padded = collator_for(kg, corpus, tok, max_length=64, pad_to_max_length=True).layout([short], np.array([triple]))
    assert padded["input_ids"].shape == (1, 64)
    with pytest.raises(ValueError, match="max_length 10 leaves no room"):
        collator_for(kg, corpus, tok, max_length=10)


@pytest.mark.parametrize("elements", [("head", "relation", "tail"), ("relation",), None])
def test_masking_rule(kg, corpus, tok, elements):
    if elements is None:  # the default is ERNIE 3.0's: the relation
        collator, elements = collator_for(kg, corpus, tok, max_length=64), ("relation",)
    else:
        collator = collator_for(kg, corpus, tok, max_length=64, triple_elements=elements)
    triple = [kg.entity_id("new york city"), kg.relation_id("twinned with"), kg.entity_id("paris")]
    sentence = LinkedExample("s", np.arange(3000, 3040))
    n = 3000
    layout = collator.layout([sentence] * n, np.array([triple] * n))
    ids, element = torch.from_numpy(layout["input_ids"]), torch.from_numpy(layout["element"])
    masked, labels = collator.mask(ids, element, torch.Generator().manual_seed(0))
    predicted = labels != -100
    assert torch.equal(labels[predicted], ids[predicted])                      # labels are the original ids
    assert not predicted[element == -1].any()                                  # never [CLS], [SEP], padding
    triple_pred = torch.stack([predicted[element == e].view(n, -1).float().mean(1) for e in range(3)], 1)  # [n, 3]
    assert set(triple_pred.unique().tolist()) <= {0.0, 1.0}                    # whole elements only
    assert (triple_pred.sum(1) == 1).all()                                     # exactly one element per sequence
    share = triple_pred.mean(0)
    for name in ("head", "relation", "tail"):
        expected = 1 / len(elements) if name in elements else 0.0
        assert abs(share[ELEMENTS[name]].item() - expected) < 0.04, (name, share)
    # one 80/10/10 draw per masked element: its tokens are all [MASK] or none is
    on_triple = (element >= 0) & (element < 3) & predicted
    mask_share = ((masked == tok.mask_token_id) & on_triple).sum(1) / on_triple.sum(1)          # [n]
    assert set(mask_share.unique().tolist()) <= {0.0, 1.0} and abs(mask_share.mean().item() - 0.8) < 0.03
    # sentence: 15 % of tokens, 80 / 10 / 10 per token
    sentence_pred = predicted[element == 3]
    assert abs(sentence_pred.float().mean().item() - 0.15) < 0.01
    chosen_masked, chosen_orig = masked[element == 3][sentence_pred], ids[element == 3][sentence_pred]
    assert abs((chosen_masked == tok.mask_token_id).float().mean().item() - 0.8) < 0.02
    assert abs((chosen_masked == chosen_orig).float().mean().item() - 0.1) < 0.02
    assert torch.equal(masked[~predicted], ids[~predicted])
    with pytest.raises(ValueError, match="triple_elements"):
        collator_for(kg, corpus, tok, triple_elements=("object",))


# ---- batch mix -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 0.57, 1.0])
def test_mix_fraction_is_exact_and_spread(fraction):
    kinds = [is_uktp_batch(b, fraction) for b in range(1000)]
    assert sum(kinds) == int(np.floor(1000 * fraction + 1e-9)) == uktp_batches_before(1000, fraction)
    for a in range(0, 1000, 100):  # evenly spread: every window has its share, +-1
        assert abs(sum(kinds[a : a + 100]) - 100 * fraction) <= 1
    with pytest.raises(ValueError, match="uktp_fraction"):
        is_uktp_batch(0, 1.5)


def test_mixed_sampler_pools_and_purity():
    paired = np.array([1, 4, 5, 9, 12])
    sampler = MixedBatchSampler(40, paired, batch_size=4, uktp_fraction=0.5, seed=3)
    batches = [[i for _, _, i in batch] for batch in sampler]
    assert len(batches) == 10 and all(len(b) == 4 for b in batches)
    for b, positions in enumerate(batches):
        if is_uktp_batch(b, 0.5):
            assert set(positions) <= set(paired.tolist())
    plain = [i for b, positions in enumerate(batches) if not is_uktp_batch(b, 0.5) for i in positions]
    assert len(set(plain)) == len(plain) == 20                                 # one permutation, no repeats
    fresh = MixedBatchSampler(40, paired, batch_size=4, uktp_fraction=0.5, seed=3)
    for b in [7, 2, 9, 0]:                                                     # any batch, in any order
        assert fresh.batch_positions(b).tolist() == batches[b]
    sampler.set_epoch(1)
    assert [[i for _, _, i in batch] for batch in sampler] != batches
    with pytest.raises(ValueError, match="no example is paired"):
        MixedBatchSampler(40, np.array([], dtype=np.int64), 4, 0.5)


def data_module(kg, corpus, **kwargs) -> UktpDataModule:
    args = dict(batch_size=8, max_length=48, max_label_tokens=8, val_fraction=0.1, seed=1)
    dm = UktpDataModule(str(corpus.path), str(VOCAB), str(kg.path), **{**args, **kwargs})
    dm.setup()
    return dm


def test_data_module_batches_follow_the_mix(kg, corpus, tok):
    dm = data_module(kg, corpus, uktp_fraction=0.5)
    batches = list(dm.train_dataloader())
    assert len(batches) == 14  # ceil(108 / 8)
    for b, batch in enumerate(batches):
        assert ("triple_tokens" in batch) == is_uktp_batch(b, 0.5)
        if "triple_tokens" in batch:   # a triple element is predicted in every row, the sentence has type 1
            assert ((batch["labels"] != -100) & batch["triple_tokens"]).any(1).all()
            assert (batch["token_type_ids"][:, 1] == 0).all() and (batch["token_type_ids"].sum(1) > 0).all()
        else:
            assert (batch["token_type_ids"] == 0).all()
    again = list(data_module(kg, corpus, uktp_fraction=0.5, num_workers=2).train_dataloader())  # same in workers
    assert len(again) == len(batches)
    assert all(torch.equal(x[k], y[k]) for x, y in zip(batches, again) for k in x)
    assert sum("triple_tokens" in b for b in data_module(kg, corpus, uktp_fraction=0.0).train_dataloader()) == 0
    assert list(dm.val_dataloader())


# ---- model ---------------------------------------------------------------------------------------
def test_losses_split_triple_and_sentence():
    logits = torch.randn(2, 6, 11)
    labels = torch.full((2, 6), -100)
    labels[0, 1], labels[0, 4], labels[1, 2] = 3, 5, 7
    triple = torch.zeros(2, 6, dtype=torch.bool)
    triple[0, 1] = True
    ce = lambda r, c: torch.nn.functional.cross_entropy(logits[r, c][None], labels[r, c][None])  # noqa: E731
    out = uktp_losses(logits, labels, triple)
    assert torch.isclose(out["triple"], ce(0, 1))
    assert torch.isclose(out["sentence"], (ce(0, 4) + ce(1, 2)) / 2)
    assert torch.isclose(out["loss"], (ce(0, 1) + ce(0, 4) + ce(1, 2)) / 3)
    plain = uktp_losses(logits, labels, None)
    assert set(plain) == {"loss", "mlm"} and torch.isclose(plain["loss"], out["loss"])


def test_loss_on_a_fixed_batch_goes_down(kg, corpus, tok):
    batch = next(iter(data_module(kg, corpus, uktp_fraction=1.0, batch_size=4).train_dataloader()))
    torch.manual_seed(0)
    module = UktpModule(vocab_size=len(tok), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                        dropout=0.0)
    history = fit_batch(module, batch, steps=20, lr=1e-2)
    assert history[-1]["loss"] < 0.3 * history[0]["loss"]
    assert history[-1]["triple"] < 0.3 * history[0]["triple"]
    assert history[-1]["sentence"] < 0.3 * history[0]["sentence"]


def test_kept_pretrain_uktp_cli_and_export(kg, corpus, tmp_path, capsys):
    from transformers import AutoModelForMaskedLM

    from kept.cli import main

    args = ["pretrain", "--method", "uktp", "--data.corpus", str(corpus.path), "--data.vocab", str(VOCAB),
            "--data.store", str(kg.path), "--data.batch_size", "8", "--data.max_length", "48",
            "--data.triple_elements", "[relation]", "--model.hidden_size", "32", "--model.num_layers", "1",
            "--model.num_heads", "2", "--model.intermediate_size", "64", "--trainer.max_steps", "4",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "run"),
            "--export", str(tmp_path / "hf")]
    assert main(args) == 0
    assert "Hugging Face format" in capsys.readouterr().out
    from kept import __version__

    # the store is recorded as every method records it: its absolute path
    assert json.loads((tmp_path / "hf" / "kept.json").read_text()) == {
        "method": "uktp", "store": str(kg.path.resolve()), "kept_version": __version__}
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "hf", local_files_only=True)
    assert type(model).__name__ == "BertForMaskedLM"
    assert list((tmp_path / "run").rglob("*.ckpt"))


class _Record(pl.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append((trainer.current_epoch, batch_idx, int(batch["input_ids"].sum()), "triple_tokens" in batch))


def _fit(kg, corpus_path: Path, ckpt_dir: Path, resume: str | None = None):
    pl.seed_everything(0)
    model = UktpModule(vocab_size=30522, warmup_steps=2, **TINY)
    record = _Record()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=3, save_top_k=-1, filename="{step}")
    trainer = pl.Trainer(max_epochs=2, callbacks=[record, ckpt], logger=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", limit_val_batches=0)
    dm = UktpDataModule(str(corpus_path), str(VOCAB), str(kg.path), batch_size=8, max_length=40,
                        max_label_tokens=8, val_fraction=0.0, seed=2)
    trainer.fit(model, dm, ckpt_path=resume)
    return record.seen, model.model.cls.predictions.decoder.weight.detach().clone()


def test_mid_epoch_resume_is_exact(kg, tmp_path):
    write_corpus(random_examples(kg, 40, seed=5), tmp_path / "corpus")
    seen, weights = _fit(kg, tmp_path / "corpus", tmp_path / "full")
    assert len(seen) == 10 and {s[3] for s in seen} == {True, False}           # 2 epochs x 5 batches, both kinds
    resumed, resumed_weights = _fit(kg, tmp_path / "corpus", tmp_path / "r",
                                    resume=str(tmp_path / "full" / "step=6.ckpt"))  # epoch 1, batch 1
    assert resumed == seen[6:]
    assert torch.equal(resumed_weights, weights)


def test_benchmark_batch_on_real_data(tok, trex_sample):
    store, corpus = trex_sample
    uktp = benchmark_batch(store, corpus, VOCAB, batch_size=4, seq_len=96)
    mlm = benchmark_batch(store, corpus, VOCAB, batch_size=4, seq_len=96, kind="mlm")
    assert uktp["input_ids"].shape == mlm["input_ids"].shape == (4, 96)
    assert uktp["triple_tokens"].any() and "triple_tokens" not in mlm
    module = UktpModule(vocab_size=len(tok), **TINY)
    assert set(module.losses(uktp)) == {"loss", "triple", "sentence"} and set(module.losses(mlm)) == {"loss", "mlm"}


def test_data_module_and_config_default_to_masking_the_relation():
    import inspect

    import yaml

    from kept.fusion.uktp.train import UktpDataModule
    from kept.methods import get_method

    assert inspect.signature(UktpDataModule).parameters["triple_elements"].default == ("relation",)
    config = yaml.safe_load(get_method("uktp").config.read_text())
    assert config["data"]["init_args"]["triple_elements"] == ["relation"]
