"""Scorers: log-probabilities of the vocabulary at the [MASK] positions of cloze queries.

Every scorer implements the probing contract::

    scorer.mask_log_probs(examples: list[LinkedExample]) -> list[torch.Tensor]
        # for each example a float32 [k, V] log-softmax at its k [MASK] positions, in order
    Scorer.from_pretrained(model_dir, store=None, device="cpu")

:func:`load_scorer` picks the scorer by ``model_dir/kept.json`` "method" from the method
registry (:mod:`kept.methods`, each method's ``scorer``, imported only when used): a plain
Hugging Face BERT directory (no kept.json) and the stock-BERT methods get a
:class:`MaskedLMScorer`; the methods that read the KG at probe time (K-BERT, ERNIE-T) get
their own scorers, which read the entity spans of the queries.

:class:`MaskedLMScorer` is the fast path for BERT-base-size models on CPU: queries are
sorted by length and batched so that a batch has (almost) no padding, the encoder runs
under ``torch.inference_mode`` with SDPA attention, and the MLM head (a [H, V] matmul)
runs only on the hidden states of [MASK] positions, not on the full [B, L, V] logits.
Opt-in: bf16 weights and activations (``dtype="bfloat16"``), int8 dynamic quantisation of
the Linear layers (``quantize=True``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from transformers import BertForMaskedLM

from kept.data.examples import LinkedExample
from kept.kg.store import KGStore
from kept.model_dir import check_model_dir


class Scorer(Protocol):
    """What the probe needs from a model (see the module docstring)."""

    def mask_log_probs(self, examples: list[LinkedExample]) -> list[torch.Tensor]: ...


# A scorer that reads the KG at probe time and supports the ``leave-one-out`` condition also takes
# ``mask_log_probs(examples, withheld=rows)``: int64 [n] the store triple row each example's knowledge
# must not show (-1: none), the probed triple (see :func:`kept.probe.jobs.fact_triple_rows`).


def read_method(model_dir: str | Path) -> tuple[str | None, dict]:
    """``(method, kept.json contents)`` of a model directory; ``(None, {})`` without kept.json."""
    path = Path(model_dir) / "kept.json"
    if not path.exists():
        return None, {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(info, dict) or not isinstance(info.get("method"), str):
        raise ValueError(f"{path}: expected an object with a string \"method\"")
    return info["method"], info


def load_scorer(model_dir: str | Path, store: KGStore | None = None, device: str = "cpu", knowledge: str = "full",
                **options: Any) -> Scorer:
    """The scorer of a model directory, by its kept.json "method" (absent: plain Hugging Face BERT).

    model_dir: a local directory (``save_pretrained`` / ``export_hf`` output).
    store: the KG store that knowledge methods use at probe time (default None).
    device: torch device (default "cpu").
    knowledge: the probe-time knowledge condition of methods that read the KG (``kept.methods.KNOWLEDGE``;
        default "full"); a method that does not support it is a ValueError. Ignored by the others.
    options: extra keyword arguments of :meth:`MaskedLMScorer.from_pretrained` (``dtype``,
        ``quantize``, ``batch_size``); ignored by the knowledge methods' scorers.
    """
    from kept.methods import METHODS, resolve

    name, _ = read_method(model_dir)
    model_dir = check_model_dir(model_dir, hf_config=name not in METHODS or METHODS[name].hf_masked_lm)
    if name is None:
        return MaskedLMScorer.from_pretrained(model_dir, store=store, device=device, **options)
    if name not in METHODS:
        raise ValueError(f"{model_dir / 'kept.json'}: unknown method {name!r} (known: {', '.join(METHODS)})")
    method = METHODS[name]
    scorer_class = resolve(method.scorer)
    if scorer_class is MaskedLMScorer:
        return MaskedLMScorer.from_pretrained(model_dir, store=store, device=device, **options)
    if knowledge not in method.knowledge_conditions:
        raise ValueError(f"{model_dir}: {name} supports the knowledge conditions "
                         f"{', '.join(method.knowledge_conditions)}, not {knowledge!r}")
    if knowledge == "full":  # the scorers' default (keeps their plain signature working)
        return scorer_class.from_pretrained(model_dir, store=store, device=device)
    return scorer_class.from_pretrained(model_dir, store=store, device=device, knowledge=knowledge)


def length_sorted_batches(lengths: np.ndarray, batch_size: int, max_batch_tokens: int) -> list[np.ndarray]:
    """Indices of examples grouped into batches of similar length (little padding).

    lengths: int [N] sequence lengths. batch_size: most examples per batch.
    max_batch_tokens: most ``examples x longest length`` per batch (a long sequence goes alone
        if it exceeds it). Returns index arrays covering 0..N-1 once, shortest batches first.
    """
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        end = min(start + batch_size, len(order))
        # sorted ascending: the longest in order[start:end] is the last one; shrink until it fits
        while end - start > 1 and (end - start) * lengths[order[end - 1]] > max_batch_tokens:
            end = start + max(1, min(end - start - 1, max_batch_tokens // max(1, int(lengths[order[end - 1]]))))
        batches.append(order[start:end])
        start = end
    return batches


class MaskedLMScorer:
    """Log-probabilities at [MASK] positions from a ``BertForMaskedLM``.

    model: the masked LM (put in eval mode here).
    tokenizer: its tokenizer (for the [CLS]/[SEP]/[PAD]/[MASK] ids).
    device: torch device (default "cpu").
    batch_size: most queries per forward pass (default 128).
    max_batch_tokens: most padded tokens (queries x longest) per forward pass (default 8192).
    """

    def __init__(self, model: BertForMaskedLM, tokenizer: Any, device: str = "cpu", batch_size: int = 128,
                 max_batch_tokens: int = 8192):
        self.model = model.eval().to(device)
        self.tokenizer, self.device = tokenizer, torch.device(device)
        self.batch_size, self.max_batch_tokens = batch_size, max_batch_tokens
        self.cls_id, self.sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.pad_id, self.mask_id = tokenizer.pad_token_id, tokenizer.mask_token_id
        self.encoder: Callable = model.bert
        self.head: Callable = model.cls

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, store: KGStore | None = None, device: str = "cpu",
                        dtype: str = "float32", quantize: bool = False, batch_size: int = 128,
                        tokenizer: Any = None) -> MaskedLMScorer:
        """Load a local BertForMaskedLM directory (never from a hub).

        store: unused (plain BERT has no knowledge input); accepted for the common signature.
        dtype: "float32" (default) or "bfloat16" weights and activations (log-probs stay float32).
        quantize: int8 dynamic quantisation of every Linear layer (CPU only; default False).
        batch_size: queries per forward pass (default 128).
        tokenizer: the tokenizer (default: the one saved in ``model_dir``).
        """
        from kept.data.tokenizer import load_tokenizer

        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', not {dtype!r}")
        check_model_dir(model_dir)
        model = BertForMaskedLM.from_pretrained(model_dir, local_files_only=True, attn_implementation="sdpa")
        if dtype == "bfloat16":
            model = model.to(torch.bfloat16)
        if quantize:
            if torch.device(device).type != "cpu":
                raise ValueError("quantize=True (int8 dynamic quantisation) runs on CPU only")
            model = quantize_linear_int8(model)
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_dir)
        return cls(model, tokenizer, device=device, batch_size=batch_size)

    def pad(self, examples: Sequence[LinkedExample]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(input_ids [B, L], attention_mask [B, L] or None when nothing is padded)`` with [CLS]/[SEP]."""
        lengths = np.fromiter((len(ex) + 2 for ex in examples), dtype=np.int64, count=len(examples))   # [B]
        width = int(lengths.max())
        flat = np.concatenate([np.concatenate([[self.cls_id], ex.input_ids, [self.sep_id]]) for ex in examples])
        real = np.arange(width)[None, :] < lengths[:, None]                                           # [B, L]
        ids = np.full((len(examples), width), self.pad_id, dtype=np.int64)
        ids[real] = flat
        mask = None if bool(real.all()) else torch.from_numpy(real.astype(np.int64)).to(self.device)
        return torch.from_numpy(ids).to(self.device), mask

    def mask_log_probs(self, examples: list[LinkedExample]) -> list[torch.Tensor]:
        """For each example, float32 [k, V] log-softmax over the vocabulary at its k [MASK] positions."""
        out: list[torch.Tensor | None] = [None] * len(examples)
        if not examples:
            return []
        lengths = np.fromiter((len(ex) + 2 for ex in examples), dtype=np.int64, count=len(examples))
        with torch.inference_mode():
            for batch in length_sorted_batches(lengths, self.batch_size, self.max_batch_tokens):
                ids, mask = self.pad([examples[i] for i in batch.tolist()])                           # [B, L]
                hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state          # [B, L, H]
                at_mask = ids == self.mask_id                                                         # [B, L]
                # the head only where a prediction is read: [M, H] -> [M, V] instead of [B, L, V]
                log_probs = self.head(hidden[at_mask]).float().log_softmax(dim=-1)                   # [M, V]
                counts = at_mask.sum(dim=1).tolist()                                                  # [B]
                for i, rows in zip(batch.tolist(), log_probs.split(counts)):
                    out[i] = rows
        return out  # type: ignore[return-value]


def quantize_linear_int8(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every ``nn.Linear`` replaced by an int8 dynamically quantised one (CPU)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
