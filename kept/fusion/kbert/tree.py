"""K-BERT sentence trees, built batched: branch choice, soft positions and the visible matrix.

K-BERT (Liu et al., 2020) hangs knowledge branches off the words of a sentence
that match a KG subject and lets a stock BERT read the resulting *tree* through
soft positions and a visible matrix. kept builds exactly the tree of the
reference code (``brain/knowgraph.py::add_knowledge_with_vm``), for a whole batch
at once with array operations:

* **words and branch points.** A sentence is a :class:`~kept.data.examples.LinkedExample`:
  its ``entity_spans`` are the words that get branches, its ``entity_ids`` the KG
  subjects. Chinese: jieba words (the store's subject labels added as user words)
  split into characters, one token per character, as the reference
  (:class:`kept.fusion.kbert.JiebaSubjectSegmenter`); English: the linker's entity spans over wordpieces.
  ``[CLS]`` (and ``[SEP]`` when ``add_sep``) are one-token sentence words, as the
  reference's special tags.
* **branches** (:class:`BranchTable`): the subject's out-edges in the store; a branch is
  the tokens of ``relation label + object label`` (``with_predicate``, default) or of
  the object label alone; at most ``max_entities`` (default 2) per word. The reference
  took the first ``max_entities`` of a Python ``set`` (an order that changes with the
  process's hash seed); kept orders each subject's candidates by a seeded random key, so
  the choice is deterministic. Candidates are distinct ``(relation, object)`` pairs
  (distinct objects without the predicate), as the reference's set of strings.
* **tree order**: each word is followed by its branches, in order.
* **soft positions**: sentence tokens count 0, 1, 2, ... ignoring branches; a branch's
  tokens continue from its word's last position (every branch of a word restarts there);
  the next word resumes from that same position, so positions repeat.
* **visible matrix** ``visible[i, j]`` (token i may attend to token j): sentence tokens see
  every sentence token and the branches of their own word; branch tokens see their own
  branch and the tokens of their word.
* **truncation and padding** (the reference's rules): the tree is cut after
  ``max_length`` tokens, whatever is cut (a branch may lose its tail, later sentence words
  and ``[SEP]`` are dropped). Padding tokens get id ``pad_id``, position
  ``max_length - 1``, and see nothing and are seen by nobody. Batches are padded to their
  longest tree (``pad_to_max_length=False``, default) or to ``max_length`` (the reference).
  :class:`SentenceTreeBuilder` drops text tokens that cannot be in the tree (beyond
  ``max_length - 1``) before building; that changes nothing in the output.

Spans that overlap an earlier span of the same sentence are ignored (a sentence is a
sequence of words; linkers emit non-overlapping spans).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kept.data.examples import LinkedExample
from kept.fusion.kbert.branches import BranchTable, ragged_index


@dataclass
class SentenceTree:
    """A batch of K-BERT sentence trees. All tensors are [B, L] except ``visible_matrix`` [B, L, L].

    input_ids: token ids (``pad_id`` at padding). position_ids: soft positions.
    token_type_ids: zeros. attention_mask: 1 for tree tokens, 0 for padding.
    visible_matrix: bool, ``[b, i, j]`` = token i may attend to token j.
    is_branch: bool, a knowledge-branch token. sentence_index: index of a sentence token
    in its sentence ([CLS] = 0), -1 for branch tokens and padding.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    token_type_ids: torch.Tensor
    attention_mask: torch.Tensor
    visible_matrix: torch.Tensor
    is_branch: torch.Tensor
    sentence_index: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.__dict__)


