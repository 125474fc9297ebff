"""Filtered link-prediction evaluation of translational embeddings (TransE).

What is computed, exactly:

* For every evaluation triple (h, r, t) two queries are ranked: the **tail** query
  (h, r, ?) against every entity as tail and the **head** query (?, r, t) against every
  entity as head. Candidates are ranked by TransE distance ‖e_h + w_r − e_t‖_p (smaller
  is better; L2 ranks by the squared distance, which gives the same order).
* **Filtered** setting (Bordes et al., 2013): every other candidate that forms a *known*
  true triple (in train, valid or test; :class:`KnownTriples`) is removed from the
  ranking; the true entity of the query itself is always kept.
* **Ties** get the mean of the optimistic and pessimistic rank: with ``better`` =
  #candidates strictly closer and ``ties`` = #other candidates at exactly the same
  distance, ``optimistic = 1 + better``, ``pessimistic = 1 + better + ties`` and
  ``rank = (optimistic + pessimistic) / 2 = 1 + better + ties / 2`` (PyKEEN's
  "realistic" rank). A NaN distance ranks last.
* Metrics per direction (``head``, ``tail``) and ``overall`` (both directions pooled,
  i.e. the mean over 2 × #triples queries): MR = mean rank, MRR = mean of 1 / rank,
  Hits@k = fraction of queries with rank ≤ k (k = 1, 3, 10).

Scoring is batched: a batch of b queries is compared with all N entities by one matrix
operation ([b, d] x [N, d] -> [b, N]: a matrix product for L2, ``torch.cdist`` or a
compiled fused loop for L1); known triples are looked up in sorted arrays built with
NumPy and written into the score matrix with one scatter.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from kept.kg.transe.kernels import Compiled

HITS_AT = (1, 3, 10)
SIDES = ("head", "tail")


def pairwise_distance(x: Tensor, y: Tensor, p: int, squared: bool = False) -> Tensor:
    """L_p distances between every row of ``x`` and every row of ``y``.

    x: [..., m, d], y: [..., n, d] (same leading dims) -> [..., m, n].
    p = 2 uses ``‖x‖² + ‖y‖² − 2 x·y`` (one matrix product); ``squared=True`` skips the
    square root (same ranking, used for evaluation). p = 1 uses ``torch.cdist``.
    """
    if p == 1:
        return torch.cdist(x, y, p=1.0)
    sq = (x * x).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(-2) - 2.0 * (x @ y.transpose(-1, -2))
    sq = sq.clamp_min(0.0)
    # clamp before the root: d sqrt / d sq is infinite at 0
    return sq if squared else sq.clamp_min(1e-12).sqrt()


def _l1_broadcast(x: Tensor, y: Tensor) -> Tensor:
    return (x.unsqueeze(1) - y.unsqueeze(0)).abs().sum(-1)  # [m, n]; fused (never materialised) once compiled


_l1_kernel = Compiled(_l1_broadcast)


def l1_distance_matrix(x: Tensor, y: Tensor, compiled: bool = False) -> Tensor:
    """L1 distances [m, n] between rows of x [m, d] and y [n, d], without gradient.

    ``compiled=True`` runs a ``torch.compile``-fused loop (about 6× faster than
    ``torch.cdist`` on CPU; see :mod:`kept.kg.transe.kernels` for the fallback), else
    ``torch.cdist``.
    """
    if compiled:
        return _l1_kernel(x, y)
    return torch.cdist(x, y, p=1.0)


#: total work (queries × entities × dim) from which L1 evaluation compiles its distance kernel
COMPILE_L1_FROM = 10**10


class KnownTriples:
    """Index of the true triples used to filter rankings.

    Tails of each (h, r) and heads of each (r, t) are kept in two arrays sorted by the key
    ``h·R + r`` (resp. ``t·R + r``): 24 bytes per triple (int64 keys, int32 ids), no table
    of size N·R.

    Args:
        triples: int [n, 3] (h, r, t), every triple known to be true (train + valid + test).
        num_relations: R, the number of relations.
    """

    def __init__(self, triples: np.ndarray, num_relations: int):
        self.num_relations = int(num_relations)
        r = np.asarray(triples[:, 1], dtype=np.int64)
        self._tail_keys, self._tails = self._sorted(triples[:, 0], r, triples[:, 2])
        self._head_keys, self._heads = self._sorted(triples[:, 2], r, triples[:, 0])

    def _sorted(self, entity: np.ndarray, relation: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = np.asarray(entity, dtype=np.int64) * self.num_relations + relation  # [n]
        order = np.argsort(keys, kind="stable")
        return keys[order], np.asarray(values, dtype=np.int32)[order]

    def entries(self, triples: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Known answers of the ``side`` ("head"/"tail") queries of a batch.

        triples: int [b, 3]. Returns (rows, cols): query ``rows[i]`` has known answer ``cols[i]``.
        """
        t = np.asarray(triples, dtype=np.int64)
        if side == "tail":
            keys, sorted_keys, values = t[:, 0] * self.num_relations + t[:, 1], self._tail_keys, self._tails
        else:
            keys, sorted_keys, values = t[:, 2] * self.num_relations + t[:, 1], self._head_keys, self._heads
        start = np.searchsorted(sorted_keys, keys, side="left")
        count = np.searchsorted(sorted_keys, keys, side="right") - start  # [b]
        rows = np.repeat(np.arange(len(t)), count)
        offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)  # 0..count-1 per query
        return rows, values[np.repeat(start, count) + offsets].astype(np.int64)


