"""Scoring helpers of the probe: chunked scorer calls, candidate scores of multi-wordpiece
objects (all pieces masked at once, or pseudo-log-likelihood), exclusion masks, common vocabularies."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from kept.data.examples import LinkedExample
from kept.probe.lama import ProbeDataError
from kept.probe.scorers import Scorer


def score_in_chunks(scorer: Scorer, examples: Sequence[LinkedExample], chunk_size: int
                    ) -> Iterator[tuple[int, list[torch.Tensor]]]:
    """``(start, log-probs of examples[start:start + chunk_size])``, checked against the contract."""
    for start in range(0, len(examples), chunk_size):
        chunk = list(examples[start : start + chunk_size])
        log_probs = scorer.mask_log_probs(chunk)
        if len(log_probs) != len(chunk):
            raise RuntimeError(f"{type(scorer).__name__}.mask_log_probs returned {len(log_probs)} results "
                               f"for {len(chunk)} examples")
        yield start, log_probs


def excluded_matrix(shape: torch.Size, columns: Sequence[Sequence[int]], gold: torch.Tensor) -> torch.Tensor:
    """bool [N, C]: True at ``columns[row]`` of each row (other true objects), False at the gold column."""
    excluded = torch.zeros(shape, dtype=torch.bool)
    rows = [r for r, cols in enumerate(columns) for _ in cols]
    flat = [c for cols in columns for c in cols]
    if flat:
        excluded[torch.as_tensor(rows), torch.as_tensor(flat)] = True
    excluded[torch.arange(len(gold)), gold] = False
    return excluded


def common_vocab_ids(tokenizer, tokens: Sequence[str]) -> torch.Tensor:
    """int64 [C]: sorted vocabulary ids of the common-vocabulary tokens the tokenizer knows."""
    vocab = tokenizer.get_vocab()
    ids = sorted({vocab[t] for t in tokens if t in vocab})
    if not ids:
        raise ProbeDataError("no token of the common vocabulary is in the model's vocabulary")
    return torch.as_tensor(ids, dtype=torch.int64)


def masked_scores(log_probs: torch.Tensor, candidate_ids: torch.Tensor) -> torch.Tensor:
    """float [q, C_n]: sum over i of ``log_probs[:, i, candidate_ids[:, i]]``.

    log_probs: float [q, n, V] log-probs at the n masks of q queries.
    candidate_ids: int64 [C_n, n] wordpieces of the candidates with n pieces.
    """
    positions = torch.arange(candidate_ids.shape[1])[:, None]                                # [n, 1]
    return log_probs[:, positions, candidate_ids.T].sum(dim=1)                               # [q, n, C_n] -> [q, C_n]


def masked_candidate_scores(scorer: Scorer, queries: Sequence[LinkedExample], candidate_ids: torch.Tensor,
                            chunk_size: int) -> torch.Tensor:
    """float [U, C_n]: :func:`masked_scores` of U queries with n masks each (all pieces masked at once)."""
    n = candidate_ids.shape[1]
    out = torch.empty(len(queries), len(candidate_ids))
    for start, log_probs in score_in_chunks(scorer, queries, chunk_size):
        if any(lp.shape[0] != n for lp in log_probs):
            raise RuntimeError(f"{type(scorer).__name__}: expected {n} [MASK] rows per query")
        out[start : start + len(log_probs)] = masked_scores(torch.stack(log_probs).float(), candidate_ids)
    return out


def pll_candidate_scores(scorer: Scorer, queries: Sequence[LinkedExample], candidate_ids: torch.Tensor,
                         mask_id: int, chunk_size: int) -> torch.Tensor:
    """float [U, C_n]: pseudo-log-likelihood of each candidate written into each query.

    For candidate c and position i the query's n masks are replaced by c's pieces except
    piece i, which stays masked; the score is the sum over i of log p(c_i) there.
    """
    num_candidates, n = candidate_ids.shape
    out = torch.zeros(len(queries), num_candidates)
    # one variant per (query, candidate, position), generated lazily chunk by chunk
    total = len(queries) * num_candidates * n
    flat_candidates = candidate_ids.numpy()
    for start in range(0, total, chunk_size):
        index = np.arange(start, min(start + chunk_size, total))
        q, rest = np.divmod(index, num_candidates * n)
        c, i = np.divmod(rest, n)
        variants = []
        for qq, cc, ii in zip(q.tolist(), c.tolist(), i.tolist()):
            base = queries[qq]
            ids = base.input_ids.copy()
            slots = np.flatnonzero(ids == mask_id)
            ids[slots] = flat_candidates[cc]
            ids[slots[ii]] = mask_id
            variants.append(dataclasses.replace(base, input_ids=ids))
        log_probs = scorer.mask_log_probs(variants)
        if any(lp.shape[0] != 1 for lp in log_probs):
            raise RuntimeError(f"{type(scorer).__name__}: expected one [MASK] row per PLL variant")
        rows = torch.cat(log_probs).float()                                                # [m, V]
        piece = torch.as_tensor(flat_candidates[c, i], dtype=torch.int64)
        picked = rows.gather(1, piece[:, None])[:, 0]                                      # [m]
        out.index_put_((torch.as_tensor(q), torch.as_tensor(c)), picked, accumulate=True)
    return out
