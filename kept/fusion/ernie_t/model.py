"""ERNIE (Tsinghua): a BERT whose upper layers fuse TransE entity vectors into the token states.

Zhang et al., "ERNIE: Enhanced Language Representation with Informative Entities" (ACL 2019);
reference code thunlp/ERNIE ``code/knowledge_bert/modeling.py``. The model is

* **T-Encoder**: ``num_text_layers`` (N) stock ``transformers`` ``BertLayer``s over the wordpieces;
* **K-Encoder**: ``num_aggregator_layers`` (M) :class:`ErnieTAggregator`s. Each runs token
  self-attention and entity self-attention (stock ``BertAttention`` blocks: attention, dense,
  dropout, residual LayerNorm), then the information fusion layer

      h  = GELU(W_t·w + W_e·e + b)          (h = GELU(W_t·w + b) where no entity is aligned)
      w' = LN(W_t'·h + b_t' + w)             (token output, dropout on W_t'·h as in BERT)
      e' = LN(W_e'·h + b_e' + e)             (entity output, only where an entity is aligned)

  The intermediate size is BERT's (``intermediate_size``), so the token path of an aggregator has
  exactly the weights of a BERT layer and initialises from one.

Entities are a compact sequence per example (``[B, K]``, K = most aligned entities of a row in the
batch), not a copy of the token sequence as in the reference: entity attention runs over K slots
instead of L tokens, and the fusion scatters ``W_e·e`` to the aligned token positions (the
mention's first wordpiece). Entity attention has no positions in either form, so the two are the
same model. Entity vectors are a frozen, non-persistent buffer ``entity_vectors`` [E + 1, d] whose
row 0 is the zero vector of "no entity" (row = store id + 1).

Differences from the reference, on purpose: ``W_e`` has no bias of its own (the reference adds a
second bias ``b_e`` everywhere, which is not in the paper's equations and makes positions without an
entity differ from a plain BERT layer); every aggregator runs entity attention (the reference's
first aggregator, ``BertLayerMix``, skips it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import BertConfig
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.bert.modeling_bert import (
    BertAttention,
    BertEmbeddings,
    BertIntermediate,
    BertLayer,
    BertOnlyMLMHead,
    BertOutput,
)

CONFIG_NAME = "config.json"  # its own keys (ErnieTConfig), not a transformers config
WEIGHTS_NAME = "model.safetensors"
ENTITY_VECTORS_NAME = "entity_vectors.npy"


@dataclass
class ErnieTConfig:
    """Sizes of an ERNIE (Tsinghua) model. Defaults: ERNIE-base (BERT-base, N = M = 6, 100-d entities).

    vocab_size / hidden_size / num_attention_heads / intermediate_size / max_position_embeddings /
        type_vocab_size / hidden_act / hidden_dropout_prob / attention_probs_dropout_prob /
        layer_norm_eps / initializer_range / pad_token_id: as in ``transformers.BertConfig``.
    num_text_layers: N, plain BERT layers of the T-Encoder (default 6).
    num_aggregator_layers: M, aggregators of the K-Encoder (default 6).
    num_entities: entities of the KG store (the vector table has one more row, "no entity").
    entity_dim: size of the entity vectors (the TransE dimension; default 100).
    entity_heads: attention heads of the entity self-attention (default 4; must divide entity_dim).
    attn_implementation: "sdpa" (default) or "eager", for token and entity attention.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_text_layers: int = 6
    num_aggregator_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    num_entities: int = 0
    entity_dim: int = 100
    entity_heads: int = 4
    attn_implementation: str = "sdpa"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                             f"{self.num_attention_heads}")
        if self.entity_dim % self.entity_heads:
            raise ValueError(f"entity_dim {self.entity_dim} (the store's entity vectors) is not a multiple of "
                             f"entity_heads {self.entity_heads}; choose entity_heads dividing it")
        if self.num_text_layers < 0 or self.num_aggregator_layers < 1:
            raise ValueError(f"need num_text_layers >= 0 and num_aggregator_layers >= 1, got "
                             f"{self.num_text_layers} and {self.num_aggregator_layers}")
        if self.attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"attn_implementation must be 'sdpa' or 'eager', not {self.attn_implementation!r}")

    def bert_config(self) -> BertConfig:
        """The ``BertConfig`` of the token path (embeddings, T-Encoder, token side of the aggregators, MLM head)."""
        config = BertConfig(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size,
            num_hidden_layers=self.num_text_layers + self.num_aggregator_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings, type_vocab_size=self.type_vocab_size,
            hidden_act=self.hidden_act, hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob, layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range, pad_token_id=self.pad_token_id)
        config._attn_implementation = self.attn_implementation
        return config

    def entity_config(self) -> BertConfig:
        """The ``BertConfig`` of the entity side: entity attention and the fusion output W_e'."""
        config = BertConfig(
            vocab_size=1, hidden_size=self.entity_dim, num_attention_heads=self.entity_heads,
            intermediate_size=self.intermediate_size, hidden_act=self.hidden_act,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob, layer_norm_eps=self.layer_norm_eps)
        config._attn_implementation = self.attn_implementation
        return config

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ErnieTConfig:
        """Read a config written by :meth:`save`; unknown keys are an error naming the file."""
        values = json.loads(Path(path).read_text())
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown ERNIE-T config keys {sorted(unknown)}")
        return cls(**values)


