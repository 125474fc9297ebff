"""K-BERT: the batched sentence-tree builder against the published algorithm, the mask inside a stock
BERT, pretraining (loss, CLI, exact resume, export) and the probing scorer."""

import gzip
import json

import numpy as np
import pytest
import torch
from conftest import ROOT, fit_batch, need_data

from kept.data.examples import LinkedExample
from kept.fusion.kbert import JiebaSubjectSegmenter
from kept.fusion.kbert.branches import BranchTable
from kept.fusion.kbert.reference import reference_tree, seeded_lookup_table
from kept.fusion.kbert.tree import SentenceTreeBuilder, build_trees
from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store
from kept.train.data import load_tokenizer

ZH_VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-chinese-vocab.txt"
EN_VOCAB = ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt"


# ---- the published lookup table (the tree itself: kept.fusion.kbert.reference) ------------------------------
def reference_lookup_table(spo_path, predicate: bool) -> dict[str, set[str]]:
    """brain/knowgraph.py::_create_lookup_table: subject -> set of (predicate + object) or objects."""
    table: dict[str, set[str]] = {}
    opener = gzip.open if str(spo_path).endswith(".gz") else open
    with opener(spo_path, "rt", encoding="utf-8") as f:
        for line in f:
            subj, pred, obje = line.strip().split("\t")
            table.setdefault(subj, set()).add(pred + obje if predicate else obje)
    return table


@pytest.fixture(scope="module")
def zh_tok():
    return load_tokenizer(ZH_VOCAB)


@pytest.fixture(scope="module")
def hownet_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("hownet") / "store"
    build_store([(need_data("kg", "HowNet.spo.gz"), None)], out, BuildOptions(progress=False))
    return open_store(out)


@pytest.fixture(scope="module")
def segmenters(zh_tok, hownet_store, medical_store):
    return {"hownet": JiebaSubjectSegmenter(zh_tok, hownet_store),
            "medical": JiebaSubjectSegmenter(zh_tok, medical_store)}


def book_reviews(n: int) -> list[str]:
    with gzip.open(need_data("corpus", "zh", "book_review", "dev.tsv.gz"), "rt", encoding="utf-8") as f:
        next(f)
        return [line.rstrip("\n").split("\t", 1)[1] for _, line in zip(range(n), f)]


def medical_records(n: int) -> list[str]:
    """Real clinical sentences (the medical NER set, characters space-separated there)."""
    with open(need_data("corpus", "zh", "medical_ner", "dev.tsv"), encoding="utf-8") as f:
        next(f)
        return [line.split("\t")[0].replace(" ", "") for _, line in zip(range(n), f)]


@pytest.mark.parametrize("kg", ["hownet", "medical"])
@pytest.mark.parametrize("with_predicate", [True, False])
def test_candidates_are_the_reference_lookup_table(kg, with_predicate, zh_tok, hownet_store, medical_store):
    store = {"hownet": hownet_store, "medical": medical_store}[kg]
    spo = need_data("kg", {"hownet": "HowNet.spo.gz", "medical": "Medical.spo"}[kg])
    ours = seeded_lookup_table(BranchTable(store, zh_tok, "zh", with_predicate=with_predicate))
    reference = reference_lookup_table(spo, with_predicate)
    assert ours.keys() == reference.keys()
    assert all(len(values) == len(set(values)) and set(values) == reference[key] for key, values in ours.items())


@pytest.mark.parametrize("kg", ["hownet", "medical"])
@pytest.mark.parametrize("with_predicate,add_sep,max_length,max_entities",
                         [(True, False, 128, 2), (False, True, 64, 3), (True, True, 32, 1)])
