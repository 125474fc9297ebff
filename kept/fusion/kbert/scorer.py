"""Cloze scoring with K-BERT knowledge injected at probe time (the probing contract of kept.probe)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kept.data.examples import LinkedExample
from kept.fusion.kbert.branches import BranchTable
from kept.fusion.kbert.model import tree_forward
from kept.fusion.kbert.tree import SentenceTreeBuilder
from kept.kg.store import KGStore
from kept.model_dir import check_model_dir, recorded_store


class KBertScorer:
    """Cloze scoring with knowledge injected at probe time (the probing contract of kept.probe).

    model: a BertForMaskedLM. tokenizer: its tokenizer. branches: the branch table (None:
    no knowledge). max_length / add_sep: the tree options (defaults 128 / True).
    batch_size: examples per forward pass (default 32). device: torch device (default "cpu").
    A query whose branches would push one of its [MASK]s past ``max_length`` is scored without
    branches (K-BERT's truncation would otherwise cut the very token asked for); ``fallbacks``
    counts them. Knowledge conditions (``kept probe --knowledge``): ``off`` is ``branches=None``;
    ``leave-one-out`` passes each query's probed triple as ``withheld`` to :meth:`mask_log_probs`.
    """

    def __init__(self, model: Any, tokenizer: Any, branches: BranchTable | None, max_length: int = 128,
                 add_sep: bool = True, batch_size: int = 32, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.tokenizer, self.device, self.batch_size = tokenizer, device, batch_size
        self.builder = SentenceTreeBuilder(tokenizer, branches, max_length, add_sep=add_sep)
        self.plain_builder = SentenceTreeBuilder(tokenizer, None, max_length, add_sep=add_sep)
        self.fallbacks = 0

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, store: KGStore | str | Path | None = None,
                        device: str = "cpu", knowledge: str = "full") -> KBertScorer:
        """Load a ``kept pretrain --method kbert`` export. store: the KG store to take branches from
        (default: the store recorded in kept.json). knowledge: "full" (default) or "leave-one-out"
        (branches from the store), "off" (no branches, no store needed)."""
        from transformers import AutoTokenizer, BertForMaskedLM

        model_dir = Path(model_dir)
        info_path = model_dir / "kept.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        if info.get("method") != "kbert":
            raise ValueError(f"{model_dir} is not a K-BERT export (kept.json method: {info.get('method')!r})")
        check_model_dir(model_dir)
        if knowledge not in ("full", "leave-one-out", "off"):
            raise ValueError(f"knowledge must be 'full', 'leave-one-out' or 'off', not {knowledge!r}")
        if store is None and knowledge != "off":
            store = recorded_store(model_dir, info)
        if store is None and knowledge != "off":
            raise ValueError(f"{model_dir}: K-BERT needs the KG store to inject branches; pass store=")
        if store is not None and not isinstance(store, KGStore) and not (Path(store) / "meta.json").exists():
            raise FileNotFoundError(f"K-BERT store {store} (from {info_path}) is not a KG store directory")
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = BertForMaskedLM.from_pretrained(model_dir, local_files_only=True, attn_implementation="sdpa")
        branches = None if knowledge == "off" else BranchTable(
            store, tokenizer, info.get("language", "en"), info.get("max_entities", 2),
            info.get("with_predicate", True), info.get("branch_seed", 0))
        # at probe time a tree may use the model's whole position range, not only the training length
        max_length = max(info.get("max_length", 128), model.config.max_position_embeddings)
        return cls(model, tokenizer, branches, max_length, info.get("add_sep", True), device=device)

    @torch.no_grad()
    def mask_log_probs(self, examples: list[LinkedExample], withheld: np.ndarray | None = None
                       ) -> list[torch.Tensor]:
        """For each example, float [k, V]: log-softmax over the vocabulary at its k [MASK] tokens, in order.

        withheld: int [n] a store triple row each example's branches must not show (-1: none;
        default None): the probed triple under the ``leave-one-out`` condition.
        """
        out: list[torch.Tensor] = []
        for first in range(0, len(examples), self.batch_size):
            chunk = examples[first : first + self.batch_size]
            hidden = None if withheld is None else np.asarray(withheld)[first : first + self.batch_size]
            scores = self._score(chunk, self.builder, hidden)
            for b in [b for b, x in enumerate(scores) if x is None]:             # a [MASK] cut by branches
                self.fallbacks += 1
                scores[b] = self._score([chunk[b]], self.plain_builder)[0]
                if scores[b] is None:
                    ex = chunk[b]
                    raise ValueError(f"example {first + b}: its [MASK] tokens do not fit in max_length "
                                     f"{self.builder.max_length} even without branches (text: {ex.text[:60]!r})")
            out.extend(scores)
        return out

    def _score(self, chunk: list[LinkedExample], builder: SentenceTreeBuilder, withheld: np.ndarray | None = None
               ) -> list[torch.Tensor | None]:
        """[k, V] log-probs per example at its [MASK]s; None where a [MASK] did not fit in the tree."""
        mask_id = self.tokenizer.mask_token_id
        tree = builder(chunk, withheld=withheld)
        batch = {k: v.to(self.device) for k, v in tree.as_dict().items()}
        logits = tree_forward(self.model, batch).logits.float()                         # [B, L, V]
        at_mask = (tree.input_ids == mask_id) & ~tree.is_branch                          # [B, L]
        out: list[torch.Tensor | None] = []
        for b, ex in enumerate(chunk):
            columns = torch.nonzero(at_mask[b]).squeeze(1)
            if len(columns) != int((ex.input_ids == mask_id).sum()):
                out.append(None)
            else:
                out.append(torch.log_softmax(logits[b, columns.to(self.device)], dim=-1).cpu())
        return out
