"""K-BERT on a stock Hugging Face BERT: the tree mask, MLM pretraining, export and the probing scorer.

The sentence tree (:mod:`kept.fusion.kbert.tree`) reaches the model through two
inputs every transformers 5.x ``BertModel`` accepts: ``position_ids`` (the soft
positions) and a 4-D attention mask ``[batch, 1, seq, seq]`` made from the visible
matrix (:func:`tree_attention_mask`), applied in every layer. No layer is changed,
so any BERT checkpoint (``BertForMaskedLM``, ``BertForSequenceClassification``)
runs K-BERT, and a K-BERT export is a stock ``BertForMaskedLM`` directory.

Pretraining (``kept pretrain --method kbert``) is masked-LM over the *sentence*
tokens of the tree: the sentence is masked first, exactly as the ``mlm`` baseline
(or at the word/entity level, ``masking``), then the tree is built around the
masked sentence; branch tokens are never masked nor predicted. Branches hang off
the entity spans of the linked corpus even when the entity itself is masked: the
model learns to restore a word from the facts about it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from kept.files import normal_mode_tree
from kept.fusion.kbert.model import tree_forward
from kept.masking.ernie import IGNORE_INDEX
from kept.train.mlm import MaskedLMModule, masked_lm_loss


class KBertModule(MaskedLMModule):
    """K-BERT masked-LM pretraining of a stock ``BertForMaskedLM``.

    Args: as :class:`~kept.train.mlm.MaskedLMModule` (vocab_size, pretrained, model sizes for a
    fresh model, lr, weight_decay, warmup_steps, seed). The tree options come from the data
    module (:meth:`KBertDataModule.kbert_options`) when training starts, are kept in checkpoints
    and written to ``kept.json`` by :meth:`export_hf`.
    """

    kbert_options: dict = {}  # replaced (never mutated) in setup / on_load_checkpoint

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "kbert_options"):
            self.kbert_options = datamodule.kbert_options()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["kbert_options"] = self.kbert_options

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.kbert_options = checkpoint.get("kbert_options", {})

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": masked-LM cross-entropy over the masked sentence tokens of the trees}``.

        The vocabulary head runs on the predicted positions only (~15% of the sentence tokens).
        """
        hidden = tree_forward(self.model.bert, batch).last_hidden_state                 # [B, L, H]
        labels = batch["labels"]                                                         # [B, L]
        predicted = labels != IGNORE_INDEX
        logits = self.model.cls(hidden[predicted])                                       # [P, V]
        return {"loss": masked_lm_loss(logits.unsqueeze(0), labels[predicted].unsqueeze(0))}

    def export_hf(self, out: str | Path, tokenizer: Any) -> Path:
        """A stock BertForMaskedLM directory (+ tokenizer) with ``kept.json`` = the method and tree options."""
        out = Path(out)
        self.model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        normal_mode_tree(out)  # safetensors writes its files 0600
        info = {"method": "kbert", "max_entities": 2, "with_predicate": True, "branch_seed": 0, "language": "en",
                "max_length": 128, "add_sep": True, "store": None, **self.kbert_options}
        (out / "kept.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        return out
