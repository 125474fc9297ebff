"""ERNIE (Tsinghua): fusion equations, BERT initialisation, alignments and dEA noise, learning,
exact resume, export/reload, the probing scorer and `kept pretrain --method ernie-t`."""

import gzip
import itertools
import json

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from conftest import ROOT, fit_batch
from transformers.masking_utils import create_bidirectional_mask

from kept.data.examples import LinkedCorpus, LinkedExample, write_corpus
from kept.fusion.ernie_t.data import (
    ErnieTCollator,
    ErnieTDataModule,
    align_entities,
    corrupt_alignments,
    resolve_store,
    training_batch,
)
from kept.fusion.ernie_t.model import ErnieTConfig, ErnieTForPreTraining, from_bert, load_pretrained
from kept.fusion.ernie_t.scorer import ErnieTScorer
from kept.fusion.ernie_t.train import ErnieTModule, dea_loss
from kept.masking.ernie import UnitMaskingCollator
from kept.train.data import load_tokenizer

VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"
TINY = dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=64)


@pytest.fixture(scope="module")
def trex(tmp_path_factory):
    """The shipped T-REx KG with 32-d TransE vectors, and 600 of its sentences linked against it."""
    from kept.data.build import CorpusOptions, build_linked_corpus
    from kept.kg import open_store
    from kept.kg.build import BuildOptions, build_store
    from kept.kg.transe.config import TransEConfig
    from kept.kg.transe.io import write_embeddings
    from kept.kg.transe.train import train_transe

    root = tmp_path_factory.mktemp("ernie_t")
    build_store([(ROOT / "kg_data" / "trex" / "trex_facts.nt.gz", None)], root / "store", BuildOptions(progress=False))
    store = open_store(root / "store")
    result = train_transe(store, TransEConfig(dim=32, epochs=3, negatives=32), work_dir=root / "work",
                          accelerator="cpu", progress=False, evaluate=False)
    write_embeddings(store, result.entity, result.relation, result.metrics, result.config)
    with gzip.open(ROOT / "kg_data" / "trex" / "sentences.jsonl.gz", "rt") as f:
        (root / "sentences.jsonl").write_text("".join(itertools.islice(f, 600)))
    corpus = build_linked_corpus(root / "sentences.jsonl", root / "corpus", VOCAB, root / "store",
                                 CorpusOptions(phrases=None), workers=0, progress=False)
    small = root / "small"
    write_corpus([corpus[i] for i in range(40)], small, {"store": str(root / "store")})
    return {"store": root / "store", "corpus": root / "corpus", "small": small,
            "num_entities": store.num_entities}


def tiny_config(**overrides) -> ErnieTConfig:
    values = dict(vocab_size=60, hidden_size=8, num_text_layers=0, num_aggregator_layers=1, num_attention_heads=2,
                  intermediate_size=12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_entities=5,
                  entity_dim=4, entity_heads=2, attn_implementation="eager")
    return ErnieTConfig(**{**values, **overrides})


