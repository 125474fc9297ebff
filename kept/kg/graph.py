"""Graph adapters: k-hop subgraphs, networkx and DGL views, N-Triples export via rdflib.

The store keeps its graph as CSR arrays; these functions hand it to the graph
libraries people already use. Neighbourhood expansion is vectorised over the
whole frontier (no per-node Python loop).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np

from kept.kg.store import KGStore

WIKIDATA_ENTITY = "http://www.wikidata.org/entity/"
WIKIDATA_DIRECT = "http://www.wikidata.org/prop/direct/"
KEPT_ENTITY = "urn:kept:entity:"
KEPT_RELATION = "urn:kept:relation:"
#: descriptions are written as schema:description, a predicate the N-Triples reader reads back as one
SCHEMA_DESCRIPTION_IRI = "http://schema.org/description"
_QID, _PID = re.compile(r"^Q\d+$"), re.compile(r"^P\d+$")


def _ranges(indptr: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Concatenation of arange(indptr[n], indptr[n+1]) for every node, without a Python loop."""
    starts, ends = indptr[nodes], indptr[nodes + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def k_hop_triples(store: KGStore, seeds: Sequence[int], k: int = 1, direction: str = "both") -> np.ndarray:
    """Row numbers (into ``store.triples``) of every triple within ``k`` hops of ``seeds``.

    direction: ``"out"`` follows head -> tail only, ``"in"`` tail -> head only,
        ``"both"`` (default) treats the graph as undirected.
    """
    if direction not in ("out", "in", "both"):
        raise ValueError(f"direction must be 'out', 'in' or 'both', not {direction!r}")
    seen = np.zeros(store.num_entities, dtype=bool)
    frontier = np.unique(np.asarray(seeds, dtype=np.int64))
    seen[frontier] = True
    rows = []
    for _ in range(k):
        if len(frontier) == 0:
            break
        found = []
        if direction in ("out", "both"):
            out_rows = _ranges(store.out_indptr, frontier)
            rows.append(out_rows)
            found.append(store.triples[out_rows, 2])
        if direction in ("in", "both"):
            in_rows = np.asarray(store.in_index[_ranges(store.in_indptr, frontier)], dtype=np.int64)
            rows.append(in_rows)
            found.append(store.triples[in_rows, 0])
        nxt = np.unique(np.concatenate(found)).astype(np.int64)
        frontier = nxt[~seen[nxt]]
        seen[frontier] = True
    return np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)


def k_hop_subgraph(store: KGStore, seeds: Sequence[int], k: int = 1, direction: str = "both"):
    """The k-hop neighbourhood of ``seeds`` as a ``networkx.MultiDiGraph``.

    Nodes are store entity ids with attributes ``key`` and ``label``; edges carry
    ``relation`` (id) and ``relation_key``.
    """
    return to_networkx(store, k_hop_triples(store, seeds, k, direction), extra_nodes=seeds)


def to_networkx(store: KGStore, rows: np.ndarray | None = None, extra_nodes: Sequence[int] = ()):
    """The store (or the triples at ``rows``) as a ``networkx.MultiDiGraph`` with names."""
    import networkx as nx

    triples = np.asarray(store.triples if rows is None else store.triples[rows])
    nodes = np.unique(np.concatenate([triples[:, 0], triples[:, 2], np.asarray(extra_nodes, dtype=np.int64)]))
    graph = nx.MultiDiGraph()
    names = dict(_names(store, nodes))
    graph.add_nodes_from((int(n), {"key": names[int(n)][0], "label": names[int(n)][1]}) for n in nodes)
    rel_keys = {i: store.relation_key(i) for i in np.unique(triples[:, 1]).tolist()}
    graph.add_edges_from((h, t, {"relation": r, "relation_key": rel_keys[r]}) for h, r, t in triples.tolist())
    return graph


def _names(store: KGStore, ids: np.ndarray):
    """(id, (key, label)) for many ids, in SQL batches."""
    for eid, key, label in _sql_rows(store, "SELECT id, key, label FROM entities WHERE id IN ({})", ids):
        yield eid, (key, label)


def to_dgl(store: KGStore):
    """The whole store as a DGL graph (edge data ``rel``); needs the optional ``dgl`` package."""
    try:
        import dgl
        import torch
    except ImportError as exc:  # DGL is an optional extra (see DESIGN.md)
        raise ImportError("to_dgl needs the optional DGL package, which is not importable here; `pip install kept[dgl]` "
                          "where a DGL build for your torch exists") from exc
    triples = torch.from_numpy(np.asarray(store.triples, dtype=np.int64))
    graph = dgl.graph((triples[:, 0], triples[:, 2]), num_nodes=store.num_entities)
    graph.edata["rel"] = triples[:, 1]
    return graph


def entity_iri(key: str) -> str:
    """IRI of an entity key: Wikidata QIDs and IRIs as they are, other names under ``urn:kept:entity:``."""
    if _QID.match(key):
        return WIKIDATA_ENTITY + key
    if "://" in key:
        return key
    return KEPT_ENTITY + quote(key, safe="")


def relation_iri(key: str) -> str:
    if _PID.match(key):
        return WIKIDATA_DIRECT + key
    if "://" in key:
        return key
    return KEPT_RELATION + quote(key, safe="")


