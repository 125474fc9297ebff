"""The method registry: one record per pretraining method, and the only place that knows them by name.

Every command that handles "a method" reads it from here: ``kept pretrain --method NAME`` (its
config), ``kept probe`` (its scorer, from the exported ``kept.json`` "method"), ``kept demo`` and
``experiments/`` (what to pass it: a store, stage boundaries), ``bench/fusion_step.py`` (its module
and a benchmark batch) and the docs tables. Nothing outside this module and a method's own package
compares a method's name as a string (``tests/test_methods.py`` greps for it).

Adding a method (``docs/architecture.md``, "Adding a method", says it step by step): write its
package (model, data module, LightningModule, scorer if it reads the KG at probe time), a config
``kept/train/configs/NAME.yaml``, and one :class:`Method` entry below.

Class and function paths are strings, resolved on use (:func:`resolve`), so that reading the
registry (``kept --help``, ``kept demo --help``) does not import torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).parent / "train" / "configs"

#: probe-time knowledge conditions (``kept probe --knowledge``): what the model may read from the KG
KNOWLEDGE = {
    "full": "the KG as built: the probed triple itself may be injected",
    "leave-one-out": "the KG minus the probed triple: only related knowledge",
    "off": "no KG: the model alone",
}

#: what a method may need besides a tokenised corpus and a vocabulary
NEEDS = {
    "store": "the KG store the corpus was linked against (branches, triples or entity ids)",
    "entity_vectors": "TransE vectors in that store (`kept kg embed STORE`)",
    "linked_corpus": "entity spans in the corpus (`kept data build --store STORE`)",
}


@dataclass(frozen=True)
class Method:
    """One pretraining method.

    name: ``--method NAME`` and the ``kept.json`` "method" of its exports.
    description: one line, shown by ``kept pretrain --help`` and the docs tables.
    paper: the method's reference, for tables ("" for the baseline).
    module: class path of its LightningModule. datamodule: class path of its LightningDataModule.
    needs: keys of :data:`NEEDS` (default: none).
    store_arg: the ``kept pretrain`` flag that names the KG store (None: it reads no store).
    module_store_kwarg: the LightningModule's own store argument, when built directly (benchmarks).
    scorer: class path of its probe scorer (``from_pretrained(model_dir, store=, device=)``).
    knowledge_conditions: the probe-time knowledge conditions it supports (:data:`KNOWLEDGE`), empty
        when the model reads no KG at probe time. A model with conditions must be probed with a
        store unless the condition is ``off``.
    staged_masking: True when masking moves through stages (``MaskingCurriculum``), whose
        boundaries a run sets from its step budget (:meth:`stage_boundaries`).
    hf_masked_lm: True when an export loads with ``transformers.AutoModelForMaskedLM``.
    loader: function path that loads an export (``loader(model_dir)`` -> model).
    benchmark_batch: function path ``(corpus, store, vocab, batch_size, seq_len) -> batch``:
        one real training batch for benchmarks (``module.losses(batch)`` is a step's forward).
    """

    name: str
    description: str
    paper: str
    module: str
    datamodule: str
    needs: frozenset[str] = frozenset()
    store_arg: str | None = None
    module_store_kwarg: str | None = None
    scorer: str = "kept.probe.scorers.MaskedLMScorer"
    knowledge_conditions: tuple[str, ...] = ()
    staged_masking: bool = False
    hf_masked_lm: bool = True
    loader: str = "transformers.AutoModelForMaskedLM.from_pretrained"
    benchmark_batch: str = "kept.train.data.mlm_benchmark_batch"

    @property
    def knowledge_at_probe(self) -> bool:
        """True when the model reads the KG at probe time (K-BERT branches, ERNIE-T entity vectors)."""
        return bool(self.knowledge_conditions)

    @property
    def config(self) -> Path:
        """``kept/train/configs/NAME.yaml``: the classes and defaults ``--method NAME`` loads."""
        return CONFIGS / f"{self.name}.yaml"

    def pretrain_args(self, store: str | Path | None = None, steps: int | None = None) -> list[str]:
        """The ``kept pretrain`` flags this method needs for a run: its store, its stage boundaries.

        store: the KG store (ignored by methods that read none). steps: the run's step budget
        (stages split it in thirds, for staged masking).
        """
        args: list[str] = []
        if self.store_arg is not None:
            if store is None:
                raise ValueError(f"method {self.name!r} needs a KG store ({self.store_arg})")
            args += [self.store_arg, str(store)]
        if self.staged_masking and steps is not None:
            import json

            args += ["--trainer.callbacks.init_args.boundaries", json.dumps(self.stage_boundaries(steps))]
        return args

    @staticmethod
    def stage_boundaries(steps: int) -> dict[str, int]:
        """basic -> phrase -> entity in thirds of ``steps`` optimizer steps."""
        return {"phrase": steps // 3, "entity": 2 * steps // 3}


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("mlm", "BERT masked-LM baseline: 15% of wordpieces, 80/10/10", "Devlin et al. 2019",
           "kept.train.mlm.MaskedLMModule", "kept.train.data.PretrainDataModule"),
    Method("ernie-baidu", "Baidu ERNIE 1.0: whole-unit masking in stages basic -> phrase -> entity",
           "Sun et al. 2019", "kept.train.mlm.MaskedLMModule", "kept.train.data.PretrainDataModule",
           needs=frozenset({"linked_corpus"}), staged_masking=True),
    Method("kbert", "K-BERT: (relation, object) branches in a sentence tree, soft positions, visible matrix",
           "Liu et al. 2020", "kept.fusion.kbert.train.KBertModule", "kept.fusion.kbert.data.KBertDataModule",
           needs=frozenset({"store", "linked_corpus"}), store_arg="--data.init_args.store",
           scorer="kept.fusion.kbert.scorer.KBertScorer", knowledge_conditions=("full", "leave-one-out", "off"),
           benchmark_batch="kept.fusion.kbert.data.benchmark_batch"),
    Method("ernie-t", "ERNIE (Tsinghua): K-Encoder aggregators over frozen TransE vectors, MLM + dEA",
           "Zhang et al. 2019", "kept.fusion.ernie_t.train.ErnieTModule", "kept.fusion.ernie_t.data.ErnieTDataModule",
           needs=frozenset({"store", "entity_vectors", "linked_corpus"}), store_arg="--data.init_args.store",
           module_store_kwarg="entity_store",
           # leave-one-out would need TransE vectors trained without each probed triple: not offered
           scorer="kept.fusion.ernie_t.scorer.ErnieTScorer", knowledge_conditions=("full", "off"), hf_masked_lm=False,
           loader="kept.fusion.ernie_t.model.load_pretrained",
           benchmark_batch="kept.fusion.ernie_t.data.benchmark_batch"),
    Method("uktp", "ERNIE 3.0 universal knowledge-text prediction: triple + sentence, mixed with MLM",
           "Sun et al. 2021", "kept.fusion.uktp.train.UktpModule", "kept.fusion.uktp.train.UktpDataModule",
           needs=frozenset({"store", "linked_corpus"}), store_arg="--data.init_args.store",
           benchmark_batch="kept.fusion.uktp.train.uktp_benchmark_batch"),
)}


#: the method every other one is compared with (benchmarks' step-time ratio, the study's paired differences)
BASELINE = "mlm"


def get_method(name: str) -> Method:
    """The registered method ``name``; a ValueError naming the choices otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


def resolve(path: str) -> Any:
    """The object at a dotted path (``"pkg.module.Name"`` or ``"pkg.module.Class.method"``)."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot resolve {path!r}")


def methods_table() -> str:
    """A Markdown table of the registry (``docs/architecture.md`` quotes it; a test keeps them equal)."""
    rows = ["| method | what it is | needs | probe-time knowledge conditions | export |", "|---|---|---|---|---|"]
    for m in METHODS.values():
        needs = ", ".join(sorted(m.needs)) or "—"
        export = "stock `BertForMaskedLM`" if m.hf_masked_lm else f"own modules (`{m.loader}`)"
        rows.append(f"| `{m.name}` | {m.description} ({m.paper}) | {needs} | "
                    f"{', '.join(m.knowledge_conditions) or '— (model alone)'} | {export} |")
    return "\n".join(rows)