class ErnieTAggregator(nn.Module):
    """One K-Encoder layer: token and entity self-attention, then the information fusion layer.

    Submodule names follow ``BertLayer`` for the token path (``attention``, ``intermediate``,
    ``output``), so a BERT layer's state dict loads into it; the entity path adds
    ``entity_attention``, ``entity_intermediate`` (W_e, no bias) and ``entity_output`` (W_e', LN).
    """

    def __init__(self, config: BertConfig, entity_config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.entity_attention = BertAttention(entity_config)
        self.intermediate = BertIntermediate(config)  # W_t, b and the activation
        self.entity_intermediate = nn.Linear(entity_config.hidden_size, config.intermediate_size, bias=False)
        self.output = BertOutput(config)  # w' = LN(dropout(W_t'·h + b_t') + w)
        self.entity_output = BertOutput(entity_config)  # e' = LN(dropout(W_e'·h + b_e') + e)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, entities: torch.Tensor,
                entity_attention_mask: torch.Tensor | None, entity_positions: torch.Tensor,
                entity_present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(hidden_states [B, L, H], entities [B, K, d])``.

        hidden_states: [B, L, H] token states. attention_mask: the 4-D token mask (``create_bidirectional_mask``).
        entities: [B, K, d] entity states (zero in slots without an entity).
        entity_attention_mask: the 4-D mask over the K entity slots.
        entity_positions: int64 [B, K] token position of each slot (any valid position where no entity).
        entity_present: [B, K, 1] 1.0 where a slot holds an entity, 0.0 elsewhere.
        """
        tokens, _ = self.attention(hidden_states, attention_mask)                       # [B, L, H]
        entities, _ = self.entity_attention(entities, entity_attention_mask)           # [B, K, d]
        entities = entities * entity_present  # empty slots contribute nothing to the fusion
        index = entity_positions.unsqueeze(-1).expand(-1, -1, self.entity_intermediate.out_features)  # [B, K, I]
        fused = self.intermediate.dense(tokens)                                           # [B, L, I] W_t·w + b
        fused = fused.scatter_add(1, index, self.entity_intermediate(entities).to(fused.dtype))  # + W_e·e
        fused = self.intermediate.intermediate_act_fn(fused)                              # [B, L, I] h
        hidden_states = self.output(fused, tokens)                                        # [B, L, H] w'
        entities = self.entity_output(fused.gather(1, index), entities) * entity_present  # [B, K, d] e'
        return hidden_states, entities


class EntityPredictionHead(nn.Module):
    """dEA scores: token state -> entity space (dense, GELU, LayerNorm), dot with candidate vectors."""

    def __init__(self, config: ErnieTConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.entity_dim)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.entity_dim, eps=config.layer_norm_eps)

    def forward(self, token_states: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """token_states [..., H], candidates [C, d] -> scores [..., C]."""
        projected = self.LayerNorm(self.transform_act_fn(self.dense(token_states)))      # [..., d]
        return projected @ candidates.to(projected.dtype).T


def init_bert_weights(module: nn.Module, std: float) -> None:
    """BERT's initialisation: normal(0, std) weights, zero biases, unit LayerNorms, zero padding embedding."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class ErnieTForPreTraining(nn.Module):
    """ERNIE (Tsinghua) with its MLM head (tied to the word embeddings) and its dEA head.

    config: the sizes. entity_vectors: float [num_entities, entity_dim] store vectors (row = store
        id), copied into the frozen table after the zero "no entity" row; None leaves the table zero
        (fill it with :meth:`set_entity_vectors`).
    """

    def __init__(self, config: ErnieTConfig, entity_vectors: np.ndarray | torch.Tensor | None = None):
        super().__init__()
        self.config = config
        bert_config, entity_config = config.bert_config(), config.entity_config()
        self.embeddings = BertEmbeddings(bert_config)
        self.text_layers = nn.ModuleList(BertLayer(bert_config, layer_idx=i) for i in range(config.num_text_layers))
        self.aggregators = nn.ModuleList(ErnieTAggregator(bert_config, entity_config)
                                         for _ in range(config.num_aggregator_layers))
        self.cls = BertOnlyMLMHead(bert_config)
        self.entity_head = EntityPredictionHead(config)
        self._bert_config, self._entity_config = bert_config, entity_config
        # frozen: a buffer, so no optimizer sees it; not persistent: checkpoints do not repeat the store
        self.register_buffer("entity_vectors", torch.zeros(config.num_entities + 1, config.entity_dim),
                             persistent=False)
        self.apply(partial(init_bert_weights, std=config.initializer_range))
        self.tie_weights()
        if entity_vectors is not None:
            self.set_entity_vectors(entity_vectors)

    def tie_weights(self) -> None:
        """Share the MLM decoder with the word embeddings, and its bias with ``cls.predictions.bias``, as BERT."""
        self.cls.predictions.decoder.weight = self.embeddings.word_embeddings.weight
        self.cls.predictions.decoder.bias = self.cls.predictions.bias

    def set_entity_vectors(self, vectors: np.ndarray | torch.Tensor) -> None:
        """Copy store vectors [num_entities, entity_dim] into rows 1.. of the frozen table."""
        if not isinstance(vectors, torch.Tensor):
            vectors = torch.from_numpy(np.array(vectors, dtype=np.float32))  # a writable copy of a memory map
        expected = (self.config.num_entities, self.config.entity_dim)
        if tuple(vectors.shape) != expected:
            raise ValueError(f"entity vectors have shape {tuple(vectors.shape)}, the model expects {expected} "
                             f"(num_entities, entity_dim): use the store the model was built for")
        with torch.no_grad():
            self.entity_vectors[1:] = vectors.to(self.entity_vectors)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, entity_positions: torch.Tensor | None = None,
                entity_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Final token states [B, L, H].

        input_ids / attention_mask / token_type_ids: [B, L] as for BERT (with [CLS]/[SEP]).
        entity_positions: int64 [B, K] token position of each entity slot (None: no entities).
        entity_ids: int64 [B, K] row of the entity table per slot: store id + 1, 0 = no entity.
        """
        hidden = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)    # [B, L, H]
        token_mask = create_bidirectional_mask(config=self._bert_config, inputs_embeds=hidden,
                                               attention_mask=attention_mask)
        for layer in self.text_layers:
            hidden = layer(hidden, token_mask)
        if entity_ids is None or entity_ids.shape[1] == 0:  # no slots: one empty slot keeps shapes uniform
            entity_ids = input_ids.new_zeros(input_ids.shape[0], 1)
            entity_positions = input_ids.new_zeros(input_ids.shape[0], 1)
        present = entity_ids > 0                                                           # [B, K]
        entities = self.entity_vectors[entity_ids]                                         # [B, K, d]
        # a row without entities attends over its (zero, discarded) slots: an all-masked row is NaN in SDPA
        keys = present | ~present.any(dim=1, keepdim=True)
        entity_mask = create_bidirectional_mask(config=self._entity_config, inputs_embeds=entities,
                                                attention_mask=keys)
        present = present.unsqueeze(-1).to(entities.dtype)                                # [B, K, 1]
        for layer in self.aggregators:
            hidden, entities = layer(hidden, token_mask, entities, entity_mask, entity_positions, present)
        return hidden

    def mlm_logits(self, sequence_output: torch.Tensor) -> torch.Tensor:
        """[B, L, H] -> [B, L, V] masked-LM scores."""
        return self.cls(sequence_output)

    def entity_logits(self, sequence_output: torch.Tensor, entity_positions: torch.Tensor,
                      candidate_ids: torch.Tensor) -> torch.Tensor:
        """dEA scores [B, K, C] of each slot's token state against candidate table rows ``candidate_ids`` [C]."""
        index = entity_positions.unsqueeze(-1).expand(-1, -1, sequence_output.shape[-1])  # [B, K, H]
        return self.entity_head(sequence_output.gather(1, index), self.entity_vectors[candidate_ids])


def from_bert(pretrained: str | Path, num_entities: int, entity_dim: int, num_aggregator_layers: int | None = None,
              entity_heads: int = 4, attn_implementation: str = "sdpa") -> ErnieTForPreTraining:
    """An ERNIE-T initialised from a local BERT checkpoint directory (``save_pretrained`` output).

    The checkpoint's L layers split into N = L - M text layers and M aggregators: embeddings, the
    MLM head and text layer i copy BERT layer i; aggregator j's token path (attention,
    intermediate, output) copies BERT layer N + j. The entity path starts fresh.
    num_entities / entity_dim: the store's entity table. num_aggregator_layers: M (default None: L // 2).
    entity_heads / attn_implementation: as :class:`ErnieTConfig`.
    """
    from transformers import BertForMaskedLM

    path = Path(pretrained)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a local BERT checkpoint directory (no config.json)")
    bert = BertForMaskedLM.from_pretrained(path, local_files_only=True)
    c = bert.config
    m = c.num_hidden_layers // 2 if num_aggregator_layers is None else num_aggregator_layers
    if not 1 <= m <= c.num_hidden_layers:
        raise ValueError(f"{path} has {c.num_hidden_layers} layers: cannot make {m} of them aggregators")
    num_text_layers = c.num_hidden_layers - m
    config = ErnieTConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_text_layers=num_text_layers,
        num_aggregator_layers=m, num_attention_heads=c.num_attention_heads,
        intermediate_size=c.intermediate_size, max_position_embeddings=c.max_position_embeddings,
        type_vocab_size=c.type_vocab_size, hidden_act=c.hidden_act, hidden_dropout_prob=c.hidden_dropout_prob,
        attention_probs_dropout_prob=c.attention_probs_dropout_prob, layer_norm_eps=c.layer_norm_eps,
        initializer_range=c.initializer_range, pad_token_id=c.pad_token_id or 0, num_entities=num_entities,
        entity_dim=entity_dim, entity_heads=entity_heads, attn_implementation=attn_implementation)
    model = ErnieTForPreTraining(config)
    layers = bert.bert.encoder.layer
    model.embeddings.load_state_dict(bert.bert.embeddings.state_dict())
    for i, layer in enumerate(model.text_layers):
        layer.load_state_dict(layers[i].state_dict())
    for j, aggregator in enumerate(model.aggregators):
        source = layers[num_text_layers + j]
        for name in ("attention", "intermediate", "output"):
            getattr(aggregator, name).load_state_dict(getattr(source, name).state_dict())
    model.cls.load_state_dict(bert.cls.state_dict())
    model.tie_weights()
    return model