def auto_batch_size(num_entities: int, budget: int = 1 << 24) -> int:
    """Queries per evaluation batch so that the [b, N] score matrix has about ``budget`` floats."""
    return int(max(1, min(4096, budget // max(1, num_entities))))


class EvalBatches(torch.utils.data.Dataset):
    """Evaluation triples in batches, each with the known answers of its queries.

    Item i is a dict: ``triples`` [b, 3] int64 and, for side in head/tail,
    ``{side}_rows`` / ``{side}_cols`` int64 (the filter entries of :meth:`KnownTriples.entries`).
    Use with ``DataLoader(EvalBatches(...), batch_size=None)``.
    """

    def __init__(self, triples: np.ndarray, known: KnownTriples, batch_size: int):
        self.triples = np.asarray(triples, dtype=np.int64)
        self.known = known
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return -(-len(self.triples) // self.batch_size)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        triples = self.triples[i * self.batch_size : (i + 1) * self.batch_size]
        batch = {"triples": torch.from_numpy(triples)}
        for side in SIDES:
            rows, cols = self.known.entries(triples, side)
            batch[f"{side}_rows"], batch[f"{side}_cols"] = torch.from_numpy(rows), torch.from_numpy(cols)
        return batch


def filtered_ranks(distances: Tensor, targets: Tensor, rows: Tensor, cols: Tensor) -> tuple[Tensor, Tensor]:
    """Optimistic and pessimistic filtered ranks of the targets.

    distances: [b, N] float, smaller = better (modified in place: known answers become +inf);
    targets: [b] the true entity of each query; rows, cols: known answers to remove.
    Returns (optimistic, pessimistic), int64 [b] each; the rank is their mean.
    """
    target = distances.gather(1, targets.unsqueeze(1))  # [b, 1]
    distances.index_put_((rows, cols), distances.new_tensor(float("inf")))
    distances.scatter_(1, targets.unsqueeze(1), float("inf"))  # the target is counted apart
    better = (distances < target).sum(1)
    ties = (distances == target).sum(1)
    worst = distances.shape[1] - 1
    better = torch.where(target.squeeze(1).isnan(), torch.full_like(better, worst), better)
    return 1 + better, 1 + better + ties


def ranks_for_batch(entity: Tensor, relation: Tensor, batch: dict[str, Tensor], p: int,
                    compiled: bool = False) -> dict[str, tuple[Tensor, Tensor]]:
    """Filtered (optimistic, pessimistic) ranks of the head and tail queries of a batch.

    entity: [N, d], relation: [R, d] float; batch: an :class:`EvalBatches` item on the same
    device; p: 1 or 2; compiled: L1 through :func:`l1_distance_matrix`'s compiled kernel.
    Returns {"head": (opt [b], pes [b]), "tail": (...)}.
    """
    triples = batch["triples"]
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    e_h, w_r, e_t = entity[h], relation[r], entity[t]  # [b, d]
    out = {}
    for side, query, target in (("head", e_t - w_r, h), ("tail", e_h + w_r, t)):
        if p == 1:
            distances = l1_distance_matrix(query, entity, compiled)  # [b, N]
        else:
            distances = pairwise_distance(query, entity, p, squared=True)  # [b, N]
        out[side] = filtered_ranks(distances, target, batch[f"{side}_rows"], batch[f"{side}_cols"])
    return out


def rank_sums(optimistic: Tensor, pessimistic: Tensor) -> Tensor:
    """float64 [6]: count, Σ rank, Σ 1/rank, #(rank ≤ 1), #(rank ≤ 3), #(rank ≤ 10).

    Sums add up across batches and processes; :func:`metrics_from_sums` turns them into means.
    """
    rank = (optimistic + pessimistic).double() / 2  # [b]
    hits = [(rank <= k).sum().double() for k in HITS_AT]
    return torch.stack([rank.new_tensor(float(len(rank))), rank.sum(), (1.0 / rank).sum(), *hits])


def metrics_from_sums(sums: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    """{"head": s, "tail": s} of :func:`rank_sums` -> per-direction and overall metrics."""
    sums = {side: s.detach().double().cpu() for side, s in sums.items()}
    if sums:
        sums["overall"] = sum(sums.values())
    out = {}
    for side, s in sums.items():
        n = max(float(s[0]), 1.0)
        out[side] = {"count": int(s[0]), "mr": float(s[1]) / n, "mrr": float(s[2]) / n,
                     **{f"hits@{k}": float(s[3 + i]) / n for i, k in enumerate(HITS_AT)}}
    return out


@torch.no_grad()
def evaluate_link_prediction(entity: Tensor | np.ndarray, relation: Tensor | np.ndarray, triples: np.ndarray,
                             known: KnownTriples, p: int, batch_size: int = 0,
                             device: str | torch.device = "cpu",
                             compiled: bool | None = None) -> dict[str, dict[str, float]]:
    """Filtered link prediction of ``triples`` with TransE vectors.

    Args:
        entity: [N, d] entity vectors; relation: [R, d] relation vectors.
        triples: int [n, 3] (h, r, t) to rank, both directions.
        known: the true triples to filter (train + valid + test).
        p: distance norm, 1 or 2.
        batch_size: triples per batch (0 = :func:`auto_batch_size`).
        device: where to score.
        compiled: for L1, use the compiled distance kernel (None = when the work,
            2 · n · N · d, reaches ``COMPILE_L1_FROM`` and the device is a CPU).

    Returns:
        {"head": m, "tail": m, "overall": m}, m = {"count", "mr", "mrr", "hits@1", "hits@3", "hits@10"}.
    """
    entity = torch.as_tensor(np.asarray(entity) if not isinstance(entity, Tensor) else entity,
                             dtype=torch.float32, device=device)
    relation = torch.as_tensor(np.asarray(relation) if not isinstance(relation, Tensor) else relation,
                               dtype=torch.float32, device=device)
    batches = EvalBatches(triples, known, batch_size or auto_batch_size(len(entity)))
    if compiled is None:
        work = 2 * len(batches.triples) * entity.shape[0] * entity.shape[1]
        compiled = p == 1 and entity.device.type == "cpu" and work >= COMPILE_L1_FROM
    sums = {side: torch.zeros(6, dtype=torch.float64) for side in SIDES}
    for i in range(len(batches)):
        batch = {k: v.to(device) for k, v in batches[i].items()}
        for side, (optimistic, pessimistic) in ranks_for_batch(entity, relation, batch, p, compiled).items():
            sums[side] += rank_sums(optimistic, pessimistic).cpu()
    return metrics_from_sums(sums)
