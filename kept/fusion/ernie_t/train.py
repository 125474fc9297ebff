"""``kept pretrain --method ernie-t``: the ERNIE (Tsinghua) LightningModule.

The math is in :mod:`kept.fusion.ernie_t.model` (model) and :mod:`kept.fusion.ernie_t.data`
(batches, dEA noise); this module wires the losses (MLM + dEA), logging and export.
The data module is :class:`kept.fusion.ernie_t.data.ErnieTDataModule`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from kept.fusion.ernie_t.model import ErnieTConfig, ErnieTForPreTraining, from_bert, save_pretrained
from kept.masking.ernie import IGNORE_INDEX
from kept.train.base import PretrainModule
from kept.train.mlm import masked_lm_loss


def dea_loss(entity_logits: torch.Tensor, entity_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(mean cross-entropy, accuracy)`` of dEA scores [B, K, C] at slots whose label [B, K] != -100.

    A batch without aligned entities gives a zero loss (attached to the graph) and accuracy None.
    """
    labelled = entity_labels != IGNORE_INDEX                                                      # [B, K]
    if entity_logits.shape[-1] == 0 or not bool(labelled.any()):
        return entity_logits.sum() * 0.0, None
    logits, labels = entity_logits[labelled].float(), entity_labels[labelled]                    # [P, C], [P]
    loss = torch.nn.functional.cross_entropy(logits, labels)
    return loss, (logits.argmax(-1) == labels).float().mean()


class ErnieTModule(PretrainModule):
    """ERNIE (Tsinghua) pretraining: masked LM + denoising entity auto-encoder (dEA).

    Args:
        vocab_size: tokenizer vocabulary size (set from the data module by ``kept pretrain``).
        entity_store: KG store whose entity vectors the model uses (default None: the data module's
            store, taken when training starts; on the command line give ``--store``).
        embedding: which of the store's vectors (default "transe"); their dimension is the entity dimension.
        pretrained: a local BERT directory to start from (Hugging Face format; default: a fresh model).
            Its L layers become N = L - M text layers and M aggregators; the size arguments are ignored.
        hidden_size: hidden size of a fresh model (default 256).
        num_layers: all layers of a fresh model, N + M (default 4).
        num_aggregator_layers: M, the K-Encoder aggregators on top (default None: half the layers).
        num_heads: attention heads of a fresh model (default 4).
        intermediate_size: feed-forward size of a fresh model (default 1024).
        max_position_embeddings: longest sequence a fresh model can read (default 512).
        entity_heads: heads of the entity self-attention (default 4; must divide the entity dimension).
        dropout: dropout of a fresh model (default 0.1).
        lr: peak AdamW learning rate (default 5e-4).
        weight_decay: AdamW weight decay, not applied to biases and LayerNorm weights (default 0.01).
        warmup_steps: linear warm-up steps, then linear decay to 0 (default 100).
        seed: seed of the per-step dropout RNG (default 0).
    """

    def __init__(self, vocab_size: int = 30522, entity_store: str | None = None, embedding: str = "transe",
                 pretrained: str | None = None, hidden_size: int = 256, num_layers: int = 4,
                 num_aggregator_layers: int | None = None, num_heads: int = 4, intermediate_size: int = 1024,
                 max_position_embeddings: int = 512, entity_heads: int = 4, dropout: float = 0.1,
                 lr: float = 5e-4, weight_decay: float = 0.01, warmup_steps: int = 100, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.model: ErnieTForPreTraining | None = None
        if entity_store is not None:
            self.build(entity_store)

    def build(self, store: str | Path) -> None:
        """Create the network for the entity vectors of ``store`` (called once)."""
        from kept.kg import open_store

        h = self.hparams
        vectors = open_store(store).entity_vectors(h.embedding)                            # [E, d], memory-mapped
        if h.pretrained is not None:
            self.model = from_bert(h.pretrained, vectors.shape[0], vectors.shape[1], h.num_aggregator_layers,
                                   h.entity_heads)
            if self.model.config.vocab_size != h.vocab_size:
                raise ValueError(f"checkpoint vocabulary has {self.model.config.vocab_size} entries, the tokenizer "
                                 f"{h.vocab_size}: use the checkpoint's own vocabulary")
            self.model.set_entity_vectors(vectors)
            return
        m = h.num_layers // 2 if h.num_aggregator_layers is None else h.num_aggregator_layers
        config = ErnieTConfig(
            vocab_size=h.vocab_size, hidden_size=h.hidden_size, num_text_layers=h.num_layers - m,
            num_aggregator_layers=m, num_attention_heads=h.num_heads, intermediate_size=h.intermediate_size,
            max_position_embeddings=h.max_position_embeddings, hidden_dropout_prob=h.dropout,
            attention_probs_dropout_prob=h.dropout, num_entities=vectors.shape[0], entity_dim=vectors.shape[1],
            entity_heads=h.entity_heads)
        self.model = ErnieTForPreTraining(config, vectors)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_store = getattr(datamodule, "store_path", None)
        if self.model is None:
            if data_store is None:
                raise ValueError("ErnieTModule needs a KG store: pass model.entity_store, or use ErnieTDataModule "
                                 "(whose store it then takes)")
            self.hparams.entity_store = str(data_store)  # recorded in checkpoints, so they load on their own
            self.build(data_store)
        elif data_store is not None and Path(data_store).resolve() != Path(self.hparams.entity_store).resolve():
            raise ValueError(f"the model's store {self.hparams.entity_store} differs from the data's {data_store}: "
                             f"entity ids would not match")

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``loss`` = ``mlm`` + ``dea``; also ``dea_acc`` and ``dea_chance`` (1 / candidates) when entities are aligned."""
        hidden = self.model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                            batch["entity_positions"], batch["entity_ids"])                   # [B, L, H]
        predicted = batch["labels"] != -100                                                   # [B, L]
        mlm = masked_lm_loss(self.model.mlm_logits(hidden[predicted]), batch["labels"][predicted])  # head at [P]
        scores = self.model.entity_logits(hidden, batch["entity_positions"], batch["candidate_ids"])  # [B, K, C]
        dea, accuracy = dea_loss(scores, batch["entity_labels"])
        out = {"loss": mlm + dea, "mlm": mlm, "dea": dea}
        if accuracy is not None:
            out["dea_acc"] = accuracy
            out["dea_chance"] = torch.tensor(1.0 / len(batch["candidate_ids"]))
        return out

    def export_hf(self, out: str | Path, tokenizer) -> Path:
        """Write config, weights, the entity table, the tokenizer and ``kept.json``; load back with
        :func:`kept.fusion.ernie_t.load_pretrained` or :class:`kept.fusion.ernie_t.ErnieTScorer`."""
        out = save_pretrained(self.model, out)
        tokenizer.save_pretrained(out)
        c = self.model.config
        info = {"method": "ernie-t", "store": str(Path(self.hparams.entity_store).resolve()),  # absolute: the rule "embedding": self.hparams.embedding,
                "num_entities": c.num_entities, "entity_dim": c.entity_dim, "num_text_layers": c.num_text_layers,
                "num_aggregator_layers": c.num_aggregator_layers}
        (out / "kept.json").write_text(json.dumps(info, indent=2) + "\n")
        return out
