"""Filtered link-prediction evaluation against a brute-force reference (kept.kg.transe.evaluate)."""

import itertools

import numpy as np
import pytest
import torch

from kept.kg.transe.evaluate import (
    EvalBatches,
    KnownTriples,
    evaluate_link_prediction,
    filtered_ranks,
    l1_distance_matrix,
    pairwise_distance,
    ranks_for_batch,
)

torch.set_num_threads(2)


def brute_force_metrics(entity, relation, test, known, p):
    """Reference: loops over queries and candidates, float64 distances, rank = 1 + better + ties / 2."""
    known = {tuple(int(x) for x in row) for row in known}
    ranks = {"head": [], "tail": []}

    def candidate(h, r, t, side, e):  # the triple with entity e on the ranked side
        return (e, r, t) if side == "head" else (h, r, e)

    def dist(triple):
        head, rel, tail = triple
        return np.linalg.norm(entity[head] + relation[rel] - entity[tail], ord=p)

    for h, r, t in test:
        for side in ("head", "tail"):
            target = h if side == "head" else t
            d_target = dist((h, r, t))
            better = ties = 0
            for e in range(len(entity)):
                if e == target or candidate(h, r, t, side, e) in known:
                    continue
                d = dist(candidate(h, r, t, side, e))
                better += d < d_target
                ties += d == d_target
            ranks[side].append(1 + better + ties / 2)
    ranks["overall"] = ranks["head"] + ranks["tail"]
    out = {}
    for side, values in ranks.items():
        v = np.array(values, dtype=np.float64)
        out[side] = {"count": len(v), "mr": v.mean(), "mrr": (1 / v).mean(),
                     **{f"hits@{k}": (v <= k).mean() for k in (1, 3, 10)}}
    return out


def tiny_kg(seed=0, n_entities=15, n_relations=3, dim=4):
    """Integer-valued vectors in {-1, 0, 1}: exact arithmetic and many exact ties."""
    rng = np.random.default_rng(seed)
    entity = rng.integers(-1, 2, size=(n_entities, dim)).astype(np.float32)
    entity[5] = entity[3]  # deliberate duplicates: exact ties for any query
    entity[9] = entity[3]
    relation = rng.integers(-1, 2, size=(n_relations, dim)).astype(np.float32)
    triples = np.unique(np.stack([rng.integers(0, n_entities, 60), rng.integers(0, n_relations, 60),
                                  rng.integers(0, n_entities, 60)], axis=1), axis=0)
    return entity, relation, triples


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("batch_size", [1, 4, 0])
def test_matches_brute_force(p, batch_size):
    entity, relation, known = tiny_kg()
    test = known[::3]
    got = evaluate_link_prediction(entity, relation, test, KnownTriples(known, len(relation)), p, batch_size)
    want = brute_force_metrics(entity, relation, test, known, p)
    for side in ("head", "tail", "overall"):
        assert got[side]["count"] == want[side]["count"]
        for name in ("mr", "mrr", "hits@1", "hits@3", "hits@10"):
            assert got[side][name] == pytest.approx(want[side][name], rel=1e-12, abs=1e-12), (side, name)


def test_ties_and_filter_by_hand():
    """Candidates 0..4 for the tail query (0, 0, ?): hand-computed filtered ranks."""
    relation = np.zeros((1, 2), dtype=np.float32)
    entity = np.array([[0, 0], [1, 0], [1, 0], [0, 1], [3, 0]], dtype=np.float32)
    # query vector for the tail side is e_0 + r_0 = (0, 0); L1 distances: 0, 1, 1, 1, 3
    known = np.array([[0, 0, 1], [0, 0, 3]])
    batch = next(iter(torch.utils.data.DataLoader(
        EvalBatches(np.array([[0, 0, 1], [0, 0, 4]]), KnownTriples(known, 1), 8), batch_size=None)))
    ranks = ranks_for_batch(torch.from_numpy(entity), torch.from_numpy(relation), batch, p=1)
    optimistic, pessimistic = ranks["tail"]
    # target 1 (d=1): entity 0 closer; 2 ties (3 is known -> filtered): optimistic 2, pessimistic 3
    # target 4 (d=3): 0 and 2 closer (1 and 3 known -> filtered): rank 3
    assert optimistic.tolist() == [2, 3] and pessimistic.tolist() == [3, 3]


def test_nan_distance_ranks_last():
    distances = torch.tensor([[float("nan"), 1.0, 2.0, 3.0]])
    optimistic, pessimistic = filtered_ranks(distances, torch.tensor([0]), torch.empty(0, dtype=torch.long),
                                             torch.empty(0, dtype=torch.long))
    assert optimistic.item() == 4 and pessimistic.item() == 4


def test_known_triples_entries():
    _, _, known = tiny_kg(seed=1)
    index = KnownTriples(known, 3)
    queries = np.array([[0, 0, 0], [3, 1, 4], [14, 2, 7], *known[:5]])
    truth = {tuple(x) for x in known.tolist()}
    for side in ("head", "tail"):
        rows, cols = index.entries(queries, side)
        got = set(zip(rows.tolist(), cols.tolist()))
        want = {(i, e) for (i, (h, r, t)), e in itertools.product(enumerate(queries.tolist()), range(15))
                if ((e, r, t) if side == "head" else (h, r, e)) in truth}
        assert got == want


@pytest.mark.parametrize("p", [1, 2])
def test_pairwise_distance(p):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 5, 7, generator=g), torch.randn(2, 6, 7, generator=g)
    want = torch.linalg.vector_norm(x.unsqueeze(2) - y.unsqueeze(1), ord=p, dim=-1)  # [2, 5, 6]
    torch.testing.assert_close(pairwise_distance(x, y, p), want, rtol=1e-5, atol=1e-5)
    if p == 2:
        torch.testing.assert_close(pairwise_distance(x, y, 2, squared=True), want**2, rtol=1e-5, atol=1e-5)


def test_compiled_l1_matches_cdist():
    """The torch.compile kernel used for large L1 evaluations (falls back to cdist without a compiler)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(37, 10, generator=g), torch.randn(53, 10, generator=g)
    torch.testing.assert_close(l1_distance_matrix(x, y, compiled=True), torch.cdist(x, y, p=1), rtol=1e-5, atol=1e-5)
    entity, relation, known = tiny_kg()
    got = evaluate_link_prediction(entity, relation, known, KnownTriples(known, 3), 1, compiled=True)
    assert got == evaluate_link_prediction(entity, relation, known, KnownTriples(known, 3), 1, compiled=False)