def export_ntriples(store: KGStore, out: str | Path, rows: np.ndarray | None = None, batch: int = 50_000) -> int:
    """Write triples (all, or those at ``rows``) and the names of their entities and relations as
    N-Triples through rdflib, so that ``kept kg build`` of the file gives the store back.

    Per entity: ``rdfs:label`` and ``schema:description`` with the label's language tag,
    ``skos:altLabel`` per alias (its own tag), attributes as literal triples; per relation its label
    and aliases. A full export (``rows`` None) also writes entities without triples (their names).
    Keys that are not Wikidata ids become ``urn:kept:entity:<key>`` / ``urn:kept:relation:<key>``
    IRIs, which the N-Triples reader turns back into the key. Written in batches of ``batch`` triples
    (memory bounded) to a temporary file renamed at the end. Returns the number of entity triples.
    """
    from rdflib import Graph, URIRef

    out = Path(out)
    everything = rows is None
    rows = np.arange(store.num_triples) if rows is None else np.asarray(rows)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    rel_iris = {i: URIRef(relation_iri(store.relation_key(i))) for i in range(store.num_relations)}
    try:
        with open(tmp, "wb") as f:
            g = Graph()
            _relation_names(store, g, rel_iris)
            f.write(g.serialize(format="nt", encoding="utf-8"))
            written = np.zeros(store.num_entities, dtype=bool)
            for i in range(0, len(rows), batch):
                triples = np.asarray(store.triples[rows[i : i + batch]])
                nodes = np.unique(np.concatenate([triples[:, 0], triples[:, 2]]))
                keys = {eid: key for eid, key in _sql_rows(store, "SELECT id, key FROM entities WHERE id IN ({})", nodes)}
                names = _entity_names(store, Graph(), nodes[~written[nodes]])   # each entity's names once
                written[nodes] = True
                g = Graph()
                for h, r, t in triples.tolist():
                    g.add((URIRef(entity_iri(keys[h])), rel_iris[r], URIRef(entity_iri(keys[t]))))
                f.write(g.serialize(format="nt", encoding="utf-8"))
                f.write(names.serialize(format="nt", encoding="utf-8"))
            rest = np.flatnonzero(~written) if everything else np.zeros(0, np.int64)
            for i in range(0, len(rest), batch):
                f.write(_entity_names(store, Graph(), rest[i : i + batch]).serialize(format="nt", encoding="utf-8"))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(rows)


def _sql_rows(store: KGStore, query: str, ids: np.ndarray):
    ids = [int(i) for i in ids]
    for i in range(0, len(ids), 900):                                      # SQLite's variable limit
        part = ids[i : i + 900]
        yield from store.db.execute(query.format(",".join("?" * len(part))), part)


def _entity_names(store: KGStore, g, ids: np.ndarray):
    """``g`` with the names of entities ``ids`` added (labels, descriptions, aliases, attributes)."""
    from rdflib import Literal, URIRef
    from rdflib.namespace import RDFS, SKOS

    iri = {}
    for eid, key, label, lang, description in _sql_rows(
            store, "SELECT id, key, label, lang, description FROM entities WHERE id IN ({})", ids):
        iri[eid] = URIRef(entity_iri(key))
        if label is not None:
            g.add((iri[eid], RDFS.label, Literal(label, lang=lang or None)))
        if description is not None:
            g.add((iri[eid], URIRef(SCHEMA_DESCRIPTION_IRI), Literal(description, lang=lang or None)))
    for eid, alias, lang in _sql_rows(store, "SELECT entity_id, alias, lang FROM aliases WHERE entity_id IN ({})", ids):
        g.add((iri[eid], SKOS.altLabel, Literal(alias, lang=lang or None)))
    for eid, name, value in _sql_rows(store, "SELECT entity_id, name, value FROM attributes WHERE entity_id IN ({})",
                                      ids):
        g.add((iri[eid], URIRef(relation_iri(name)), Literal(value)))
    return g


def _relation_names(store: KGStore, g, rel_iris: dict) -> None:
    from rdflib import Literal, URIRef
    from rdflib.namespace import RDFS, SKOS

    for rid, label, description in store.db.execute("SELECT id, label, description FROM relations"):
        if label is not None:
            g.add((rel_iris[rid], RDFS.label, Literal(label)))
        if description is not None:
            g.add((rel_iris[rid], URIRef(SCHEMA_DESCRIPTION_IRI), Literal(description)))
    for rid, alias, lang in store.db.execute("SELECT relation_id, alias, lang FROM relation_aliases"):
        g.add((rel_iris[rid], SKOS.altLabel, Literal(alias, lang=lang or None)))


def describe(store: KGStore, top: int = 10) -> dict:
    """What the graph looks like, as PyKEEN's dataset summary: relations by triple count, degree
    statistics and the best-connected entities (``kept kg info``).

    top: relations and entities listed (default 10). Returns ``{"relations": [{"key", "label",
    "triples"}], "degree": {"mean", "median", "max", "isolated"}, "top_entities": [{"key", "label",
    "degree"}]}``; counts come from the memory-mapped arrays (``np.bincount``), labels from SQLite.
    """
    triples = np.asarray(store.triples)
    counts = np.bincount(triples[:, 1], minlength=store.num_relations) if len(triples) else \
        np.zeros(store.num_relations, np.int64)
    order = np.argsort(-counts, kind="stable")[:top]
    relations = [{"key": store.relation_key(int(r)), "label": store.relation_label(int(r)), "triples": int(counts[r])}
                 for r in order]
    degree = store.degree()
    busiest = np.argsort(-degree, kind="stable")[:top]
    entities = [{"key": store.entity_key(int(e)), "label": store.label(int(e)), "degree": int(degree[e])}
                for e in busiest if degree[e] > 0]
    stats = {"mean": round(float(degree.mean()), 2) if len(degree) else 0.0,
             "median": float(np.median(degree)) if len(degree) else 0.0,
             "max": int(degree.max(initial=0)), "isolated": int(np.sum(degree == 0))}
    return {"relations": relations, "degree": stats, "top_entities": entities}