def _drop_overlapping(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """Indices of the spans kept, sorted by (row, start): a span overlapping an earlier one is dropped."""
    order = np.lexsort((ends, starts, rows))
    key = rows[order] * (width + 1) + ends[order]                             # row dominates: cummax stays in-row
    reach = np.maximum.accumulate(key)
    prev = np.concatenate([[-1], reach[:-1]])
    overlaps = (prev // (width + 1) == rows[order]) & (prev % (width + 1) > starts[order])
    return order[~overlaps]


def build_trees(sentences: Sequence[np.ndarray], spans: Sequence[np.ndarray], entity_ids: Sequence[np.ndarray],
                branches: BranchTable | None, max_length: int = 128, pad_id: int = 0,
                pad_to_max_length: bool = False) -> SentenceTree:
    """Build the sentence trees of a batch, vectorised over all its tokens.

    sentences: per sentence, int [n] token ids including ``[CLS]`` (and ``[SEP]``) as sentence words.
    spans: per sentence, int [k, 2] half-open token spans of the words that get branches.
    entity_ids: per sentence, int [k] the store entity of each span.
    branches: the branch table (None: no knowledge, plain sentences).
    max_length: tree tokens kept (default 128). pad_id: padding id (default 0).
    pad_to_max_length: pad to ``max_length`` instead of the longest tree (default False).
    """
    if len(sentences) == 0:
        raise ValueError("cannot build trees for an empty batch")
    lengths = np.asarray([len(s) for s in sentences], dtype=np.int64)
    span_counts = np.asarray([len(s) for s in spans], dtype=np.int64)
    all_spans = np.concatenate([np.asarray(s, dtype=np.int64).reshape(-1, 2) for s in spans])
    all_ids = np.concatenate([np.asarray(e, dtype=np.int64).reshape(-1) for e in entity_ids])
    if len(all_ids) != len(all_spans):
        raise ValueError("spans and entity_ids must have the same length per sentence")
    return build_trees_flat(np.concatenate([np.asarray(s, dtype=np.int64) for s in sentences]), lengths,
                            np.repeat(np.arange(len(sentences)), span_counts), all_spans, all_ids, branches,
                            max_length, pad_id, pad_to_max_length)


def build_trees_flat(tokens: np.ndarray, lengths: np.ndarray, span_rows: np.ndarray, spans: np.ndarray,
                     entity_ids: np.ndarray, branches: BranchTable | None, max_length: int = 128, pad_id: int = 0,
                     pad_to_max_length: bool = False, withheld: np.ndarray | None = None) -> SentenceTree:
    """:func:`build_trees` on concatenated inputs: ``tokens`` int [T] (all sentences), ``lengths`` int [B],
    ``span_rows`` int [A] (sentence of each span), ``spans`` int [A, 2] (sentence coordinates), ``entity_ids`` [A].
    withheld: int [B] a store triple row each sentence's branches must not show (-1: none; default None)."""
    batch = len(lengths)
    row_start = np.cumsum(lengths) - lengths                                            # [B]
    s_row = np.repeat(np.arange(batch), lengths)                                        # [T]
    s_index = np.arange(len(tokens)) - row_start[s_row]                                 # [T] index in the sentence
    bad = (spans[:, 0] < 0) | (spans[:, 1] > lengths[span_rows]) | (spans[:, 0] >= spans[:, 1])
    if bad.any():
        row = int(span_rows[np.flatnonzero(bad)[0]])
        raise ValueError(f"sentence {row}: span {spans[bad][0].tolist()} is not within 0..{lengths[row]}")
    keep = _drop_overlapping(span_rows, spans[:, 0], spans[:, 1], int(lengths.max()))
    span_rows, span_start, span_end, entity_ids = span_rows[keep], spans[keep, 0], spans[keep, 1], entity_ids[keep]
    if branches is None or branches.max_entities == 0 or len(entity_ids) == 0:
        owner, b_len, b_ids = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    else:
        hidden = None if withheld is None else np.asarray(withheld, dtype=np.int64)[span_rows]   # [A]
        owner, b_len, b_ids = (branches.branches(entity_ids) if hidden is None                # [R], [R], [Q]
                               else branches.branches(entity_ids, hidden))

    # tree (abs) index of sentence tokens: index + branch tokens inserted after earlier words
    extra = np.zeros(len(tokens), dtype=np.int64)
    anchor = row_start[span_rows] + span_end - 1                                        # [A] word's last token
    extra[anchor] = np.bincount(owner, weights=b_len, minlength=len(entity_ids))        # branch tokens after it
    before = np.cumsum(extra) - extra                                                   # [T] exclusive, global
    s_abs = s_index + before - before[row_start[s_row]]                                 # [T]
    # branch tokens: after their word, after the earlier branches of the same word
    b_before = np.cumsum(b_len) - b_len                                                 # [R] exclusive, global
    b_first = np.searchsorted(owner, owner, side="left")                                # [R] first branch of owner
    q_branch = np.repeat(np.arange(len(b_len)), b_len)                                  # [Q]
    q_offset = np.arange(len(b_ids)) - b_before[q_branch]                               # [Q] offset in branch
    q_span = owner[q_branch]                                                            # [Q] its word
    q_row = span_rows[q_span]
    q_abs = s_abs[anchor[q_span]] + 1 + (b_before - b_before[b_first])[q_branch] + q_offset
    q_pos = span_end[q_span] + q_offset                                                 # word's last position + 1 + ...

    tree_length = lengths + np.bincount(q_row, minlength=batch)                        # [B]
    width = max_length if pad_to_max_length else int(min(max_length, tree_length.max()))
    rows, cols = np.concatenate([s_row, q_row]), np.concatenate([s_abs, q_abs])
    inside = cols < max_length                                                          # truncation
    rows, cols = rows[inside], cols[inside]

    def grid(fill: int, values: np.ndarray, dtype: type = np.int64) -> np.ndarray:
        out = np.full((batch, width), fill, dtype=dtype)
        out[rows, cols] = values[inside]
        return out

    from_sentence = np.arange(len(tokens) + len(b_ids)) < len(tokens)                            # [T + Q]
    is_sentence = grid(False, from_sentence, bool)                                               # [B, L]
    # sentence tokens see the sentence ...
    visible = is_sentence[:, :, None] & is_sentence[:, None, :]                                  # [B, L, L]
    # ... and each branch token its branch, its word, and is seen by its word (words and branches are
    # contiguous runs of tree columns: a few pairs per branch token, scattered)
    word_length = (span_end - span_start)[q_span]                                                # [Q]
    word_first = s_abs[row_start[q_row] + span_start[q_span]]                                    # [Q] tree column
    branch_length = b_len[q_branch]
    own_i, own_j = np.repeat(q_abs, branch_length), ragged_index(q_abs - q_offset, branch_length)
    word_i, word_j = np.repeat(q_abs, word_length), ragged_index(word_first, word_length)
    pair_row = np.concatenate([np.repeat(q_row, branch_length), np.repeat(q_row, word_length)])
    pair_i, pair_j = np.concatenate([own_i, word_i]), np.concatenate([own_j, word_j])
    fits = (pair_i < max_length) & (pair_j < max_length)
    visible[pair_row[fits], pair_i[fits], pair_j[fits]] = True
    visible[pair_row[fits], pair_j[fits], pair_i[fits]] = True      # symmetric: the word sees its branches
    input_ids = grid(pad_id, np.concatenate([tokens, b_ids]))                                    # [B, L]
    is_branch = grid(False, ~from_sentence, bool)
    return SentenceTree(torch.from_numpy(input_ids),
                        torch.from_numpy(grid(max_length - 1, np.concatenate([s_index, q_pos]))),
                        torch.zeros(input_ids.shape, dtype=torch.long),
                        torch.from_numpy((is_sentence | is_branch).astype(np.int64)),
                        torch.from_numpy(visible), torch.from_numpy(is_branch),
                        torch.from_numpy(grid(-1, np.concatenate([s_index, np.full(len(b_ids), -1)]))))


class SentenceTreeBuilder:
    """LinkedExamples -> :class:`SentenceTree` batches: ``[CLS] text [SEP]`` with branches on entity spans.

    tokenizer: the BERT tokenizer (for [CLS]/[SEP]/[PAD] ids). branches: a :class:`BranchTable`
    (None: plain sentences, no knowledge). max_length: tree tokens (default 128).
    add_sep: end the sentence with [SEP] (default True; the reference adds none to single
    sentences: ``add_sep=False`` reproduces it). pad_to_max_length: see :func:`build_trees`.
    """

    def __init__(self, tokenizer: Any, branches: BranchTable | None = None, max_length: int = 128,
                 add_sep: bool = True, pad_to_max_length: bool = False):
        if max_length < 2:
            raise ValueError("max_length must leave room for [CLS] and a token")
        self.cls_id, self.sep_id, self.pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
        self.branches, self.max_length = branches, max_length
        self.add_sep, self.pad_to_max_length = add_sep, pad_to_max_length

    def __call__(self, examples: Sequence[LinkedExample], input_ids: Sequence[np.ndarray] | None = None,
                 withheld: np.ndarray | None = None) -> SentenceTree:
        """Trees of ``examples``; ``input_ids`` optionally replaces their text token ids (e.g. masked ones);
        ``withheld`` int [B]: a store triple row each example's branches must not show (-1: none).

        Sentences are ``[CLS] text [SEP]`` with the text cut at ``max_length - 1`` tokens and no
        [SEP] when it was cut (what is cut can never be in the tree); spans are shifted past [CLS].
        """
        texts = [ex.input_ids for ex in examples] if input_ids is None else list(input_ids)
        full = np.asarray([len(t) for t in texts], dtype=np.int64)
        kept = np.minimum(full, self.max_length - 1)                                    # [B] text tokens kept
        sep = self.add_sep & (kept == full)
        cls_arr, sep_arr = np.asarray([self.cls_id]), np.asarray([self.sep_id])
        parts = [p for t, n, s in zip(texts, kept, sep) for p in (cls_arr, t[:n], sep_arr[: int(s)])]
        tokens = np.concatenate(parts).astype(np.int64)
        spans = np.concatenate([ex.entity_spans for ex in examples]).astype(np.int64).reshape(-1, 2)
        ids = np.concatenate([ex.entity_ids for ex in examples]).astype(np.int64)
        span_rows = np.repeat(np.arange(len(examples)), [len(ex.entity_ids) for ex in examples])
        fits = spans[:, 1] <= kept[span_rows]   # a span cut by the text cut would branch past max_length: drop it
        return build_trees_flat(tokens, 1 + kept + sep, span_rows[fits], spans[fits] + 1, ids[fits], self.branches,
                                self.max_length, self.pad_id, self.pad_to_max_length, withheld)
