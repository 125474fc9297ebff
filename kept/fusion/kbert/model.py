"""K-BERT on a stock BERT: the visible matrix as a 4-D attention mask and the tree forward pass."""

from __future__ import annotations

from typing import Any

import torch


def tree_attention_mask(visible_matrix: torch.Tensor, attn_implementation: str = "sdpa",
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 4-D attention mask ``[B, 1, L, L]`` a Hugging Face BERT applies in every layer.

    visible_matrix: bool [B, L, L], token i may attend to token j.
    attn_implementation: the model's ``config._attn_implementation``: "sdpa" takes the boolean
        mask (True = attend), "eager" adds it to the scores, so it gets 0 / dtype-min.
    dtype: float type of the eager additive mask (default float32).
    Rows that see nothing (padding) attend to themselves only, so their softmax is defined;
    no real token ever sees padding.
    """
    if attn_implementation not in ("sdpa", "eager"):
        raise ValueError(f"K-BERT needs a model whose attention takes a 4-D mask (sdpa or eager); this one uses "
                         f"{attn_implementation!r}: load it with attn_implementation='sdpa'")
    length = visible_matrix.shape[-1]
    diagonal = torch.eye(length, dtype=torch.bool, device=visible_matrix.device)                   # [L, L]
    sees_nothing = ~visible_matrix.any(dim=-1, keepdim=True)                                        # [B, L, 1]
    allowed = (visible_matrix | (sees_nothing & diagonal)).unsqueeze(1)                             # [B, 1, L, L]
    if attn_implementation == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed,
                                                                                       torch.finfo(dtype).min)


def tree_forward(model: torch.nn.Module, batch: dict[str, torch.Tensor], **kwargs: Any):
    """Run a Hugging Face BERT model on a tree batch (``input_ids``, ``position_ids``, ``visible_matrix``,
    optional ``token_type_ids``); extra keyword arguments go to the model."""
    mask = tree_attention_mask(batch["visible_matrix"], model.config._attn_implementation, model.dtype)
    return model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"],
                 token_type_ids=batch.get("token_type_ids"), **kwargs)