def save_pretrained(model: ErnieTForPreTraining, out: str | Path) -> Path:
    """Write ``config.json`` (ErnieTConfig), ``model.safetensors`` and ``entity_vectors.npy`` (the frozen table) to ``out``."""
    from safetensors.torch import save_model

    from kept.files import normal_mode

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.config.save(out / CONFIG_NAME)
    save_model(model, str(out / WEIGHTS_NAME))  # drops the tied duplicates, restored by tie_weights on load
    normal_mode(out / WEIGHTS_NAME)  # safetensors writes its files 0600
    np.save(out / ENTITY_VECTORS_NAME, model.entity_vectors[1:].detach().cpu().float().numpy())
    return out


def load_pretrained(model_dir: str | Path, device: str | torch.device = "cpu") -> ErnieTForPreTraining:
    """Load a model written by :func:`save_pretrained` (or ``ErnieTModule.export_hf``), in eval mode."""
    from safetensors.torch import load_model

    model_dir = Path(model_dir)
    for name in (CONFIG_NAME, WEIGHTS_NAME, ENTITY_VECTORS_NAME):
        if not (model_dir / name).exists():
            raise FileNotFoundError(f"{model_dir} is not an ERNIE-T export: {name} is missing")
    model = ErnieTForPreTraining(ErnieTConfig.load(model_dir / CONFIG_NAME),
                                 np.load(model_dir / ENTITY_VECTORS_NAME, mmap_mode="r"))
    load_model(model, str(model_dir / WEIGHTS_NAME), strict=True)
    model.tie_weights()
    return model.to(device).eval()
