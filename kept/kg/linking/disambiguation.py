"""Disambiguation: pick one entity among the candidates of each mention, with a confidence.

For a mention ``m`` with candidates ``e_1..e_k`` (the ``max_candidates`` most
connected entities sharing the matched name), each candidate gets a logit ::

    z(e) = prior_weight     * log(1 + degree(e))                     (alias prior)
         + label_bonus      * [the matched name is e's label, not only an alias]
         + context_weight   * min(overlap(e), context_cap)           (context)
         + coherence_weight * coherence(e)                           (KG coherence)

and the linker's score is the softmax probability of the best candidate,
``score = max_e exp(z(e)) / sum_e' exp(z(e'))``; a mention is kept when
``score >= threshold``. A mention with one candidate has score 1 and none of
the features is computed: only ambiguous mentions pay for context and coherence.

* **prior**: kept's sources have no link counts, so the alias prior is the
  entity's degree (triples it takes part in, ``store.degree()``), add-one
  smoothed: ``softmax(prior_weight * log(1 + degree))`` is ``P(e | name)``
  proportional to ``(1 + degree) ** prior_weight``.
* **overlap(e)**: the number of distinct content tokens of the entity's bag
  (:mod:`kept.kg.linking.entity_bags`: its names, description, neighbour and relation
  labels) that occur in the text and start within ``context_chars`` characters
  before or after the mention (tokens inside the mention do not count).
  Content tokens are defined in :mod:`kept.kg.linking.textnorm` (lower-cased words of
  two or more characters that are not stop words; CJK character bigrams),
  compared by hashed id.
* **coherence(e)**: mean cosine similarity between e's TransE vector and the
  vectors of the entities chosen for the (up to) ``coherence_window`` mentions
  on each side of this one, where ambiguous neighbours count with their choice
  from prior + label + context alone (``store.entity_vectors("transe")``; 0
  when the store has no vectors or the text has a single mention).

All features are computed for all ambiguous mentions of a text at once with
NumPy (no Python loop over mentions or candidates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kept.kg.linking.alias_index import AliasIndex
from kept.kg.linking.entity_bags import gather_ranges, sorted_unique, unique_inverse
from kept.kg.linking.textnorm import content_ids
from kept.kg.store import KGStore

_32 = np.uint64(32)


@dataclass(frozen=True)
class DisambiguationConfig:
    """Weights of the score (see the module docstring) and the bounds on the work per mention.

    prior_weight: weight of log(1 + degree) (default 1.0).
    label_bonus: added when the matched name is the entity's label (default 1.0).
    context_weight: per shared context token (default 1.0); context_cap: most tokens counted (default 5).
    context_chars: characters of context on each side of a mention (default 250).
    coherence_weight: weight of the mean TransE cosine (default 2.0); coherence_window: mentions
        on each side used as anchors (default 10).
    max_candidates: most connected candidates scored per mention (default 32).
    vectors: name of the store's embeddings used for coherence (default "transe"; None = no coherence).
    """

    prior_weight: float = 1.0
    label_bonus: float = 1.0
    context_weight: float = 1.0
    context_cap: int = 5
    context_chars: int = 250
    coherence_weight: float = 2.0
    coherence_window: int = 10
    max_candidates: int = 32
    vectors: str | None = "transe"


class Disambiguator:
    """Scores the candidates of ambiguous mentions.

    store: the KG store (degrees, TransE vectors).
    index: the alias index (entity context bags).
    config: weights and bounds.
    """

    def __init__(self, store: KGStore, index: AliasIndex, config: DisambiguationConfig):
        self.index, self.config = index, config
        self.log_degree = np.log1p(store.degree()).astype(np.float32)      # [num_entities]
        self.vectors: np.ndarray | None = None                             # [num_entities, dim] or None
        if config.vectors and config.coherence_weight:
            try:
                self.vectors = store.entity_vectors(config.vectors)
            except KeyError:
                self.vectors = None

    def choose(self, text: str, spans: np.ndarray, fixed: np.ndarray, pair_mention: np.ndarray,
               pair_entity: np.ndarray, pair_label: np.ndarray, limits: np.ndarray | None = None,
               doc: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pick an entity for each ambiguous mention of one text.

        text: the text the mentions are in.
        spans: int [M, 2] character spans of all mentions of the text, in text order.
        fixed: int [M] entity of each unambiguous mention, -1 for the ambiguous ones.
        pair_mention, pair_entity, pair_label: int [Q], int [Q], bool [Q] -- the candidates of
            the ambiguous mentions, one row per (mention, candidate), grouped by mention.
        limits: int [M, 2] character range the context of each mention may use (default: all of
            ``text``); doc: int [M] which document each mention is in, for linking several texts
            joined into one: coherence only looks at mentions of the same document.
        Returns (entity int64 [M], score float32 [M]); unambiguous mentions keep their entity, score 1.
        """
        cfg = self.config
        spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        limits = np.asarray(limits, np.int64) if limits is not None else np.tile([0, len(text)], (len(spans), 1))
        doc = np.asarray(doc, np.int64) if doc is not None else np.zeros(len(spans), np.int64)
        entity = np.asarray(fixed, dtype=np.int64).copy()
        score = np.ones(len(entity), dtype=np.float32)
        if len(pair_mention) == 0:
            return entity, score
        pm, pe = np.asarray(pair_mention, np.int64), np.asarray(pair_entity, np.int64)
        seg = np.flatnonzero(np.append(True, pm[1:] != pm[:-1]))               # [A] first row of each mention
        seg_id = np.repeat(np.arange(len(seg)), np.diff(np.append(seg, len(pm))))  # [Q] mention group of row
        z = cfg.prior_weight * self.log_degree[pe] + cfg.label_bonus * np.asarray(pair_label, np.float32)
        if cfg.context_weight:
            z = z + cfg.context_weight * np.minimum(self.overlap(text, spans, limits, pm, pe), cfg.context_cap)
        best = _segment_argmax(z, seg, seg_id)                                 # [A] row of each winner
        entity[pm[seg]] = pe[best]
        if self.vectors is not None and len(entity) > 1 and cfg.coherence_window > 0:
            z = z + cfg.coherence_weight * self.coherence(pm, pe, entity, doc)
            best = _segment_argmax(z, seg, seg_id)
            entity[pm[seg]] = pe[best]
        denominator = np.add.reduceat(np.exp(z - z[best][seg_id]), seg)        # [A]
        score[pm[seg]] = 1.0 / denominator
        return entity, score

    def overlap(self, text: str, spans: np.ndarray, limits: np.ndarray, pm: np.ndarray, pe: np.ndarray
                ) -> np.ndarray:
        """float32 [Q]: distinct bag tokens of entity ``pe[q]`` found in the context of mention ``pm[q]``."""
        tokens, starts = content_ids(text)                                     # [P], [P]
        if len(tokens) == 0:
            return np.zeros(len(pm), dtype=np.float32)
        occurrences = np.sort((tokens.astype(np.uint64) << _32) | starts.astype(np.uint64))  # [P] (token, start)
        # bag tokens that may occur in the text (hashed bitmap: a few false positives, checked below),
        # gathered once per distinct candidate entity
        size = 1 << int(np.clip(np.ceil(np.log2(64 * len(tokens))), 10, 22))  # ~1.5% false positives
        mask = np.uint32(size - 1)
        bitmap = np.zeros(size, dtype=bool)
        bitmap[tokens & mask] = True
        entities, of_entity = unique_inverse(pe)                               # [U], [Q]
        ptr = self.index.bag_indptr
        lengths = ptr[entities + 1] - ptr[entities]                            # [U]
        bag = self.index.bag_tokens[gather_ranges(ptr[entities], lengths)]     # [Bu]
        owner = np.repeat(np.arange(len(entities)), lengths)                   # [Bu]
        maybe = bitmap[bag & mask]                                     # most bag tokens are not
        bag, owner = bag[maybe], owner[maybe]
        present_ptr = np.zeros(len(entities) + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=len(entities)), out=present_ptr[1:])
        # one row per (mention, candidate, bag token): does the token occur in the mention's context?
        lengths = present_ptr[of_entity + 1] - present_ptr[of_entity]          # [Q]
        row = np.repeat(np.arange(len(pe)), lengths)                           # [B]
        token = bag[gather_ranges(present_ptr[of_entity], lengths)].astype(np.uint64) << _32  # [B]
        m = pm[row]                                                            # [B] mention of the row
        width = self.config.context_chars
        window = np.stack([np.maximum(spans[:, 0] - width, limits[:, 0]), spans[:, 0],
                           spans[:, 1], np.minimum(spans[:, 1] + width, limits[:, 1])], 1).astype(np.uint64)
        occurrences = np.append(occurrences, np.uint64(2**64 - 1))            # sentinel past the end
        hit = np.zeros(len(token), dtype=bool)
        for a, b in ((0, 1), (2, 3)):                                          # [lo, start) and [end, hi)
            first = occurrences[np.searchsorted(occurrences, token | window[m, a])]
            hit |= first < (token | window[m, b])
        return np.bincount(row[hit], minlength=len(pe)).astype(np.float32)

    def coherence(self, pm: np.ndarray, pe: np.ndarray, anchors: np.ndarray, doc: np.ndarray) -> np.ndarray:
        """float32 [Q]: mean cosine of ``pe[q]``'s vector with the anchors of the mentions around ``pm[q]``.

        anchors: int64 [M] the entity currently chosen for each mention.
        doc: int64 [M] document of each mention, non-decreasing (anchors come from the same document).
        The window sums come from prefix sums over the mentions, so the cost is O((M + Q) * dim).
        """
        w = self.config.coherence_window
        unit = _unit(np.asarray(self.vectors[anchors], dtype=np.float64))                 # [M, d]
        prefix = np.zeros((len(anchors) + 1, unit.shape[1]))
        np.cumsum(unit, axis=0, out=prefix[1:])                                           # [M + 1, d]
        m = sorted_unique(pm)                                                                # [A] ambiguous mentions
        lo = np.maximum(m - w, np.searchsorted(doc, doc[m], side="left"))
        hi = np.minimum(m + w + 1, np.searchsorted(doc, doc[m], side="right"))
        window = prefix[hi] - prefix[lo] - unit[m]                                        # [A, d] own excluded
        count = np.maximum(hi - lo - 1, 1)[:, None]
        cand = _unit(np.asarray(self.vectors[pe], dtype=np.float64))                       # [Q, d]
        row = np.searchsorted(m, pm)                                                      # [Q] -> [A]
        return (np.einsum("qd,qd->q", cand, window[row]) / count[row, 0]).astype(np.float32)


def _segment_argmax(z: np.ndarray, seg: np.ndarray, seg_id: np.ndarray) -> np.ndarray:
    """int64 [A]: row of the first maximum of ``z`` within each segment (segments start at ``seg``)."""
    is_max = z == np.maximum.reduceat(z, seg)[seg_id]
    rows = np.flatnonzero(is_max)
    return rows[np.append(True, seg_id[rows][1:] != seg_id[rows][:-1])]   # rows are sorted


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero). [n, d] -> [n, d]."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
