"""kept: knowledge-enhanced pretraining toolkit.

The data path is: KG dump -> KG store (:mod:`kept.kg.store`) -> TransE / entity
linking -> linked examples -> pretraining methods -> cloze probing.
"""

__version__ = "0.1.0"
