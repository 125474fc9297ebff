"""Model-side knowledge fusion methods, one package each: :mod:`kept.fusion.kbert` (K-BERT sentence
trees), :mod:`kept.fusion.ernie_t` (ERNIE-Tsinghua aggregators + dEA) and :mod:`kept.fusion.uktp`
(ERNIE 3.0 triple + text prediction). Each has ``data`` (collators, data module), ``train`` (the
LightningModule) and, where the method reads the KG at probe time, ``scorer``."""