def test_chinese_trees_equal_the_reference(kg, with_predicate, add_sep, max_length, max_entities, zh_tok,
                                           hownet_store, medical_store, segmenters):
    store = {"hownet": hownet_store, "medical": medical_store}[kg]
    segmenter = segmenters[kg]
    branches = BranchTable(store, zh_tok, "zh", max_entities=max_entities, with_predicate=with_predicate, seed=3)
    lookup = seeded_lookup_table(branches)
    texts = book_reviews(120) + (medical_records(60) if kg == "medical" else [])
    examples = [segmenter(t) for t in texts]
    tree = SentenceTreeBuilder(zh_tok, branches, max_length, add_sep=add_sep, pad_to_max_length=True)(examples)
    encode = lambda s: segmenter.chars.encode(s)[0].tolist()  # noqa: E731 -- characters -> ids, as the vocab lookup
    injected = 0
    for b, text in enumerate(texts):
        words = ["[CLS]"] + segmenter.words(text) + (["[SEP]"] if add_sep else [])
        ids = [[zh_tok.cls_token_id] if w == "[CLS]" else [zh_tok.sep_token_id] if w == "[SEP]" else encode(w)
               for w in words]
        kept = [i for i, w in enumerate(ids) if w]
        words, ids = [words[i] for i in kept], [ids[i] for i in kept]
        word_branches = [[e for e in (encode(v) for v in lookup.get(w, [])[:max_entities]) if e] for w in words]
        injected += sum(map(len, word_branches))
        ref_ids, ref_pos, ref_vm = reference_tree(ids, word_branches, max_length, zh_tok.pad_token_id)
        assert tree.input_ids[b].tolist() == ref_ids.tolist(), b
        assert tree.position_ids[b].tolist() == ref_pos.tolist(), b
        assert np.array_equal(tree.visible_matrix[b].numpy(), ref_vm), b
    assert injected > (10 if kg == "medical" else 100)  # the KG really branched these sentences


