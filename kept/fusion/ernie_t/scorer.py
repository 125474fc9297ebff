"""Cloze scoring with an ERNIE (Tsinghua) export: the probing contract of ``kept.probe``.

Also importable as ``kept.fusion.ernie_t.ErnieTScorer``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kept.fusion.ernie_t.data import align_entities
from kept.fusion.ernie_t.model import ErnieTForPreTraining, load_pretrained
from kept.masking.ernie import UnitMaskingCollator


class ErnieTScorer:
    """Cloze scoring with an ERNIE-T export (the probing contract of ``kept.probe``).

    model: an :class:`ErnieTForPreTraining`. tokenizer: its tokenizer.
    batch_size: queries per forward pass (default 32). device: where the model runs (default "cpu").
    A query's entities are its linked entity spans, aligned on their first wordpiece as in
    training; no dEA noise and no masking is applied (the query carries its own [MASK]s).
    """

    def __init__(self, model: ErnieTForPreTraining, tokenizer, batch_size: int = 32,
                 device: str | torch.device = "cpu", knowledge: str = "full"):
        if knowledge not in ("full", "off"):
            raise ValueError(f"ERNIE-T supports the knowledge conditions 'full' and 'off', not {knowledge!r} "
                             "(leave-one-out would need TransE vectors trained without each probed triple)")
        self.model, self.tokenizer, self.batch_size = model.to(device).eval(), tokenizer, batch_size
        self.knowledge = knowledge
        self.device = torch.device(device)
        self._pad = UnitMaskingCollator(tokenizer, max_length=model.config.max_position_embeddings)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, store=None, device: str | torch.device = "cpu",
                        batch_size: int = 32, knowledge: str = "full") -> ErnieTScorer:
        """Load an export; ``store`` (a KG store or its path, optional) is checked to be the model's.
        knowledge: "full" (default: each query's linked entities are aligned) or "off" (none are)."""
        from transformers import AutoTokenizer

        from kept.model_dir import check_model_dir

        model = load_pretrained(check_model_dir(model_dir, hf_config=False), device)
        if store is not None:
            from kept.kg import open_store

            store = open_store(store) if isinstance(store, (str, Path)) else store
            if store.num_entities != model.config.num_entities:
                raise ValueError(f"{model_dir} was trained with a store of {model.config.num_entities} entities; "
                                 f"{store.path} has {store.num_entities}: its entity ids would not match")
        return cls(model, AutoTokenizer.from_pretrained(model_dir, local_files_only=True), batch_size, device,
                   knowledge)

    @torch.no_grad()
    def mask_log_probs(self, examples: list) -> list[torch.Tensor]:
        """For each example, [k, V] log-softmax over the vocabulary at its k [MASK] positions, in order.

        Queries are batched by length (little padding); the MLM head runs on [MASK] states only.
        """
        mask_id, limit = self.tokenizer.mask_token_id, self.model.config.max_position_embeddings - 2
        for i, ex in enumerate(examples):
            if len(ex) > limit:
                raise ValueError(f"query {i} ({ex.text[:60]!r}) has {len(ex)} wordpieces, more than the model's {limit}")
            if not np.any(ex.input_ids == mask_id):
                raise ValueError(f"query {i} ({ex.text[:60]!r}) has no [MASK] token")
        order = np.argsort([len(ex) for ex in examples], kind="stable")
        results: list[torch.Tensor | None] = [None] * len(examples)
        for start in range(0, len(examples), self.batch_size):
            picked = order[start : start + self.batch_size]
            chunk = [examples[i] for i in picked]
            input_ids, lengths = self._pad.pad(chunk)                                       # [B, L], [B]
            positions, table_ids = align_entities(chunk, lengths, self.model.config.num_entities)
            if self.knowledge == "off":                     # the model alone: no entity reaches the aggregators
                positions, table_ids = positions[:, :0], table_ids[:, :0]
            input_ids = torch.from_numpy(input_ids).to(self.device)
            attention_mask = (torch.arange(input_ids.shape[1]) < torch.from_numpy(lengths + 2)[:, None]).long()
            hidden = self.model(input_ids, attention_mask.to(self.device), None,
                                torch.from_numpy(positions).to(self.device),
                                torch.from_numpy(table_ids).to(self.device))                # [B, L, H]
            rows, cols = (input_ids == mask_id).nonzero(as_tuple=True)                     # row-major: in order
            log_probs = torch.log_softmax(self.model.mlm_logits(hidden[rows, cols]).float(), dim=-1)   # [P, V]
            counts = torch.bincount(rows, minlength=len(chunk)).tolist()
            for i, part in zip(picked, torch.split(log_probs, counts)):
                results[i] = part.cpu()
        return results
