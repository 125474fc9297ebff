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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kept.data.examples import LinkedExample
from kept.kg.store import KGStore, open_store

#: the tokenizations of labels: "zh" one token per character (K-BERT), "en" the tokenizer's wordpieces
LANGUAGES = ("zh", "en")


def ragged_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64 [sum(lengths)]: ``concat(arange(s, s + n) for s, n in zip(starts, lengths))``, vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    before = np.cumsum(lengths) - lengths                                     # [k] output offset of each run
    return np.repeat(np.asarray(starts, dtype=np.int64) - before, lengths) + np.arange(total)


class CharVocab:
    """Character -> vocabulary id as one array lookup (Chinese BERT vocabularies have one id per character).

    tokenizer: a Hugging Face BERT tokenizer. A character missing from the vocabulary falls
    back to its lowercase form, then to ``[UNK]``; whitespace characters are dropped.
    """

    def __init__(self, tokenizer: Any):
        self.unk_id = int(tokenizer.unk_token_id)
        self.table = np.full(0x110000, self.unk_id, dtype=np.int64)          # [codepoints]
        vocab = tokenizer.get_vocab()
        singles = {piece: i for piece, i in vocab.items() if len(piece) == 1}
        lower_fallback = {c: singles[c.lower()] for c in map(chr, range(0x250)) if c not in singles
                          and len(c.lower()) == 1 and c.lower() in singles}
        for char, i in {**lower_fallback, **singles}.items():
            self.table[ord(char)] = i
        self.is_space = np.zeros(0x110000, dtype=bool)
        self.is_space[[ord(c) for c in " \t\n\r\x0b\x0c\u3000\u00a0\u2002\u2003\u2009\u200b"]] = True

    def codepoints(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids int64 [n], char_index int64 [n])``: the id of each non-space character and where it is."""
        points = self.codepoints(text)
        keep = np.flatnonzero(~self.is_space[points])
        return self.table[points[keep]], keep


class BranchTable:
    """Which branches each KG subject gets, and their tokens (cached per entity and relation).

    store: a KG store or its directory. tokenizer: the model's BERT tokenizer.
    language: "zh" (labels split into characters, the reference) or "en" (wordpieces).
    max_entities: branches per word at most (default 2). with_predicate: branch = relation
    label + object label (default True) or object label only. seed: seed of the candidate
    order (default 0). The table pickles as its options (DataLoader workers reopen the store).
    """

    def __init__(self, store: KGStore | str | Path, tokenizer: Any, language: str = "en", max_entities: int = 2,
                 with_predicate: bool = True, seed: int = 0):
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
        if max_entities < 0:
            raise ValueError(f"max_entities must be >= 0, got {max_entities}")
        self.store_path = Path(store.path if isinstance(store, KGStore) else store)
        self._store = store if isinstance(store, KGStore) else None
        self.tokenizer, self.language = tokenizer, language
        self.max_entities, self.with_predicate, self.seed = max_entities, with_predicate, seed
        self._reset_caches()

    def _reset_caches(self) -> None:
        self._order: tuple[np.ndarray, np.ndarray] | None = None
        self._chars = CharVocab(self.tokenizer) if self.language == "zh" else None
        self._relation_tokens: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._entity_start: np.ndarray | None = None                          # [N] offset in _pool, -1 uncached
        self._entity_length: np.ndarray | None = None                         # [N]
        self._pool = np.zeros(1024, dtype=np.int64)
        self._pool_size = 0

    def __getstate__(self) -> dict:
        return {k: self.__dict__[k] for k in ("store_path", "tokenizer", "language", "max_entities",
                                               "with_predicate", "seed")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._store = None
        self._reset_caches()

    @property
    def store(self) -> KGStore:
        if self._store is None:
            self._store = open_store(self.store_path)
        return self._store

    def options(self) -> dict:
        """The options that define the branches (for kept.json)."""
        return {"max_entities": self.max_entities, "with_predicate": self.with_predicate,
                "branch_seed": self.seed, "language": self.language}

    # ---- candidates ------------------------------------------------------------------------------
    def candidate_order(self) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr int64 [N + 1], triple_rows int64 [M])``: each subject's candidate edges in seeded order.

        Computed once for the whole store with sorts (no loop over entities).
        """
        if self._order is None:
            triples = np.asarray(self.store.triples)
            heads, tails = triples[:, 0].astype(np.int64), triples[:, 2].astype(np.int64)
            keys = np.random.default_rng([self.seed, 0x6B62]).random(len(triples))           # [E]
            rows = np.arange(len(triples))
            if not self.with_predicate:  # one candidate per distinct object
                by_object = np.lexsort((keys, tails, heads))
                first = np.ones(len(by_object), dtype=bool)
                first[1:] = (heads[by_object][1:] != heads[by_object][:-1]) | (tails[by_object][1:] != tails[by_object][:-1])
                rows = by_object[first]
            rows = rows[np.lexsort((keys[rows], heads[rows]))]
            counts = np.bincount(heads[rows], minlength=self.store.num_entities)
            self._order = (np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), rows.astype(np.int64))
        return self._order

    def candidates(self, entity_id: int) -> np.ndarray:
        """int64 [c]: triple rows of one subject's candidate branches, in the seeded order."""
        indptr, rows = self.candidate_order()
        return rows[indptr[entity_id] : indptr[entity_id + 1]]

    def choose(self, entity_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(owner int64 [R], triple_rows int64 [R])``: the first ``max_entities`` candidates of each entity.

        entity_ids: int [A]. ``owner[r]`` is the index in ``entity_ids`` the branch belongs to;
        branches come grouped by owner, in candidate order.
        """
        indptr, rows = self.candidate_order()
        entity_ids = np.asarray(entity_ids, dtype=np.int64)
        if len(entity_ids) and (entity_ids.min() < 0 or entity_ids.max() >= len(indptr) - 1):
            raise ValueError(f"entity id out of range 0..{len(indptr) - 2} for store {self.store_path}")
        count = np.minimum(indptr[entity_ids + 1] - indptr[entity_ids], self.max_entities)        # [A]
        owner = np.repeat(np.arange(len(entity_ids)), count)
        return owner, rows[ragged_index(indptr[entity_ids], count)]

    # ---- tokens ----------------------------------------------------------------------------------
    def _tokenize(self, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(lengths int64 [k], ids int64 [sum])`` of labels."""
        if not labels:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if self._chars is not None:  # one vocabulary lookup over all labels joined
            lengths = np.asarray([len(label) for label in labels], dtype=np.int64)
            points = self._chars.codepoints("".join(labels))
            keep = ~self._chars.is_space[points]
            owner = np.repeat(np.arange(len(labels)), lengths)
            return np.bincount(owner[keep], minlength=len(labels)), self._chars.table[points[keep]]
        ids = self.tokenizer(labels, add_special_tokens=False)["input_ids"]
        return np.asarray([len(x) for x in ids], dtype=np.int64), np.asarray([i for x in ids for i in x], np.int64)

    def relation_tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(starts [NR], lengths [NR], ids)``: every relation label tokenised (once)."""
        if self._relation_tokens is None:
            rows = self.store.db.execute("SELECT id, COALESCE(label, key) FROM relations ORDER BY id").fetchall()
            lengths, ids = self._tokenize([label for _, label in rows])
            self._relation_tokens = (np.cumsum(lengths) - lengths, lengths, ids)
        return self._relation_tokens

    def entity_tokens(self, entity_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, lengths)`` into :attr:`token_pool` of entity labels; labels are tokenised once."""
        if self._entity_start is None:
            self._entity_start = np.full(self.store.num_entities, -1, dtype=np.int64)
            self._entity_length = np.zeros(self.store.num_entities, dtype=np.int64)
        entity_ids = np.asarray(entity_ids, dtype=np.int64)
        missing = np.unique(entity_ids[self._entity_start[entity_ids] < 0])
        for chunk in np.array_split(missing, max(1, -(-len(missing) // 900))):   # SQLite's variable limit
            if not len(chunk):
                continue
            marks = ",".join("?" * len(chunk))
            rows = dict(self.store.db.execute(f"SELECT id, COALESCE(label, key) FROM entities WHERE id IN ({marks})",
                                              [int(i) for i in chunk]).fetchall())
            lengths, ids = self._tokenize([rows[int(i)] for i in chunk])
            while self._pool_size + len(ids) > len(self._pool):
                self._pool = np.concatenate([self._pool, np.zeros_like(self._pool)])
            self._pool[self._pool_size : self._pool_size + len(ids)] = ids
            self._entity_start[chunk] = self._pool_size + np.cumsum(lengths) - lengths
            self._entity_length[chunk] = lengths
            self._pool_size += len(ids)
        return self._entity_start[entity_ids], self._entity_length[entity_ids]

    @property
    def token_pool(self) -> np.ndarray:
        return self._pool[: self._pool_size]

    def branch_tokens(self, triple_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lengths int64 [R], ids int64 [sum])``: the tokens of each branch (relation + object, or object)."""
        triples = np.asarray(self.store.triples)[np.asarray(triple_rows, dtype=np.int64)]
        tail_start, tail_length = self.entity_tokens(triples[:, 2])
        pool = self.token_pool
        if not self.with_predicate:
            return tail_length, pool[ragged_index(tail_start, tail_length)]
        rel_starts, rel_lengths, rel_ids = self.relation_tokens()
        relations = triples[:, 1].astype(np.int64)
        # interleave [relation_r, object_r] runs over one array holding both token sources
        source = np.concatenate([rel_ids, pool])
        starts = np.stack([rel_starts[relations], tail_start + len(rel_ids)], axis=1).reshape(-1)       # [2R]
        lengths = np.stack([rel_lengths[relations], tail_length], axis=1).reshape(-1)                   # [2R]
        return rel_lengths[relations] + tail_length, source[ragged_index(starts, lengths)]

    def branches(self, entity_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(owner [R], lengths [R], ids)``: the chosen non-empty branches of each entity, tokenised."""
        owner, rows = self.choose(entity_ids)
        lengths, ids = self.branch_tokens(rows)
        keep = lengths > 0
        if keep.all():
            return owner, lengths, ids
        return owner[keep], lengths[keep], ids[np.repeat(keep, lengths)]


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
                     pad_to_max_length: bool = False) -> SentenceTree:
    """:func:`build_trees` on concatenated inputs: ``tokens`` int [T] (all sentences), ``lengths`` int [B],
    ``span_rows`` int [A] (sentence of each span), ``spans`` int [A, 2] (sentence coordinates), ``entity_ids`` [A]."""
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
        owner, b_len, b_ids = branches.branches(entity_ids)                             # [R], [R], [Q]

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

    def __call__(self, examples: Sequence[LinkedExample], input_ids: Sequence[np.ndarray] | None = None
                 ) -> SentenceTree:
        """Trees of ``examples``; ``input_ids`` optionally replaces their text token ids (e.g. masked ones).

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
                                self.max_length, self.pad_id, self.pad_to_max_length)
