"""ERNIE (Tsinghua, Zhang et al. 2019): K-Encoder aggregators over frozen TransE vectors, trained with MLM + dEA.

Public names (imported on first use):

* :mod:`kept.fusion.ernie_t.model`: ``ErnieTConfig``, ``ErnieTAggregator``, ``ErnieTForPreTraining``, ``from_bert``, ``save_pretrained``, ``load_pretrained``
* :mod:`kept.fusion.ernie_t.data`: ``ErnieTDataModule``, ``ErnieTCollator``, ``align_entities``, ``corrupt_alignments``, ``training_batch``
* :mod:`kept.fusion.ernie_t.train`: ``ErnieTModule``, ``dea_loss``
* :mod:`kept.fusion.ernie_t.scorer`: ``ErnieTScorer``
* :mod:`kept.fusion.ernie_t.fill_mask`: ``ErnieTFillMask`` (``pipeline("fill-mask")`` for an export)
"""

from kept._lazy import lazy_exports

_EXPORTS = {
    "ErnieTConfig": "model",
    "ErnieTAggregator": "model",
    "ErnieTForPreTraining": "model",
    "from_bert": "model",
    "save_pretrained": "model",
    "load_pretrained": "model",
    "ErnieTDataModule": "data",
    "ErnieTCollator": "data",
    "align_entities": "data",
    "corrupt_alignments": "data",
    "training_batch": "data",
    "ErnieTModule": "train",
    "dea_loss": "train",
    "ErnieTScorer": "scorer",
    "ErnieTFillMask": "fill_mask",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