@pytest.fixture(scope="module")
def trex_linked(tmp_path_factory):
    from kept.data.linked import link_example
    from kept.kg.linking.linker import EntityLinker

    out = tmp_path_factory.mktemp("trex") / "store"
    build_store([(ROOT / "kg_data" / "trex" / "trex_facts.nt.gz", None)], out, BuildOptions(progress=False))
    store = open_store(out)
    tok = load_tokenizer(EN_VOCAB)
    linker = EntityLinker.from_store(store, cache=False)
    with gzip.open(ROOT / "kg_data" / "trex" / "sentences.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(80), f)]
    return store, tok, [link_example(t, tok, linker, "en") for t in texts]


@pytest.mark.parametrize("max_length", [128, 40])
def test_english_trees_on_linker_spans_equal_the_reference(trex_linked, max_length):
    store, tok, examples = trex_linked
    branches = BranchTable(store, tok, "en", max_entities=2, with_predicate=True, seed=1)
    tree = SentenceTreeBuilder(tok, branches, max_length, add_sep=True, pad_to_max_length=True)(examples)
    rel_labels = [label for _, label in store.db.execute("SELECT id, label FROM relations ORDER BY id")]
    encode = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    injected = 0
    for b, ex in enumerate(examples):
        starts = dict(zip(ex.entity_spans[:, 0].tolist(), zip(ex.entity_spans[:, 1].tolist(), ex.entity_ids)))
        words, word_branches, i = [[tok.cls_token_id]], [[]], 0
        while i < len(ex):  # a linked mention is one word, every other wordpiece a word of its own
            end, entity = starts.get(i, (i + 1, None))
            words.append(ex.input_ids[i:end].tolist())
            rows = [] if entity is None else branches.candidates(int(entity))[:2]
            word_branches.append([encode(rel_labels[store.triples[r, 1]]) + encode(store.label(int(store.triples[r, 2])))
                                  for r in rows])
            i = end
        words.append([tok.sep_token_id])
        word_branches.append([])
        injected += sum(map(len, word_branches))
        ref_ids, ref_pos, ref_vm = reference_tree(words, word_branches, max_length, tok.pad_token_id)
        assert tree.input_ids[b].tolist() == ref_ids.tolist(), b
        assert tree.position_ids[b].tolist() == ref_pos.tolist(), b
        assert np.array_equal(tree.visible_matrix[b].numpy(), ref_vm), b
    assert injected > 80


def test_soft_positions_and_visibility_by_hand():
    # [CLS] a b c [SEP] with word (b c) -> branches (x y) and (z): tree [CLS] a b c x y z [SEP]
    class Table:
        max_entities = 2

        def branches(self, entity_ids):
            return np.array([0, 0]), np.array([2, 1]), np.array([20, 21, 22])

    tree = build_trees([np.array([1, 10, 11, 12, 2])], [np.array([[2, 4]])], [np.array([7])], Table(), 16, 0)
    assert tree.input_ids[0].tolist() == [1, 10, 11, 12, 20, 21, 22, 2]
    assert tree.position_ids[0].tolist() == [0, 1, 2, 3, 4, 5, 4, 4]
    assert tree.is_branch[0].tolist() == [False] * 4 + [True] * 3 + [False]
    assert tree.sentence_index[0].tolist() == [0, 1, 2, 3, -1, -1, -1, 4]
    vm = tree.visible_matrix[0].int().numpy()
    expected = np.array([[1, 1, 1, 1, 0, 0, 0, 1],     # [CLS]: the sentence
                         [1, 1, 1, 1, 0, 0, 0, 1],     # a
                         [1, 1, 1, 1, 1, 1, 1, 1],     # b: the sentence + its word's branches
                         [1, 1, 1, 1, 1, 1, 1, 1],     # c
                         [0, 0, 1, 1, 1, 1, 0, 0],     # x: its word + its branch
                         [0, 0, 1, 1, 1, 1, 0, 0],     # y
                         [0, 0, 1, 1, 0, 0, 1, 0],     # z: its word + its own branch only
                         [1, 1, 1, 1, 0, 0, 0, 1]])    # [SEP]
    assert np.array_equal(vm, expected)


def test_padding_truncation_and_overlaps(zh_tok, medical_store, segmenters):
    branches = BranchTable(medical_store, zh_tok, "zh")
    examples = [segmenters["medical"](t) for t in ["眼睛发红", "患者眼睛发红，咽喉部充血，可能是小儿狂犬病。"]]
    builder = SentenceTreeBuilder(zh_tok, branches, max_length=24)
    short = builder(examples)
    full = SentenceTreeBuilder(zh_tok, branches, max_length=24, pad_to_max_length=True)(examples)
    width = short.input_ids.shape[1]
    assert width == 24 and short.input_ids.shape == (2, 24)  # the long tree fills max_length
    one = builder(examples[:1])
    n = one.input_ids.shape[1]  # padded to its own tree: [CLS] 4 chars + branch "类别症状" + [SEP]
    assert n == 10 and one.attention_mask.sum() == n
    assert torch.equal(full.input_ids[0, :n], one.input_ids[0]) and (full.input_ids[0, n:] == 0).all()
    assert (full.position_ids[0, n:] == 23).all() and not full.visible_matrix[0, n:].any()
    assert not full.visible_matrix[0, :, n:].any()
    # an overlapping span is ignored; a span outside the sentence is an error
    spans = [np.array([[1, 3], [2, 4], [4, 5]])]
    tree = build_trees([np.arange(1, 7)], spans, [np.array([0, 2, 4])], branches, 64, 0)
    assert tree.is_branch.sum() == branches.branches(np.array([0, 4]))[1].sum() > 0  # [2, 4] (entity 2) dropped
    with pytest.raises(ValueError, match="span \\[5, 9\\] is not within 0..6"):
        build_trees([np.arange(1, 7)], [np.array([[5, 9]])], [np.array([0])], branches, 64, 0)


def test_branch_choice_is_seeded_and_capped(zh_tok, hownet_store):
    degrees = np.diff(np.asarray(hownet_store.out_indptr))
    busy = np.flatnonzero(degrees >= 4)[:200]
    a = BranchTable(hownet_store, zh_tok, "zh", max_entities=2, seed=0)
    owner, rows = a.choose(busy)
    assert np.array_equal(np.bincount(owner, minlength=len(busy)), np.full(len(busy), 2))
    assert (np.asarray(hownet_store.triples)[rows, 0] == busy[owner]).all()
    assert np.array_equal(rows, BranchTable(hownet_store, zh_tok, "zh", seed=0).choose(busy)[1])
    assert not np.array_equal(rows, BranchTable(hownet_store, zh_tok, "zh", seed=1).choose(busy)[1])
    import pickle

    clone = pickle.loads(pickle.dumps(a))
    assert np.array_equal(clone.branches(busy)[2], a.branches(busy)[2])


# ---- the tree inside a stock BERT --------------------------------------------------------------------------
def _tiny_bert(cls_name: str, vocab_size: int, layers: int, attn: str, **extra):
    import transformers

    config = transformers.BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=layers,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                     attn_implementation=attn, **extra)
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(config).eval()
    assert model.config._attn_implementation == attn
    return model


