"""K-BERT's sentence tree as published, written plainly: the reference for kept's batched builder.

:func:`reference_tree` is ``brain/knowgraph.py::add_knowledge_with_vm`` of the K-BERT
code for one sentence (per word, per token, a dense visible matrix filled row by row,
cut or padded to ``max_length``), on token ids instead of characters so that it serves
Chinese (a character per token) and English (wordpieces) alike.
:func:`seeded_lookup_table` gives the reference the branches kept would choose, as
strings, in kept's seeded order. ``tests/test_kbert.py`` checks
:class:`kept.fusion.kbert.tree.SentenceTreeBuilder` against these token for token, and
``bench/kbert_tree.py`` times it against them. Not used in training.
"""

from __future__ import annotations

import numpy as np

from kept.fusion.kbert.branches import BranchTable


def reference_tree(words: list[list[int]], word_branches: list[list[list[int]]], max_length: int,
                   pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sentence as published.

    words: the sentence's words as token-id lists ([CLS] is a one-token word).
    word_branches: for word i, its branches as token-id lists (already cut to max_entities).
    Returns ids [max_length], soft positions [max_length] and the visible matrix
    [max_length, max_length] (bool).
    """
    pos_idx, abs_idx, abs_idx_src = -1, -1, []
    pos_idx_tree, abs_idx_tree = [], []
    for token, entities in zip(words, word_branches):
        token_pos_idx = [pos_idx + i for i in range(1, len(token) + 1)]
        token_abs_idx = [abs_idx + i for i in range(1, len(token) + 1)]
        abs_idx = token_abs_idx[-1]
        entities_pos_idx, entities_abs_idx = [], []
        for ent in entities:
            entities_pos_idx.append([token_pos_idx[-1] + i for i in range(1, len(ent) + 1)])
            ent_abs_idx = [abs_idx + i for i in range(1, len(ent) + 1)]
            abs_idx = ent_abs_idx[-1]
            entities_abs_idx.append(ent_abs_idx)
        pos_idx_tree.append((token_pos_idx, entities_pos_idx))
        pos_idx = token_pos_idx[-1]
        abs_idx_tree.append((token_abs_idx, entities_abs_idx))
        abs_idx_src += token_abs_idx
    know_sent, pos = [], []
    for i, (token, entities) in enumerate(zip(words, word_branches)):
        know_sent += token
        pos += pos_idx_tree[i][0]
        for j, ent in enumerate(entities):
            know_sent += ent
            pos += pos_idx_tree[i][1][j]
    token_num = len(know_sent)
    visible_matrix = np.zeros((token_num, token_num))
    for src_ids, ents in abs_idx_tree:
        for id_ in src_ids:
            visible_matrix[id_, abs_idx_src + [idx for ent in ents for idx in ent]] = 1
        for ent in ents:
            for id_ in ent:
                visible_matrix[id_, ent + src_ids] = 1
    if token_num < max_length:
        pad_num = max_length - token_num
        know_sent += [pad_id] * pad_num
        pos += [max_length - 1] * pad_num
        visible_matrix = np.pad(visible_matrix, ((0, pad_num), (0, pad_num)), "constant")
    else:
        know_sent, pos = know_sent[:max_length], pos[:max_length]
        visible_matrix = visible_matrix[:max_length, :max_length]
    return np.asarray(know_sent), np.asarray(pos), visible_matrix.astype(bool)


def seeded_lookup_table(branches: BranchTable) -> dict[str, list[str]]:
    """subject label -> ALL its candidate branch strings ((predicate +) object label) in kept's
    seeded order; the reference takes ``[:max_entities]`` of it, as the published code did of its set."""
    store = branches.store
    labels = [label for _, label in store.db.execute("SELECT id, label FROM entities ORDER BY id")]
    relations = [label for _, label in store.db.execute("SELECT id, label FROM relations ORDER BY id")]
    indptr, rows = branches.candidate_order()
    triples = np.asarray(store.triples)
    table = {}
    for entity in np.flatnonzero(np.diff(indptr)):
        h_r_t = triples[rows[indptr[entity] : indptr[entity + 1]]]
        table[labels[entity]] = [(relations[r] if branches.with_predicate else "") + labels[t] for _, r, t in h_r_t]
    return table
