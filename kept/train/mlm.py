"""Masked-LM pretraining of a Hugging Face BERT: the ``mlm`` baseline and ``ernie-baidu``.

The two methods share this module; they differ only in how the data module's
collator masks (token-level vs Baidu-ERNIE unit masking with a curriculum). The
math lives in ``transformers.BertForMaskedLM``; this LightningModule only wires
the loss, logging and the optimizer.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from transformers import BertConfig, BertForMaskedLM, get_linear_schedule_with_warmup


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


class MaskedLMModule(pl.LightningModule):
    """BERT masked-LM pretraining.

    Args:
        vocab_size: tokenizer vocabulary size (linked from the data module by ``kept pretrain``).
        pretrained: local BERT checkpoint directory to start from (default: train from scratch).
        hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings,
        dropout: model size for from-scratch runs (default: a small 4-layer BERT).
        lr: peak AdamW learning rate (default 5e-4). weight_decay: AdamW weight
            decay, not applied to biases and LayerNorm weights (default 0.01).
        warmup_steps: linear warm-up steps, then linear decay to 0 at the trainer's
            last step (default 100).
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

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Dropout draws from the global RNG; seeding it from (seed, step, rank) makes
        # every step a pure function of the step, so a resumed run is bit-identical.
        torch.manual_seed(hash((self.hparams.seed, self.global_step, self.global_rank)) % 2**63)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over predicted positions (labels != -100); 0 when a batch has none."""
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            token_type_ids=batch.get("token_type_ids")).logits            # [B, L, V]
        return masked_lm_loss(logits, batch["labels"])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self(batch), prog_bar=True, batch_size=batch["input_ids"].shape[0], sync_dist=True)

    def export_hf(self, out: str | Path, tokenizer) -> Path:
        """Write the model and tokenizer with ``save_pretrained``: loadable by
        ``transformers.AutoModelForMaskedLM.from_pretrained(out)`` anywhere."""
        out = Path(out)
        self.model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        return out

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = get_linear_schedule_with_warmup(optimizer, min(self.hparams.warmup_steps, total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