def _reach(visible: torch.Tensor, steps: int) -> torch.Tensor:
    """bool [L, L]: j influences i within ``steps`` attention layers (i itself always)."""
    allowed = visible | torch.diag(~visible.any(-1))  # padding attends to itself, as tree_attention_mask
    reach = torch.eye(len(visible), dtype=torch.bool)
    for _ in range(steps):
        reach = (reach.float() @ allowed.float() > 0) | reach
    return reach


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_every_layer_applies_the_visible_matrix(trex_linked, attn):
    from kept.fusion.kbert import tree_forward

    store, tok, examples = trex_linked
    branches = BranchTable(store, tok, "en", max_entities=2)
    linked = [ex for ex in examples if len(ex.entity_ids) >= 2][:3]
    tree = SentenceTreeBuilder(tok, branches, max_length=48)(linked)
    batch = tree.as_dict()
    layers = 3
    model = _tiny_bert("BertModel", len(tok), layers, attn)
    with torch.no_grad():
        base = tree_forward(model, batch, output_hidden_states=True).hidden_states
        plain = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                      output_hidden_states=True).hidden_states
    checked = {"unchanged": 0, "changed": 0}
    for b in range(len(linked)):
        branch_cols = torch.nonzero(tree.is_branch[b]).squeeze(1).tolist()
        for j in branch_cols[:: max(1, len(branch_cols) // 4)] + [3]:  # perturb branch tokens and a sentence token
            ids = batch["input_ids"].clone()
            ids[b, j] = (ids[b, j] + 7) % len(tok)
            with torch.no_grad():
                moved = tree_forward(model, {**batch, "input_ids": ids}, output_hidden_states=True).hidden_states
            for layer in range(layers + 1):
                influenced = _reach(tree.visible_matrix[b], layer)[:, j]                     # [L]
                diff = (moved[layer][b] - base[layer][b]).abs().amax(-1)                     # [L]
                assert (diff[~influenced] == 0).all(), (b, j, layer)  # masked: exactly no effect
                assert (diff[influenced] > 0).all(), (b, j, layer)
                checked["unchanged"] += int((~influenced).sum())
                checked["changed"] += int(influenced.sum())
        # without the tree mask, a branch token reaches every position in one layer
        assert not torch.allclose(plain[1][b], base[1][b])
    assert checked["unchanged"] > 100 and checked["changed"] > 100


def test_sequence_classifier_reads_the_tree(trex_linked):
    from kept.fusion.kbert import tree_forward

    store, tok, examples = trex_linked
    tree = SentenceTreeBuilder(tok, BranchTable(store, tok, "en"), max_length=48)(examples[:4]).as_dict()
    model = _tiny_bert("BertForSequenceClassification", len(tok), 1, "sdpa", num_labels=3)
    with torch.no_grad():
        logits = tree_forward(model, tree).logits
        branch = torch.nonzero(tree["is_branch"][0])[0, 0]
        ids = tree["input_ids"].clone()
        ids[0, branch] += 1
        moved = tree_forward(model, {**tree, "input_ids": ids}).logits
    assert logits.shape == (4, 3) and torch.allclose(logits[1:], moved[1:])
    # one layer: [CLS] does not see branch tokens, so the pooled logits of row 0 do not move either
    assert torch.allclose(logits[0], moved[0])


# ---- pretraining --------------------------------------------------------------------------------------------
def _collator(tok, store, max_length=48, mask_prob=0.15, **kw):
    from kept.fusion.kbert import KBertMaskingCollator
    from kept.masking import UnitMaskingCollator

    masking = UnitMaskingCollator(tok, max_length=max_length, level="token", mask_prob=mask_prob,
                                  max_predictions=max_length, seed=0)
    return KBertMaskingCollator(masking, SentenceTreeBuilder(tok, BranchTable(store, tok, "en", **kw), max_length))


def test_branch_tokens_are_never_masked(trex_linked):
    store, tok, examples = trex_linked
    collate = _collator(tok, store, mask_prob=0.5)
    clean = SentenceTreeBuilder(tok, collate.builder.branches, 48)(examples[:16])
    for seed in range(3):
        batch = collate(examples[:16], generator=torch.Generator().manual_seed(seed))
        assert torch.equal(batch["is_branch"], clean.is_branch) and batch["is_branch"].any()
        assert (batch["labels"][batch["is_branch"]] == -100).all()
        assert torch.equal(batch["input_ids"][clean.is_branch], clean.input_ids[clean.is_branch])
        predicted = batch["labels"] != -100
        assert predicted.sum() > 50 and torch.equal(batch["labels"][predicted], clean.input_ids[predicted])
        assert torch.equal(batch["position_ids"], clean.position_ids)
        assert torch.equal(batch["visible_matrix"], clean.visible_matrix)


def test_branch_object_masking_masks_text_copies_of_branch_objects(trex_linked):
    from kept.fusion.kbert import KBertMaskingCollator

    store, tok, examples = trex_linked
    plain = _collator(tok, store, mask_prob=0.0)
    collate = KBertMaskingCollator(plain.masking, plain.builder, branch_object_prob=1.0)
    batch = collate(examples[:16], generator=torch.Generator().manual_seed(0))
    sentences = [np.concatenate([[tok.cls_token_id], ex.input_ids[:46], [tok.sep_token_id]]) for ex in examples[:16]]
    matches = collate.branch_object_matches(examples[:16], sentences)
    assert matches                                      # T-REx sentences name their fact's object
    triples = np.asarray(store.triples)
    for row, start, end in matches:                     # the span is a branch object's label, masked whole
        owner, rows = collate.builder.branches.choose(examples[row].entity_ids)
        labels = {tuple(tok(store.db.execute("SELECT label FROM entities WHERE id=?", (int(t),)).fetchone()[0],
                            add_special_tokens=False)["input_ids"]) for t in triples[rows, 2]}
        assert tuple(sentences[row][start:end].tolist()) in labels
        cols = torch.nonzero((batch["sentence_index"][row] >= start) & (batch["sentence_index"][row] < end)).squeeze(1)
        assert (batch["input_ids"][row, cols] == tok.mask_token_id).all()
        assert torch.equal(batch["labels"][row, cols], torch.from_numpy(sentences[row][start:end]))
    assert int((batch["labels"] != -100).sum()) == sum(e - s for _, s, e in set(matches))   # nothing else (p = 0)
    assert (plain(examples[:16])["labels"] == -100).all()


def test_branch_swap_replaces_the_object_in_branch_and_label(trex_linked):
    from kept.fusion.kbert import KBertMaskingCollator

    store, tok, examples = trex_linked
    plain = _collator(tok, store, mask_prob=0.0)
    real = KBertMaskingCollator(plain.masking, plain.builder, branch_object_prob=1.0)
    swap = KBertMaskingCollator(plain.masking, plain.builder, branch_object_prob=1.0, branch_swap_prob=1.0)
    a = real(examples[:16], generator=torch.Generator().manual_seed(0))
    b = swap(examples[:16], generator=torch.Generator().manual_seed(0))
    predicted = a["labels"] != -100
    assert torch.equal(predicted, b["labels"] != -100)                   # the same positions are predicted
    assert not torch.equal(a["labels"][predicted], b["labels"][predicted])   # some objects were swapped
    assert torch.equal(a["input_ids"][~a["is_branch"]], b["input_ids"][~b["is_branch"]])   # the text is unchanged
    for row in range(16):                                                 # every new label is read in a branch
        new = b["labels"][row][(b["labels"][row] != a["labels"][row]) & predicted[row]]
        assert set(new.tolist()) <= set(b["input_ids"][row][b["is_branch"][row]].tolist())


def test_kbert_loss_on_a_fixed_batch_goes_down(trex_linked):
    from kept.fusion.kbert import KBertModule

    store, tok, examples = trex_linked
    batch = _collator(tok, store, max_length=32, mask_prob=0.3)(examples[:8])
    # renumber the batch's ids densely: a small vocabulary keeps the test fast, the trees are unchanged
    used, dense = torch.unique(torch.cat([batch["input_ids"].flatten(), batch["labels"].flatten()]),
                               return_inverse=True)
    n = batch["input_ids"].numel()
    batch["input_ids"] = dense[:n].view_as(batch["input_ids"])
    batch["labels"] = torch.where(batch["labels"] == -100, -100, dense[n:].view_as(batch["labels"]))
    assert (batch["labels"] != -100).sum() > 20
    module = KBertModule(vocab_size=len(used), hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                         max_position_embeddings=64, dropout=0.0)
    losses = [step["loss"] for step in fit_batch(module, batch, steps=30, lr=3e-3)]
    assert losses[-1] < 0.3 * losses[0]


@pytest.fixture(scope="module")
def trex_corpus(trex_linked, tmp_path_factory):
    from kept.data.examples import write_corpus

    store, tok, examples = trex_linked
    path = tmp_path_factory.mktemp("corpus") / "trex"
    write_corpus(examples[:48], path)
    return path, store


TINY = ["--model.hidden_size", "32", "--model.num_layers", "1", "--model.num_heads", "2",
        "--model.intermediate_size", "64", "--model.max_position_embeddings", "64"]


def test_kept_pretrain_kbert_cli_export_and_scorer(trex_corpus, trex_linked, tmp_path, capsys):
    from kept.cli import main
    from kept.fusion.kbert import KBertScorer

    corpus, store = trex_corpus
    args = ["pretrain", "--method", "kbert", "--data.corpus", str(corpus), "--data.vocab", str(EN_VOCAB),
            "--data.store", str(store.path), "--data.batch_size", "8", "--data.max_length", "48",
            "--data.max_entities", "1", *TINY, "--model.num_layers", "2", "--trainer.max_steps", "3", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--export", str(tmp_path / "hf")]
    assert main(args) == 0
    assert "Hugging Face format" in capsys.readouterr().out
    info = json.loads((tmp_path / "hf" / "kept.json").read_text())
    assert info["method"] == "kbert" and info["max_entities"] == 1 and info["with_predicate"] is True
    assert info["max_length"] == 48 and open_store(info["store"]).num_triples == store.num_triples
    from transformers import BertForMaskedLM

    assert isinstance(BertForMaskedLM.from_pretrained(tmp_path / "hf", local_files_only=True), BertForMaskedLM)
    assert list((tmp_path / "run").rglob("*.ckpt"))

    # the scorer: injects branches at probe time, batched = one by one, a log-softmax per [MASK]
    _, tok, examples = trex_linked
    queries = []
    for ex in [ex for ex in examples if len(ex.entity_ids) >= 2][:5]:
        ids = ex.input_ids.copy()
        last = int(ex.entity_spans[-1, 1])
        ids[last : last + 2] = tok.mask_token_id
        queries.append(LinkedExample(ex.text, ids, entity_spans=ex.entity_spans[:-1], entity_ids=ex.entity_ids[:-1],
                                     entity_scores=ex.entity_scores[:-1]))
    scorer = KBertScorer.from_pretrained(tmp_path / "hf", store)
    scores = scorer.mask_log_probs(queries)
    one_by_one = [scorer.mask_log_probs([q])[0] for q in queries]
    for q, s, s1 in zip(queries, scores, one_by_one):
        k = int((q.input_ids == tok.mask_token_id).sum())
        assert s.shape == (k, len(tok)) and torch.allclose(s.logsumexp(-1), torch.zeros(k), atol=1e-4)
        assert torch.allclose(s, s1, atol=1e-5)
    # two layers: branches reach the [MASK] tokens through their word (one layer could not)
    blind = KBertScorer(scorer.model, tok, None, max_length=48)
    has_branches = [bool(scorer.builder([q]).is_branch.any()) for q in queries]
    assert 0 < sum(has_branches) < len(queries)
    for q, branched in zip(queries, has_branches):
        assert torch.equal(scorer.mask_log_probs([q])[0], blind.mask_log_probs([q])[0]) != branched
    # a query whose branches would push its [MASK]s out of the tree is scored without branches
    q = next(q for q, branched in zip(queries, has_branches) if branched)
    fits_plain = len(q.input_ids) + 2
    tight = KBertScorer(scorer.model, tok, scorer.builder.branches, max_length=fits_plain)
    assert not ((tight.builder([q]).input_ids == tok.mask_token_id) & ~tight.builder([q]).is_branch).sum() == \
        int((q.input_ids == tok.mask_token_id).sum())                                 # branches cut a [MASK]
    tight_blind = KBertScorer(scorer.model, tok, None, max_length=fits_plain)
    assert torch.equal(tight.mask_log_probs([q])[0], tight_blind.mask_log_probs([q])[0]) and tight.fallbacks == 1
    with pytest.raises(ValueError, match="even without branches"):
        KBertScorer(scorer.model, tok, None, max_length=fits_plain - 3).mask_log_probs([q])
    with pytest.raises(ValueError, match="not a K-BERT export"):
        KBertScorer.from_pretrained(tmp_path / "run", store)


def test_mid_epoch_resume_is_exact(trex_corpus, tmp_path):
    import pytorch_lightning as pl

    from kept.fusion.kbert import KBertDataModule, KBertModule

    corpus, store = trex_corpus

    def run(ckpt_dir, resume=None):
        data = KBertDataModule(str(corpus), str(EN_VOCAB), str(store.path), batch_size=8, max_length=40,
                               val_fraction=0)
        model = KBertModule(vocab_size=data.vocab_size, hidden_size=32, num_layers=1, num_heads=2,
                            intermediate_size=64, max_position_embeddings=64, warmup_steps=2)
        ckpt = pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=4, save_top_k=-1,
                                            filename="{step}")
        trainer = pl.Trainer(max_epochs=2, callbacks=[ckpt], logger=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu")
        trainer.fit(model, data, ckpt_path=resume)
        return model.model.cls.predictions.decoder.weight.detach().clone(), model.kbert_options

    weights, options = run(tmp_path / "full")  # 2 epochs x 6 batches
    resumed, resumed_options = run(tmp_path / "resumed", resume=str(tmp_path / "full" / "step=8.ckpt"))
    assert torch.equal(weights, resumed) and options == resumed_options and options["max_entities"] == 2


def test_training_batch_for_benchmarks(trex_corpus):
    from kept.fusion.kbert import KBertModule, kbert_training_batch

    corpus, store = trex_corpus
    batch = kbert_training_batch(4, 64, corpus=corpus, store=store.path, vocab=EN_VOCAB)
    assert batch["input_ids"].shape == (4, 64) and batch["visible_matrix"].shape == (4, 64, 64)
    assert batch["is_branch"].any() and (batch["labels"] != -100).any()
    module = KBertModule(vocab_size=30522, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                         max_position_embeddings=64)
    assert torch.isfinite(module.losses(batch)["loss"])
    with pytest.raises(FileNotFoundError, match="no KG store"):
        kbert_training_batch(4, 64, corpus=corpus, store=corpus.parent / "nothing", vocab=EN_VOCAB)
