"""Hyperparameters of a TransE run (no torch import: the CLI reads the defaults for --help)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class TransEConfig:
    """Every hyperparameter of a TransE run; written to ``config.json`` next to the vectors.

    The defaults are the documented recipe of ``docs/transe.md``: L2 TransE trained with
    self-adversarial negative sampling (Sun et al., 2019) over 256 negatives shared by the
    batch, γ just above the initial distance scale, lazy Adam, free (unnormalised) entity
    vectors. ``normalize_entities=True, adversarial_temperature=0`` gives Bordes et al.'s
    original setting (margin ranking loss, unit-norm entities).
    """

    dim: int = 256                        #: embedding size of entities and relations
    norm: int = 2                         #: p of the distance ‖h + r − t‖_p: 1 or 2
    margin: float = 6.0                   #: margin of the ranking loss, or γ of the self-adversarial loss
    adversarial_temperature: float = 1.0  #: α of self-adversarial sampling; 0 = plain margin ranking loss
    negatives: int = 256                  #: negative triples per positive triple
    chunk_size: int = 0                   #: triples that share their negatives (0 = the whole batch, 1 = none)
    sampler: str = "bern"                 #: corrupt head or tail: "uniform" (50/50) or "bern" (Wang et al., 2014)
    normalize_entities: bool = False      #: renormalise entity vectors to unit L2 norm after each step
    optimizer: str = "sparse_adam"        #: "sparse_adam" (lazy Adam on the batch's rows, SparseAdam's rule) or "adam"
    lr: float = 3e-3                      #: learning rate
    batch_size: int = 1024                #: positive triples per step
    epochs: int = 50                      #: maximum number of epochs
    eval_every: int = 5                   #: validate (filtered MRR) every N epochs
    patience: int = 4                     #: stop after this many validations without a better MRR
    eval_batch_size: int = 0              #: queries scored at once in evaluation (0 = automatic)
    seed: int = 0                         #: seed of initialisation, splits, shuffling and negatives

    def __post_init__(self) -> None:
        if self.norm not in (1, 2):
            raise ValueError(f"norm must be 1 or 2, not {self.norm}")
        if self.sampler not in ("uniform", "bern"):
            raise ValueError(f"sampler must be 'uniform' or 'bern', not {self.sampler!r}")
        if self.optimizer not in ("sparse_adam", "adam"):
            raise ValueError(f"optimizer must be 'sparse_adam' or 'adam', not {self.optimizer!r}")
        if min(self.dim, self.negatives, self.batch_size, self.eval_every) < 1 or self.chunk_size < 0:
            raise ValueError("dim, negatives, batch_size and eval_every must be ≥ 1, chunk_size ≥ 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TransEConfig:
        """Build from a dict (e.g. a config.json), ignoring keys that are not hyperparameters."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})