def randomize_(module: torch.nn.Module) -> None:
    """Random LayerNorm gains/biases too, so that no term of the equations is an identity."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


def test_fusion_equations_match_hand_computation():
    torch.manual_seed(0)
    model = ErnieTForPreTraining(tiny_config(), torch.randn(5, 4)).eval()
    layer = model.aggregators[0]
    randomize_(layer)
    hidden = torch.randn(2, 5, 8)                                                   # [B, L, H]
    entity_ids = torch.tensor([[3, 5], [2, 0]])                                     # row 1: one entity, one empty slot
    positions = torch.tensor([[1, 3], [4, 0]])
    present = entity_ids > 0
    entities = model.entity_vectors[entity_ids]
    mask = create_bidirectional_mask(config=model._entity_config, inputs_embeds=entities, attention_mask=present)
    w_out, e_out = layer(hidden, None, entities, mask, positions, present.unsqueeze(-1).float())

    def lin(module, x):
        return x @ module.weight.T + (module.bias if module.bias is not None else 0)

    def ln(module, x):
        return torch.nn.functional.layer_norm(x, (x.shape[-1],), module.weight, module.bias, module.eps)

    gelu = torch.nn.functional.gelu
    with torch.no_grad():
        w = layer.attention(hidden, None)[0]                                         # stock BertAttention
        att = layer.entity_attention
        e = att(entities, mask)[0]
        # row 1 has one entity: attending to itself only, its attention output is W_o·(W_v·e + b_v) + b_o
        alone = ln(att.output.LayerNorm, lin(att.output.dense, lin(att.self.value, entities[1, 0])) + entities[1, 0])
        assert torch.allclose(e[1, 0], alone, atol=1e-5)
        for b in range(2):
            for t in range(5):
                pre = lin(layer.intermediate.dense, w[b, t])                        # W_t·w + b
                slots = [k for k in range(2) if present[b, k] and positions[b, k] == t]
                for k in slots:
                    pre = pre + layer.entity_intermediate.weight @ e[b, k]           # + W_e·e
                h = gelu(pre)
                expected_w = ln(layer.output.LayerNorm, lin(layer.output.dense, h) + w[b, t])
                assert torch.allclose(w_out[b, t], expected_w, atol=1e-5), (b, t)
                for k in slots:
                    expected_e = ln(layer.entity_output.LayerNorm, lin(layer.entity_output.dense, h) + e[b, k])
                    assert torch.allclose(e_out[b, k], expected_e, atol=1e-5), (b, k)
        assert torch.equal(e_out[1, 1], torch.zeros(4))                             # the empty slot stays empty


def test_sdpa_and_eager_agree_and_rows_without_entities_are_finite():
    torch.manual_seed(0)
    eager = ErnieTForPreTraining(tiny_config(num_text_layers=1, num_aggregator_layers=2), torch.randn(5, 4)).eval()
    sdpa = ErnieTForPreTraining(tiny_config(num_text_layers=1, num_aggregator_layers=2, attn_implementation="sdpa"))
    sdpa.load_state_dict(eager.state_dict())
    sdpa.entity_vectors.copy_(eager.entity_vectors)
    ids = torch.randint(5, 60, (3, 6))
    attention_mask = torch.ones(3, 6, dtype=torch.long)
    attention_mask[2, 4:] = 0
    positions, entity_ids = torch.tensor([[1, 2], [3, 0], [0, 0]]), torch.tensor([[4, 1], [2, 0], [0, 0]])
    a = eager(ids, attention_mask, None, positions, entity_ids)
    b = sdpa(ids, attention_mask, None, positions, entity_ids)
    assert torch.isfinite(a).all() and torch.allclose(a, b, atol=1e-5)
    # no entity slots at all: the same as one empty slot per row
    assert torch.allclose(eager(ids, attention_mask), eager(ids, attention_mask, None, positions[:, :1] * 0,
                                                            entity_ids[:, :1] * 0), atol=1e-6)


def test_from_bert_copies_layers_and_equals_bert_without_entities(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    bert = BertForMaskedLM(BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                                      intermediate_size=32, max_position_embeddings=32)).eval()
    bert.save_pretrained(tmp_path / "bert")
    model = from_bert(tmp_path / "bert", num_entities=5, entity_dim=8, num_aggregator_layers=3).eval()
    assert (model.config.num_text_layers, model.config.num_aggregator_layers) == (1, 3)
    layers = bert.bert.encoder.layer
    assert torch.equal(model.text_layers[0].output.dense.weight, layers[0].output.dense.weight)
    assert torch.equal(model.aggregators[2].attention.self.query.weight, layers[3].attention.self.query.weight)
    assert model.cls.predictions.decoder.weight is model.embeddings.word_embeddings.weight
    ids = torch.randint(5, 60, (2, 9))
    with torch.no_grad():
        expected = bert(input_ids=ids).logits
        # without entities an aggregator is exactly a BERT layer (W_e·0 adds nothing)
        assert torch.allclose(model.mlm_logits(model(ids)), expected, atol=1e-5)
        entity_ids = torch.tensor([[3, 0], [0, 0]])
        assert not torch.allclose(model.mlm_logits(model(ids, None, None, torch.tensor([[2, 0], [0, 0]]),
                                                         entity_ids)), expected, atol=1e-5)
    with pytest.raises(ValueError, match="cannot make 5 of them aggregators"):
        from_bert(tmp_path / "bert", num_entities=5, entity_dim=8, num_aggregator_layers=5)


def test_module_starts_from_a_local_bert(trex, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    BertForMaskedLM(BertConfig(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
                               max_position_embeddings=64)).save_pretrained(tmp_path / "bert")
    module = ErnieTModule(vocab_size=30522, entity_store=str(trex["store"]), pretrained=str(tmp_path / "bert"),
                          num_aggregator_layers=2)
    c = module.model.config
    assert (c.num_text_layers, c.num_aggregator_layers, c.hidden_size, c.entity_dim) == (1, 2, 16, 32)
    from kept.kg import open_store

    assert np.array_equal(module.model.entity_vectors[1:].numpy(), open_store(trex["store"]).entity_vectors())
    with pytest.raises(ValueError, match="checkpoint vocabulary has 30522 entries, the tokenizer 100"):
        ErnieTModule(vocab_size=100, entity_store=str(trex["store"]), pretrained=str(tmp_path / "bert"))


def example(n_tokens, spans, ids, text="t"):
    return LinkedExample(text, np.arange(10, 10 + n_tokens), entity_spans=np.asarray(spans).reshape(-1, 2),
                         entity_ids=ids, entity_scores=np.ones(len(ids)))


def test_align_entities_first_wordpiece_truncation_and_errors():
    batch = [example(6, [[0, 2], [3, 4], [5, 6]], [7, 1, 2]), example(4, [], []), example(5, [[2, 3], [2, 4]], [4, 0])]
    lengths = np.array([4, 4, 5])  # row 0 truncated to 4 text tokens: its entity on token 5 is cut
    positions, table = align_entities(batch, lengths, num_entities=8)
    assert positions.tolist() == [[1, 4], [0, 0], [3, 0]]  # after [CLS]; duplicate start keeps the first
    assert table.tolist() == [[8, 2], [0, 0], [5, 0]]      # store id + 1, 0 = none
    positions, table = align_entities([example(3, [], [])], np.array([3]), 8)
    assert positions.shape == table.shape == (1, 1) and table[0, 0] == 0
    with pytest.raises(ValueError, match="links entity id 9, outside the store's 0..7"):
        align_entities([example(3, [[0, 1]], [9], "some text")], np.array([3]), 8)


def test_dea_noise_rates_labels_and_determinism():
    torch.manual_seed(0)
    entity_ids = torch.randint(0, 40, (400, 50))                                     # ~2.5 % empty slots
    noisy, labels, candidates = corrupt_alignments(entity_ids, torch.Generator().manual_seed(3))
    again = corrupt_alignments(entity_ids, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip((noisy, labels, candidates), again))
    present = entity_ids > 0
    assert torch.equal(candidates, torch.unique(entity_ids[present]))
    assert torch.equal(candidates[labels[present]], entity_ids[present])              # labels: the originals
    assert (labels[~present] == -100).all() and (noisy[~present] == 0).all()
    dropped = (present & (noisy == 0)).sum() / present.sum()
    changed = (present & (noisy > 0) & (noisy != entity_ids)).sum() / present.sum()
    assert abs(dropped - 0.15) < 0.01
    assert abs(changed - 0.05 * 38 / 39) < 0.006  # a random candidate equals the original 1 time in 39
    assert torch.isin(noisy[noisy > 0], candidates).all()
    other = corrupt_alignments(entity_ids, torch.Generator().manual_seed(4))[0]
    assert not torch.equal(noisy, other)


def test_dea_loss_and_accuracy():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]]], requires_grad=True)
    labels = torch.tensor([[0, 1]])
    loss, accuracy = dea_loss(logits, labels)
    assert torch.isclose(loss, torch.nn.functional.cross_entropy(logits[0], labels[0]))
    assert accuracy.item() == 0.5
    loss, accuracy = dea_loss(torch.zeros(1, 1, 0, requires_grad=True), torch.tensor([[-100]]))
    loss.backward()
    assert loss.item() == 0.0 and accuracy is None


def test_collator_batch_is_seeded_and_consistent(trex):
    corpus = LinkedCorpus(trex["corpus"])
    examples = [corpus[i] for i in range(16)]
    collator = ErnieTCollator(UnitMaskingCollator(load_tokenizer(VOCAB), max_length=48), trex["num_entities"])
    batch = collator(examples, generator=torch.Generator().manual_seed(1))
    same = collator(examples, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(batch[k], same[k]) for k in batch)
    assert batch["entity_positions"].shape == batch["entity_ids"].shape == batch["entity_labels"].shape
    labelled = batch["entity_labels"] != -100
    assert labelled.sum() > 10
    positions = batch["entity_positions"][labelled]
    rows = labelled.nonzero()[:, 0]
    assert (positions >= 1).all() and (positions <= batch["attention_mask"].sum(1)[rows] - 2).all()
    originals = batch["candidate_ids"][batch["entity_labels"][labelled]] - 1           # store ids
    lengths = batch["attention_mask"].sum(1) - 2
    expected = {}
    for i, ex in enumerate(examples):  # first wordpiece after [CLS], kept text only, first entity per position
        for (start, _), entity in zip(ex.entity_spans, ex.entity_ids):
            if start + 1 <= lengths[i]:
                expected.setdefault((i, int(start) + 1), int(entity))
    got = {(r, p): e for r, p, e in zip(rows.tolist(), positions.tolist(), originals.tolist())}
    assert got == expected


def test_loss_on_a_fixed_batch_goes_down(trex):
    corpus = LinkedCorpus(trex["corpus"])
    collator = ErnieTCollator(UnitMaskingCollator(load_tokenizer(VOCAB), max_length=32, mask_prob=0.3, seed=0),
                              trex["num_entities"])
    batch = collator([corpus[i] for i in range(8)])
    module = ErnieTModule(vocab_size=30522, entity_store=str(trex["store"]), hidden_size=64, num_layers=2, num_heads=2,
                          intermediate_size=128, max_position_embeddings=64, dropout=0.0)
    history = fit_batch(module, batch, steps=20, lr=3e-3)
    assert history[-1]["loss"] < 0.3 * history[0]["loss"]
    assert history[-1]["mlm"] < 0.5 * history[0]["mlm"] and history[-1]["dea"] < 0.3 * history[0]["dea"]
    assert module.model.entity_vectors.requires_grad is False
    assert not any(p is module.model.entity_vectors for p in module.parameters())


@pytest.mark.slow
def test_dea_accuracy_rises_above_chance(trex):
    data = ErnieTDataModule(str(trex["corpus"]), str(VOCAB), batch_size=16, max_length=32, val_fraction=0.08, seed=0)
    data.setup()
    module = ErnieTModule(vocab_size=data.vocab_size, entity_store=str(data.store_path), hidden_size=64, num_layers=2,
                          num_heads=2, intermediate_size=128, max_position_embeddings=64, dropout=0.0)
    val = list(data.val_dataloader())

    def evaluate():
        module.eval()
        with torch.no_grad():
            outs = [module.losses(b) for b in val]
        module.train()
        return np.mean([o["dea_acc"].item() for o in outs]), np.mean([o["dea_chance"].item() for o in outs])

    before, chance = evaluate()
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    loader = iter(data.train_dataloader())
    for _ in range(20):
        loss = module.losses(next(loader))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after, _ = evaluate()
    assert chance < 0.05 and before < 3 * chance
    assert after > 4 * chance and after > before + 0.1


class _Record(pl.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append((trainer.current_epoch, batch_idx, int(batch["input_ids"].sum()),
                          int(batch["entity_ids"].sum()), int(batch["entity_labels"].sum())))


def _fit(trex, ckpt_dir, resume=None):
    module = ErnieTModule(vocab_size=30522, **TINY, warmup_steps=2)  # store taken from the data module
    data = ErnieTDataModule(str(trex["small"]), str(VOCAB), batch_size=8, max_length=32, val_fraction=0.0)
    record = _Record()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=3, save_top_k=-1, filename="{step}")
    trainer = pl.Trainer(max_epochs=2, callbacks=[record, ckpt], logger=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, data, ckpt_path=resume)
    return record.seen, module


def test_mid_epoch_resume_is_exact(trex, tmp_path):
    seen, module = _fit(trex, tmp_path / "full")
    assert len(seen) == 10  # 2 epochs x 5 batches
    assert module.hparams.entity_store == str(trex["store"])
    resumed, resumed_module = _fit(trex, tmp_path / "resumed", resume=str(tmp_path / "full" / "step=6.ckpt"))
    assert resumed == seen[6:]
    a, b = module.state_dict(), resumed_module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    reloaded = ErnieTModule.load_from_checkpoint(tmp_path / "full" / "step=6.ckpt")  # the store is in its hparams
    assert reloaded.model.config.num_entities == trex["num_entities"]


def test_store_resolution_and_mismatch(trex, tmp_path):
    assert resolve_store(trex["small"], None) == trex["store"]
    write_corpus([LinkedExample("a", np.array([5, 6]))], tmp_path / "plain", {"store": None})
    with pytest.raises(ValueError, match="records no KG store"):
        resolve_store(tmp_path / "plain", None)
    with pytest.raises(FileNotFoundError, match="KG store .*missing.* not found"):
        resolve_store(trex["small"], tmp_path / "missing")
    module = ErnieTModule(vocab_size=30522, entity_store=str(trex["store"]), **TINY)
    other = tmp_path / "other"
    other.mkdir()

    class _Trainer:
        datamodule = type("D", (), {"store_path": other})()

    module._trainer = _Trainer()
    with pytest.raises(ValueError, match="differs from the data's"):
        module.setup("fit")


def test_export_reload_and_scorer(trex, tmp_path):
    tok = load_tokenizer(VOCAB)
    # two aggregators: in the last one attention precedes fusion, so only the aligned positions see entities
    module = ErnieTModule(vocab_size=len(tok), entity_store=str(trex["store"]), **{**TINY, "num_layers": 3},
                          num_aggregator_layers=2).eval()
    out = module.export_hf(tmp_path / "hf", tok)
    info = json.loads((out / "kept.json").read_text())
    assert info["method"] == "ernie-t" and info["num_entities"] == trex["num_entities"] and info["entity_dim"] == 32
    loaded = load_pretrained(out)
    corpus = LinkedCorpus(trex["corpus"])
    batch = ErnieTCollator(UnitMaskingCollator(tok, max_length=40), trex["num_entities"])(
        [corpus[i] for i in range(6)])
    inputs = [batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "entity_positions", "entity_ids")]
    with torch.no_grad():
        hidden, hidden_loaded = module.model(*inputs), loaded(*inputs)
        assert torch.equal(hidden, hidden_loaded)
        assert torch.equal(module.model.mlm_logits(hidden), loaded.mlm_logits(hidden_loaded))
        assert torch.equal(module.model.entity_logits(hidden, batch["entity_positions"], batch["candidate_ids"]),
                           loaded.entity_logits(hidden_loaded, batch["entity_positions"], batch["candidate_ids"]))
    assert torch.equal(loaded.entity_vectors, module.model.entity_vectors)

    # cloze queries: a linked sentence with a non-entity token masked
    queries = []
    for i in range(40):
        ex = corpus[i]
        if len(ex.entity_ids) and len(queries) < 5:
            free = np.setdiff1d(np.arange(len(ex)), ex.entity_spans[:, 0])
            ids = ex.input_ids.copy()
            ids[free[-1]] = tok.mask_token_id
            queries.append(LinkedExample(ex.text, ids, entity_spans=ex.entity_spans, entity_ids=ex.entity_ids,
                                         entity_scores=ex.entity_scores))
    scorer = ErnieTScorer.from_pretrained(out, store=trex["store"], batch_size=2)
    scores = scorer.mask_log_probs(queries)
    assert [tuple(s.shape) for s in scores] == [(1, len(tok))] * len(queries)
    assert torch.allclose(scores[0].exp().sum(-1), torch.ones(1), atol=1e-4)
    one_by_one = [ErnieTScorer(loaded, tok).mask_log_probs([q])[0] for q in queries]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(scores, one_by_one))
    # the entities reach the [MASK] (through the first aggregator): without them the scores change
    bare = [LinkedExample(q.text, q.input_ids) for q in queries]
    assert not torch.equal(scorer.mask_log_probs(bare)[0], scores[0])
    with pytest.raises(ValueError, match="has no \\[MASK\\] token"):
        scorer.mask_log_probs([bare[0], LinkedExample("x", np.array([2000, 2001]))])
    small_store = tmp_path / "small_store"
    from kept.kg.build import BuildOptions, build_store
    (tmp_path / "one.spo").write_text("a\tb\tc\n")
    build_store([(tmp_path / "one.spo", None)], small_store, BuildOptions(progress=False))
    with pytest.raises(ValueError, match="its entity ids would not match"):
        ErnieTScorer.from_pretrained(out, store=small_store)


def test_training_batch_for_benchmarks(trex):
    from kept.train.mlm import MaskedLMModule

    batch = training_batch(trex["corpus"], VOCAB, trex["num_entities"], batch_size=4, seq_len=96, seed=1)
    assert batch["input_ids"].shape == (4, 96) and bool(batch["attention_mask"].all())
    assert (batch["entity_labels"] != -100).sum() >= 8
    mlm = MaskedLMModule(vocab_size=30522, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                         max_position_embeddings=128)
    assert torch.isfinite(mlm.losses(batch)["loss"])  # the same batch feeds the plain MLM baseline
    with pytest.raises(ValueError, match="too few tokens"):
        training_batch(trex["small"], VOCAB, trex["num_entities"], batch_size=64, seq_len=128)


def test_kept_pretrain_cli_ernie_t(trex, tmp_path, capsys):
    from kept.cli import main

    args = ["pretrain", "--method", "ernie-t", "--data.corpus", str(trex["small"]), "--data.vocab", str(VOCAB),
            "--data.batch_size", "8", "--data.max_length", "32", "--model.hidden_size", "32",
            "--model.num_layers", "2", "--model.num_heads", "2", "--model.intermediate_size", "64",
            "--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--export", str(tmp_path / "hf")]
    assert main(args) == 0
    assert "Hugging Face format" in capsys.readouterr().out
    model = load_pretrained(tmp_path / "hf")
    assert (model.config.num_text_layers, model.config.num_aggregator_layers, model.config.entity_dim) == (1, 1, 32)
    assert json.loads((tmp_path / "hf" / "kept.json").read_text())["store"] == str(trex["store"].resolve())
    assert list((tmp_path / "run").rglob("*.ckpt"))
    assert (tmp_path / "hf" / "vocab.txt").read_text() == VOCAB.read_text()
    assert "ErnieTFillMask" in (tmp_path / "hf" / "README.md").read_text()  # the card says how to fill masks


def test_fill_mask_answers_like_the_pipeline(trex, tmp_path):
    """ErnieTFillMask: the fill-mask pipeline's call and answer format, the scorer's numbers."""
    from kept.fusion.ernie_t import ErnieTFillMask

    tok = load_tokenizer(VOCAB)
    module = ErnieTModule(vocab_size=len(tok), entity_store=str(trex["store"]), **{**TINY, "num_layers": 3},
                          num_aggregator_layers=2).eval()
    out = module.export_hf(tmp_path / "hf", tok)
    fill = ErnieTFillMask.from_pretrained(out)
    answer = fill("paris is the capital of [MASK] .", top_k=3)
    assert len(answer) == 3 and all(set(a) == {"score", "token", "token_str", "sequence"} for a in answer)
    assert [a["score"] for a in answer] == sorted((a["score"] for a in answer), reverse=True)
    example = fill._example("paris is the capital of [MASK] .")
    top = fill.scorer.mask_log_probs([example])[0][0].exp().topk(3)
    assert [a["token"] for a in answer] == top.indices.tolist()
    filled = example.input_ids.copy()
    filled[example.input_ids == tok.mask_token_id] = answer[0]["token"]
    assert answer[0]["sequence"] == tok.decode(filled.tolist(), skip_special_tokens=True)  # as the pipeline's
    two = fill(["[MASK] is the capital of [MASK] .", "a [MASK] ."], top_k=2)
    assert len(two) == 2 and len(two[0]) == 2 and len(two[0][0]) == 2 and len(two[1]) == 2
    # with the store, a text's mentions are linked and their vectors change the answer
    linked = ErnieTFillMask.from_pretrained(out, store=trex["store"])
    corpus = LinkedCorpus(trex["corpus"])
    text = next(corpus[i].text for i in range(40) if len(corpus[i].entity_ids))
    words = text.split()
    masked = " ".join(words[:-1] + ["[MASK]"])
    assert len(linked._example(masked).entity_ids) and not len(fill._example(masked).entity_ids)
    assert linked(masked, top_k=5) != fill(masked, top_k=5)
