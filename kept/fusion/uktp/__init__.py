"""ERNIE 3.0 universal knowledge-text prediction: triple + sentence batches mixed with plain MLM.

Public names (imported on first use):

* :mod:`kept.fusion.uktp.data`: ``TriplePairing``, ``pair_triples``, ``load_pairing``, ``UktpCollator``
* :mod:`kept.fusion.uktp.train`: ``UktpModule``, ``UktpDataModule``, ``MixedBatchSampler``, ``uktp_losses``, ``benchmark_batch``
"""

from kept._lazy import lazy_exports

_EXPORTS = {
    "TriplePairing": "data",
    "pair_triples": "data",
    "load_pairing": "data",
    "UktpCollator": "data",
    "UktpModule": "train",
    "UktpDataModule": "train",
    "MixedBatchSampler": "train",
    "uktp_losses": "train",
    "benchmark_batch": "train",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
