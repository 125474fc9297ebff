"""Graph adapters on a real KG: k-hop subgraphs vs brute force, networkx names, DGL, N-Triples export."""

import importlib.util

import networkx as nx
import numpy as np
import pytest
from conftest import ROOT

from kept.kg import open_store
from kept.kg.build import BuildOptions, build_store
from kept.kg.graph import entity_iri, export_ntriples, k_hop_subgraph, k_hop_triples, to_dgl


def _brute_k_hop(triples, seeds, k, direction):
    frontier, seen, rows = set(seeds), set(seeds), set()
    for _ in range(k):
        nxt = set()
        for i, (h, _r, t) in enumerate(triples):
            if direction in ("out", "both") and h in frontier:
                rows.add(i)
                nxt.add(t)
            if direction in ("in", "both") and t in frontier:
                rows.add(i)
                nxt.add(h)
        frontier = nxt - seen
        seen |= frontier
    return sorted(rows)


@pytest.mark.parametrize("direction", ["out", "in", "both"])
@pytest.mark.parametrize("k", [1, 2])
def test_k_hop_matches_brute_force(medical_store, direction, k):
    triples = medical_store.triples.tolist()
    deg = medical_store.degree()
    seeds = [int(np.argmax(deg)), 5, 1234]
    got = k_hop_triples(medical_store, seeds, k, direction).tolist()
    assert got == _brute_k_hop(triples, seeds, k, direction)


def test_k_hop_subgraph_is_networkx_with_names(medical_store):
    s = medical_store
    e = s.entity_id("咽喉部充血")
    g = k_hop_subgraph(s, [e], k=1)
    assert isinstance(g, nx.MultiDiGraph)
    assert g.nodes[e]["label"] == "咽喉部充血"
    rels, tails = s.neighbours(e)
    for r, t in zip(rels.tolist(), tails.tolist()):
        assert any(d["relation"] == r for d in g.get_edge_data(e, t).values())
    assert g.number_of_edges() == len(k_hop_triples(s, [e], 1))


def test_export_ntriples_round_trips_through_rdflib(medical_store, tmp_path):
    from rdflib import Graph, URIRef
    from rdflib.namespace import RDFS

    s = medical_store
    e = s.entity_id("咽喉部充血")
    rows = k_hop_triples(s, [e], 2)
    out = tmp_path / "sub.nt"
    assert export_ntriples(s, out, rows, batch=7) == len(rows)
    g = Graph().parse(out, format="nt")
    expected = {(entity_iri(s.entity_key(h)), entity_iri(s.entity_key(t)))
                for h, _r, t in s.triples[rows].tolist()}
    got = {(str(a), str(b)) for a, p, b in g if p != RDFS.label}
    assert got == expected
    assert (URIRef(entity_iri("咽喉部充血")), RDFS.label, None) in g


@pytest.mark.skipif(importlib.util.find_spec("dgl") is None, reason="DGL is optional and not importable here")
def test_to_dgl(medical_store):
    g = to_dgl(medical_store)
    assert g.num_nodes() == medical_store.num_entities and g.num_edges() == medical_store.num_triples


@pytest.mark.skipif(importlib.util.find_spec("dgl") is not None, reason="DGL is installed")
def test_to_dgl_without_dgl_says_how(medical_store):
    with pytest.raises(ImportError, match="optional"):
        to_dgl(medical_store)


def _snapshot(store):
    db = store.db
    keys = [k for k, in db.execute("SELECT key FROM entities ORDER BY id")]
    rel_keys = [k for k, in db.execute("SELECT key FROM relations ORDER BY id")]
    return {"entities": sorted(db.execute("SELECT key, label, lang, description FROM entities")),
            "aliases": sorted(db.execute("SELECT e.key, a.alias, a.lang FROM aliases a JOIN entities e ON e.id = a.entity_id")),
            "relations": sorted(db.execute("SELECT key, label, description FROM relations")),
            "relation_aliases": sorted(db.execute("SELECT r.key, a.alias, a.lang FROM relation_aliases a "
                                                  "JOIN relations r ON r.id = a.relation_id")),
            "attributes": sorted(db.execute("SELECT e.key, a.name, a.value FROM attributes a "
                                            "JOIN entities e ON e.id = a.entity_id")),
            "triples": sorted((keys[h], rel_keys[r], keys[t]) for h, r, t in np.asarray(store.triples).tolist())}


@pytest.mark.parametrize("source, languages", [("trex/trex_facts.nt.gz", ("en",)), ("kbert/Medical.spo", ()),
                                               ("cndbpedia/baike_triples_sample.txt", ("zh",))])
def test_store_to_ntriples_to_store_is_lossless(tmp_path, source, languages):
    from kept.kg.sources import ReaderOptions

    options = BuildOptions(reader=ReaderOptions(languages=languages) if languages else ReaderOptions(),
                           progress=False)
    build_store([(ROOT / "kg_data" / source, None)], tmp_path / "a", options)
    a = open_store(tmp_path / "a")
    export_ntriples(a, tmp_path / "a.nt", batch=997)
    build_store([(tmp_path / "a.nt", None)], tmp_path / "b", options)
    before, after = _snapshot(a), _snapshot(open_store(tmp_path / "b"))
    for part in before:
        assert before[part] == after[part], part
    assert before["triples"] and (before["aliases"] or before["attributes"] or source.endswith(".spo"))
