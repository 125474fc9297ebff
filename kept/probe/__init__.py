"""LAMA-style cloze probing: does a model know the facts of a KG?

* :mod:`kept.probe.lama` reads LAMA-format probe sets (relations.jsonl + one file per relation);
* :mod:`kept.probe.queries` turns facts into entity-linked :class:`~kept.data.examples.LinkedExample`
  queries (template or masked-sentence mode);
* :mod:`kept.probe.scorers` scores the [MASK] positions (fast batched BERT scorer; dispatch to the
  knowledge methods' scorers by ``kept.json``);
* :mod:`kept.probe.probe` ranks gold objects (single-wordpiece over the vocabulary, multi-wordpiece
  among the relation's objects) and :mod:`kept.probe.metrics` computes P@1, P@10, MRR;
* :mod:`kept.probe.report` writes the Markdown table and plots; :mod:`kept.probe.cli` is ``kept probe``.
"""

from kept.probe.lama import Fact, ProbeDataError, Relation, load_probe_set, load_relations, read_facts
from kept.probe.metrics import gold_ranks, macro_average, summarize
from kept.probe.probe import ProbeOptions, probe_relations
from kept.probe.queries import QueryBuilder, fill_sentence, fill_template
from kept.probe.report import markdown_report, plot_report
from kept.probe.scorers import MaskedLMScorer, load_scorer, read_method

__all__ = ["Fact", "MaskedLMScorer", "ProbeDataError", "ProbeOptions", "QueryBuilder", "Relation", "fill_sentence",
           "fill_template", "gold_ranks", "load_probe_set", "load_relations", "load_scorer", "macro_average",
           "markdown_report", "plot_report", "probe_relations", "read_facts", "read_method", "summarize"]
