"""Model-side knowledge fusion methods: K-BERT sentence trees (:mod:`kept.fusion.kbert`,
:mod:`kept.fusion.kbert_tree`), ERNIE (Tsinghua) aggregators and ERNIE 3.0 triple-text pretraining."""
