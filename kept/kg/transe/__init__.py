"""TransE knowledge-graph embeddings: model, data, training, filtered evaluation, I/O and ``kept kg embed``.

Public names (imported on first use):

* :mod:`kept.kg.transe.model`: ``TransE``, ``TransELoss``, ``triple_distance``, ``margin_ranking_loss``, ``self_adversarial_loss``, ``loss_and_gradient``, ``row_gradients``
* :mod:`kept.kg.transe.lightning`: ``TransELightning``
* :mod:`kept.kg.transe.config`: ``TransEConfig``
* :mod:`kept.kg.transe.data`: ``TransEDataModule``, ``split_triples``, ``sample_negatives``
* :mod:`kept.kg.transe.train`: ``TrainResult``, ``train_transe``, ``evaluate_embeddings``
* :mod:`kept.kg.transe.evaluate`: ``evaluate_link_prediction``, ``filtered_ranks``, ``pairwise_distance``, ``KnownTriples``
* :mod:`kept.kg.transe.io`: ``write_embeddings``, ``export_openke``, ``load_openke``, ``embeddings_dir``
* :mod:`kept.kg.transe.optim`: ``LazyAdam``
"""

from kept._lazy import lazy_exports

_EXPORTS = {
    "TransE": "model",
    "TransELoss": "model",
    "triple_distance": "model",
    "margin_ranking_loss": "model",
    "self_adversarial_loss": "model",
    "loss_and_gradient": "model",
    "row_gradients": "model",
    "TransELightning": "lightning",
    "TransEConfig": "config",
    "TransEDataModule": "data",
    "split_triples": "data",
    "sample_negatives": "data",
    "TrainResult": "train",
    "train_transe": "train",
    "evaluate_embeddings": "train",
    "evaluate_link_prediction": "evaluate",
    "filtered_ranks": "evaluate",
    "pairwise_distance": "evaluate",
    "KnownTriples": "evaluate",
    "write_embeddings": "io",
    "export_openke": "io",
    "load_openke": "io",
    "embeddings_dir": "io",
    "LazyAdam": "optim",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
