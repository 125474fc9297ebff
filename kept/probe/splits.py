"""Seen / unseen facts that mean what they say: no training sentence mentions an unseen fact's subject and object.

A random split of facts leaks: a sentence of one seen fact can name the subject and the object of
another fact ("Paris, the capital of France, ..." is evidence for P36 and P17 alike). Such a fact
was read in text, so it is not unseen. :func:`clean_split` moves every such fact to the seen side,
its own sentences join the training text, and the check repeats until no unseen fact is mentioned.

Mentions are found with an Aho-Corasick automaton (pyahocorasick) over the facts' names (labels and
evidence surface forms, case-folded), matched on word boundaries; one pass over each training
sentence, no loop over names.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import ahocorasick


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


class NameIndex:
    """Which names of which facts a text mentions. names: fact -> (subject names, object names)."""

    def __init__(self, names: Mapping[str, tuple[Iterable[str], Iterable[str]]]):
        self.automaton = ahocorasick.Automaton()
        self.subject_of: dict[int, set[str]] = defaultdict(set)     # name id -> facts it is a subject name of
        self.object_of: dict[int, set[str]] = defaultdict(set)
        ids: dict[str, int] = {}
        for fact, (subjects, objects) in names.items():
            for side, table in ((subjects, self.subject_of), (objects, self.object_of)):
                for name in side:
                    name = name.strip().lower()
                    if not name:
                        continue
                    if name not in ids:
                        ids[name] = len(ids)
                        self.automaton.add_word(name, (ids[name], len(name)))
                    table[ids[name]].add(fact)
        if ids:
            self.automaton.make_automaton()
        self.empty = not ids

    def mentioned(self, text: str) -> set[str]:
        """Facts whose subject and object are both named in ``text`` (word-bounded, case-folded)."""
        if self.empty:
            return set()
        low = text.lower()
        found: set[int] = set()
        for end, (name_id, length) in self.automaton.iter(low):
            start = end - length + 1
            if (start == 0 or not _word_char(low[start - 1])) and (end + 1 == len(low) or not _word_char(low[end + 1])):
                found.add(name_id)
        subjects = set().union(*(self.subject_of[i] for i in found if i in self.subject_of))
        objects = set().union(*(self.object_of[i] for i in found if i in self.object_of))
        return subjects & objects


def clean_split(sentences_of: Mapping[str, list[str]], names: Mapping[str, tuple[Iterable[str], Iterable[str]]],
                seen: set[str]) -> tuple[set[str], list[str]]:
    """``(seen facts, facts moved to seen)``: ``seen`` grown until no training sentence names an unseen fact.

    sentences_of: fact -> its evidence sentences (the training text of a seen fact).
    names: fact -> (subject names, object names) for every fact.
    seen: the facts drawn as seen. Moved facts come in the order they were found (sorted per round).
    """
    seen = set(seen)
    moved: list[str] = []
    index = NameIndex({f: names[f] for f in names if f not in seen})
    new_text = [s for f in seen for s in sentences_of.get(f, [])]
    while new_text:
        leaks = set().union(*(index.mentioned(text) for text in new_text)) - seen
        leaks = sorted(leaks)
        seen.update(leaks)
        moved += leaks
        new_text = [s for f in leaks for s in sentences_of.get(f, [])]
    return seen, moved
