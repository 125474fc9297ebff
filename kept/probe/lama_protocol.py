"""``kept probe --protocol lama``: LAMA's own evaluation, so a plain BERT's numbers sit beside published tables.

What LAMA's ``scripts/batch_eval_KB_completion.py`` does for T-REx, and kept with it:

* **facts**: one query per distinct (sub_label, obj_label) of a relation, in order of first
  appearance, on the relation's template (:func:`distinct_facts`);
* **objects**: only objects that are one wordpiece *spelling the label back* (``vocab[id] ==
  obj_label``, lowercased for an uncased model, as LAMA's ``--lowercase``) and in the common
  vocabulary (:func:`reconstructs`);
* **candidates**: the common vocabulary (``common_vocab_lowercased.txt`` for uncased models,
  ``common_vocab_cased.txt`` otherwise, shipped in ``kg_data/lama/``), in the file's order
  (LAMA's ``index_list``, :func:`index_list`);
* **ranks and metrics**: :func:`kept.probe.metrics.lama_ranks` (position in a best-first sort,
  ties in ``index_list`` order), MRR within the top 1,000, no filtering of other true objects;
  macro P@1 = mean over relations.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kept.probe.lama import Fact, ProbeDataError, read_common_vocab

#: where the repository ships LAMA's common vocabularies (CC BY-NC 4.0, not in the installed wheel)
LAMA_VOCAB_DIR = Path(__file__).resolve().parents[2] / "kg_data" / "lama"


def lowercases(tokenizer: Any) -> bool:
    """True for an uncased tokenizer (BERT's ``do_lower_case``)."""
    return bool(getattr(tokenizer, "do_lower_case", False) or getattr(tokenizer, "init_kwargs", {}).get("do_lower_case"))


def default_common_vocab(tokenizer: Any) -> list[str]:
    """LAMA's common vocabulary for this tokenizer (lowercased for an uncased one), from ``kg_data/lama/``."""
    path = LAMA_VOCAB_DIR / ("common_vocab_lowercased.txt" if lowercases(tokenizer) else "common_vocab_cased.txt")
    if not path.exists():
        raise ProbeDataError(f"{path} is missing (it ships with the repository, not the wheel): pass "
                             f"--common-vocab FILE with LAMA's common_vocab_*.txt")
    return read_common_vocab(path)


def distinct_facts(facts: Sequence[Fact]) -> list[Fact]:
    """The first fact of each distinct (sub_label, obj_label), in order (LAMA's template mode)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for fact in facts:
        key = (fact.sub_label, fact.obj_label)
        if key not in seen:
            seen.add(key)
            out.append(fact)
    return out


def index_list(tokenizer: Any, tokens: Sequence[str]) -> torch.Tensor:
    """int64 [C]: vocabulary ids of the common-vocabulary tokens the model knows, in the file's order."""
    vocab = tokenizer.get_vocab()
    ids = list(dict.fromkeys(vocab[t] for t in tokens if t in vocab))
    if not ids:
        raise ProbeDataError("no token of the common vocabulary is in the model's vocabulary")
    return torch.as_tensor(ids, dtype=torch.int64)


def reconstructs(tokenizer: Any, obj_label: str, token_id: int) -> bool:
    """LAMA's object check: the one wordpiece spells the label back (lowercased for an uncased model)."""
    label = obj_label.lower() if lowercases(tokenizer) else obj_label
    return tokenizer.convert_ids_to_tokens(int(token_id)) == label.strip()


# ---- LAMA-UHN (Poerner et al. 2020): drop facts whose object is guessable from the subject's name -------------
#: the person-name filter's relations and the noun of its template
UHN_PLACE_NOUNS = {"P19": "city", "P20": "city", "P27": "country", "P1412": "language", "P103": "language"}
UHN_TEMPLATE = "[X] is a common name in the following [Y] : [MASK] ."


def string_match(fact: Fact, lowercase: bool = True) -> bool:
    """LAMA-UHN's first filter: the object label is a substring of the subject label (case-folded by default)."""
    sub, obj = (fact.sub_label.lower(), fact.obj_label.lower()) if lowercase else (fact.sub_label, fact.obj_label)
    return obj in sub


def person_name_matches(relation: str, facts: Sequence[Fact], scorer: Any, tokenizer: Any, top_k: int = 3
                        ) -> list[bool]:
    """LAMA-UHN's second filter: for the person relations of :data:`UHN_PLACE_NOUNS`, True when the object is
    among ``scorer``'s ``top_k`` predictions for "<a word of the subject's name> is a common name in the
    following city/country/language : [MASK] ." (LAMA-UHN used bert-base-cased, top 3)."""
    if relation not in UHN_PLACE_NOUNS or not facts:
        return [False] * len(facts)
    from kept.data.examples import LinkedExample

    lower = lowercases(tokenizer)
    template = UHN_TEMPLATE.replace("[Y]", UHN_PLACE_NOUNS[relation]).replace("[MASK]", tokenizer.mask_token)
    owners, examples = [], []
    for i, fact in enumerate(facts):
        for name in (fact.sub_label.lower() if lower else fact.sub_label).split():
            text = template.replace("[X]", name)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            examples.append(LinkedExample(text, np.asarray(ids, dtype=np.int32)))
            owners.append(i)
    matched = [False] * len(facts)
    for owner, log_probs in zip(owners, scorer.mask_log_probs(examples)):
        top = tokenizer.convert_ids_to_tokens(torch.topk(log_probs[0], k=top_k).indices.tolist())
        obj = facts[owner].obj_label.lower() if lower else facts[owner].obj_label
        matched[owner] |= obj in top
    return matched


def uhn_filter(probe_set: Sequence[tuple[Any, list[Fact]]], name_scorer: Any = None, tokenizer: Any = None,
               top_k: int = 3) -> tuple[list[tuple[Any, list[Fact]]], dict[str, dict[str, int]]]:
    """LAMA-UHN's subset of a probe set: ``(filtered probe set, {relation: {"string_match": n, "person_name": m}})``.

    The string-match filter always runs; the person-name filter runs when ``name_scorer`` (a masked-LM
    scorer) and its ``tokenizer`` are given. Removed counts are per filter, in that order.
    """
    out, removed = [], {}
    for relation, facts in probe_set:
        keep = [f for f in facts if not string_match(f)]
        counts = {"string_match": len(facts) - len(keep)}
        if name_scorer is not None:
            hit = person_name_matches(relation.relation, keep, name_scorer, tokenizer, top_k)
            counts["person_name"] = int(sum(hit))
            keep = [f for f, h in zip(keep, hit) if not h]
        out.append((relation, keep))
        removed[relation.relation] = counts
    return out, removed
