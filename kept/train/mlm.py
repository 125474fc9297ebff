"""Masked-LM pretraining of a Hugging Face BERT: the ``mlm`` baseline and ``ernie-baidu``.

The two methods share this module; they differ only in how the data module's
collator masks (token-level vs Baidu-ERNIE unit masking with a curriculum). The
math lives in ``transformers.BertForMaskedLM``; this LightningModule only wires
the loss, logging and the optimizer.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM

from kept.files import normal_mode_tree
from kept.train.base import PretrainModule


def build_bert_mlm(pretrained: str | None, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int,
                   intermediate_size: int, max_position_embeddings: int, dropout: float) -> BertForMaskedLM:
    """A BertForMaskedLM from a local checkpoint directory, or a fresh one from the given sizes.

    pretrained: a local directory written by ``save_pretrained`` (never a hub name:
        nothing is downloaded). When given, the size arguments are ignored.
    """
    if pretrained is not None:
        path = Path(pretrained)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path} is not a local BERT checkpoint directory (no config.json)")
        model = BertForMaskedLM.from_pretrained(path, local_files_only=True)
        if model.config.vocab_size != vocab_size:
            raise ValueError(f"checkpoint vocabulary has {model.config.vocab_size} entries, "
                             f"the tokenizer {vocab_size}: use the checkpoint's own vocabulary")
        return model
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
                        num_attention_heads=num_heads, intermediate_size=intermediate_size,
                        max_position_embeddings=max_position_embeddings, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    return BertForMaskedLM(config)


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` [B, L, V] at positions where ``labels`` [B, L] != -100.

    A batch with no predicted position gives a zero loss (still attached to the graph)
    instead of the NaN of a mean over nothing.
    """
    predicted = labels != -100                                                               # [B, L]
    total = torch.nn.functional.cross_entropy(logits[predicted].float(), labels[predicted], reduction="sum")
    return total / predicted.sum().clamp(min=1)


def predicted_logits(model: BertForMaskedLM, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Vocabulary scores [P, V] at the P predicted positions (labels != -100) and that mask [B, L].

    The vocabulary head is the largest matmul of a small BERT (V = 30,522 columns): applying
    it to the ~15% of positions that are predicted, not to all B·L, is what makes a step cheap.
    """
    hidden = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        token_type_ids=batch.get("token_type_ids")).last_hidden_state     # [B, L, H]
    predicted = batch["labels"] != -100                                                    # [B, L]
    return model.cls(hidden[predicted]), predicted


class MaskedLMModule(PretrainModule):
    """BERT masked-LM pretraining.

    Args:
        vocab_size: tokenizer vocabulary size (set from the data module by ``kept pretrain``).
        pretrained: a local BERT directory to start from (``save_pretrained`` format, e.g. a kept export;
            never a hub name, nothing is downloaded); the size arguments are then ignored (default None:
            a fresh BERT of the sizes below).
        hidden_size: hidden size of a fresh model (default 256).
        num_layers: transformer layers of a fresh model (default 4).
        num_heads: attention heads of a fresh model; must divide hidden_size (default 4).
        intermediate_size: feed-forward size of a fresh model (default 1024).
        max_position_embeddings: longest sequence a fresh model can read (default 512).
        dropout: hidden and attention dropout of a fresh model (default 0.1).
        lr: peak AdamW learning rate (default 5e-4).
        weight_decay: AdamW weight decay, not applied to biases and LayerNorm weights (default 0.01).
        warmup_steps: linear warm-up steps, then linear decay to 0 at the trainer's last step (default 100).
        seed: seed of the per-step dropout RNG (default 0).
    """

    def __init__(self, vocab_size: int = 30522, pretrained: str | None = None, hidden_size: int = 256,
                 num_layers: int = 4, num_heads: int = 4, intermediate_size: int = 1024,
                 max_position_embeddings: int = 512, dropout: float = 0.1, lr: float = 5e-4,
                 weight_decay: float = 0.01, warmup_steps: int = 100, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_bert_mlm(pretrained, vocab_size, hidden_size, num_layers, num_heads,
                                    intermediate_size, max_position_embeddings, dropout)

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": mean cross-entropy over predicted positions}`` (labels != -100; 0 when none)."""
        logits, predicted = predicted_logits(self.model, batch)                         # [P, V], [B, L]
        return {"loss": masked_lm_loss(logits, batch["labels"][predicted])}

    def export_hf(self, out: str | Path, tokenizer) -> Path:
        """Write the model and tokenizer with ``save_pretrained``: loadable by
        ``transformers.AutoModelForMaskedLM.from_pretrained(out)`` anywhere."""
        out = Path(out)
        self.model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        normal_mode_tree(out)  # safetensors writes its files 0600
        return out
