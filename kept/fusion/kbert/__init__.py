"""K-BERT (Liu et al. 2020): sentence trees, soft positions and visible-matrix attention on a stock BERT.

Public names (imported on first use):

* :mod:`kept.fusion.kbert.branches`: ``BranchTable``, ``CharVocab``
* :mod:`kept.fusion.kbert.tree`: ``SentenceTree``, ``SentenceTreeBuilder``, ``build_trees``
* :mod:`kept.fusion.kbert.model`: ``tree_attention_mask``, ``tree_forward``
* :mod:`kept.fusion.kbert.data`: ``KBertDataModule``, ``KBertMaskingCollator``, ``JiebaSubjectSegmenter``, ``kbert_training_batch``
* :mod:`kept.fusion.kbert.train`: ``KBertModule``
* :mod:`kept.fusion.kbert.scorer`: ``KBertScorer``
"""

from kept._lazy import lazy_exports

_EXPORTS = {
    "BranchTable": "branches",
    "CharVocab": "branches",
    "SentenceTree": "tree",
    "SentenceTreeBuilder": "tree",
    "build_trees": "tree",
    "tree_attention_mask": "model",
    "tree_forward": "model",
    "KBertDataModule": "data",
    "KBertMaskingCollator": "data",
    "JiebaSubjectSegmenter": "data",
    "kbert_training_batch": "data",
    "KBertModule": "train",
    "KBertScorer": "scorer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
