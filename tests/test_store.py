"""The store built from real K-BERT and OpenKE data: arrays, CSR, names, splits, filters."""

import numpy as np
import pytest
from conftest import need_data

from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store
from kept.kg.store import StoreError


def _lines(path):
    import gzip

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def test_medical_store_matches_the_file(medical_store):
    s = medical_store
    rows = _lines(need_data("kg", "Medical.spo"))
    names = {x for r in rows for x in (r[0], r[2])}
    unique = {tuple(r) for r in rows}
    assert s.num_entities == len(names)
    assert s.num_triples == len(unique)
    assert s.meta["counts"]["duplicate_triples_removed"] == len(rows) - len(unique)
    # every file triple is in the store, under its names
    got = {(s.entity_key(h), s.relation_key(r), s.entity_key(t)) for h, r, t in s.triples[:50].tolist()}
    assert got <= unique
    h, r, t = rows[0]
    rels, tails = s.neighbours(s.entity_id(h))
    assert (s.relation_id(r), s.entity_id(t)) in set(zip(rels.tolist(), tails.tolist()))
    assert s.label(s.entity_id("眼睛发红")) == "眼睛发红"


def test_triples_sorted_unique_and_csr_consistent(medical_store):
    s = medical_store
    tr = np.asarray(s.triples)
    assert tr.dtype == np.int32 and tr.shape[1] == 3
    order = np.lexsort((tr[:, 2], tr[:, 1], tr[:, 0]))
    assert np.array_equal(order, np.arange(len(tr)))  # sorted by (h, r, t)
    assert len(np.unique(tr, axis=0)) == len(tr)
    out_deg = np.bincount(tr[:, 0], minlength=s.num_entities)
    assert np.array_equal(np.diff(s.out_indptr), out_deg)
    in_deg = np.bincount(tr[:, 2], minlength=s.num_entities)
    assert np.array_equal(np.diff(s.in_indptr), in_deg)
    # in_index lists, for each entity, exactly the rows whose tail it is
    assert np.array_equal(np.sort(np.asarray(s.in_index)), np.arange(len(tr)))
    assert np.array_equal(tr[np.asarray(s.in_index), 2], np.repeat(np.arange(s.num_entities), in_deg))
    e = int(np.argmax(in_deg))
    rels, heads = s.in_neighbours(e)
    assert sorted(zip(heads.tolist(), rels.tolist())) == sorted(
        (h, r) for h, r, t in tr.tolist() if t == e)


def test_arrays_are_memory_mapped(medical_store):
    s = open_store(medical_store.path)
    assert isinstance(s.triples, np.memmap) and isinstance(s.out_indptr, np.memmap)


def test_small_spill_chunks_give_identical_store(tmp_path):
    """Partitioned sort (many buckets) must give the same bytes as the one-bucket path."""
    src = need_data("kg", "HowNet.spo.gz")
    a = open_store(build_store([(src, None)], tmp_path / "a", BuildOptions(progress=False)).path)
    b = open_store(build_store([(src, None)], tmp_path / "b", BuildOptions(progress=False, chunk_triples=3000)).path)
    for name in ("triples", "out_indptr", "in_indptr", "in_index"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.meta["counts"] == b.meta["counts"]
    assert a.entity(123) == b.entity(123)


def test_openke_splits_preserved():
    import tempfile

    src = need_data("kge", "FB15k-237")
    with tempfile.TemporaryDirectory() as d:
        s = open_store(build_store([(src, None)], f"{d}/fb", BuildOptions(progress=False)).path)
        assert s.split_names == ["test", "train", "valid"]
        assert (s.num_entities, s.num_relations) == (14541, 237)
        train, valid, test = s.split("train"), s.split("valid"), s.split("test")
        assert len(train) == 272115 and len(valid) == 17535 and len(test) == 20466
        # OpenKE ids survive (first appearance order == entity2id order); file order is h t r
        assert s.entity_key(0) == "/m/027rn" and [0, 0, 1] in train[:100].tolist()
        assert s.num_triples == len(np.unique(np.concatenate([train, valid, test]), axis=0))
        assert s.label(0) is not None  # from entity2text.txt
        with pytest.raises(KeyError, match="no split 'dev'"):
            s.split("dev")


def test_filters_match_brute_force(tmp_path, medical_store):
    full = np.asarray(medical_store.triples)
    deg = np.bincount(full[:, 0], minlength=medical_store.num_entities) + np.bincount(
        full[:, 2], minlength=medical_store.num_entities)
    src = need_data("kg", "Medical.spo")
    s = open_store(build_store([(src, None)], tmp_path / "m", BuildOptions(progress=False, min_degree=3)).path)
    kept_keys = {medical_store.entity_key(i) for i in np.flatnonzero(deg >= 3)}
    assert s.num_entities == len(kept_keys)
    assert {s.entity_key(i) for i in range(0, s.num_entities, 97)} <= kept_keys
    expect = sum(1 for h, r, t in full.tolist() if deg[h] >= 3 and deg[t] >= 3)
    assert s.num_triples == expect

    s = open_store(build_store([(src, None)], tmp_path / "top", BuildOptions(progress=False, max_entities=50)).path)
    assert s.num_entities == 50
    top = np.argsort(-deg, kind="stable")[:50]
    assert {s.entity_key(i) for i in range(50)} == {medical_store.entity_key(i) for i in top}


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="not a KG store"):
        open_store(tmp_path)
