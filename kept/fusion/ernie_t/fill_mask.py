"""Fill-mask for an ERNIE (Tsinghua) export, called and answering like ``transformers.pipeline("fill-mask")``.

An ERNIE-T export is kept's own modules (``load_pretrained`` returns the hidden states), so the
stock pipeline cannot load it. :class:`ErnieTFillMask` can::

    from kept.fusion.ernie_t import ErnieTFillMask

    fill = ErnieTFillMask.from_pretrained("runs/demo/models/ernie-t", store="runs/demo/stores/trex")
    fill("paris is the capital of [MASK] .", top_k=3)
    # [{"score": 0.41, "token": 2605, "token_str": "france", "sequence": "paris is the capital of france ."}, ...]

With a ``store`` the text's entity mentions are linked (:class:`kept.kg.linking.EntityLinker`) and
their TransE vectors reach the model as in training; without one the model reads the text alone.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kept.data.linked import link_example
from kept.fusion.ernie_t.scorer import ErnieTScorer
from kept.masking.units import UnitSegmenter


class ErnieTFillMask:
    """``pipeline("fill-mask")`` for ERNIE-T: ``fill(text or [texts], top_k=5)``.

    scorer: an :class:`ErnieTScorer` (model, tokenizer, device). linker: an entity linker over the
    model's store, or None (default: the text alone). language: word units, "en" (default) or "zh".
    """

    def __init__(self, scorer: ErnieTScorer, linker=None, language: str = "en"):
        self.scorer, self.linker, self.language = scorer, linker, language
        self.tokenizer = scorer.tokenizer
        self._segment = UnitSegmenter(self.tokenizer, lang=language)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, store: str | Path | None = None, device: str = "cpu",
                        language: str = "en") -> ErnieTFillMask:
        """Load an export; ``store`` (optional, the KG store it was trained with) links the texts' entities."""
        scorer = ErnieTScorer.from_pretrained(model_dir, store=store, device=device)
        linker = None
        if store is not None:
            from kept.kg.linking.linker import EntityLinker, LinkerConfig

            linker = EntityLinker.from_store(store, LinkerConfig(language=language))
        return cls(scorer, linker, language)

    def _example(self, text: str):
        if self.linker is not None:
            return link_example(text, self.tokenizer, self.linker, self.language)
        return self._segment(text)[0]

    def __call__(self, inputs: str | list[str], top_k: int = 5) -> list:
        """Like the stock pipeline: for one text with one [MASK], a list of ``top_k`` dicts
        ``{"score", "token", "token_str", "sequence"}`` (best first); a list of such lists for a text
        with several [MASK]s (one per mask, in order); and one answer per text for a list of texts."""
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        examples = [self._example(text) for text in texts]
        mask_id = self.tokenizer.mask_token_id
        answers = []
        for example, log_probs in zip(examples, self.scorer.mask_log_probs(examples)):
            probs = log_probs.exp()                                                  # [k, V]
            scores, ids = torch.topk(probs, min(top_k, probs.shape[-1]), dim=-1)     # [k, top_k]
            masks = (example.input_ids == mask_id).nonzero()[0]
            per_mask = []
            for m, (row_scores, row_ids) in enumerate(zip(scores.tolist(), ids.tolist())):
                rows = []
                for score, token in zip(row_scores, row_ids):
                    filled = example.input_ids.copy()
                    filled[masks[m]] = token
                    rows.append({"score": score, "token": token,
                                 "token_str": self.tokenizer.decode([token]).strip(),
                                 "sequence": self.tokenizer.decode(filled.tolist(), skip_special_tokens=True)})
                per_mask.append(rows)
            answers.append(per_mask[0] if len(per_mask) == 1 else per_mask)
        return answers[0] if isinstance(inputs, str) else answers
