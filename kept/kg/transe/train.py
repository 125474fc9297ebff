"""Training runs of TransE: :func:`train_transe` and :func:`evaluate_embeddings`.

:func:`train_transe` runs a Lightning ``Trainer`` (accelerator "auto", checkpoints,
early stopping on validation MRR), keeps the best validated weights and evaluates them
on valid and test. :func:`evaluate_embeddings` re-evaluates vectors saved in a store.
``kept kg embed`` (:mod:`kept.kg.transe.cli`) is a thin command over both.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO

from kept.kg.store import KGStore, open_store
from kept.kg.transe.config import TransEConfig
from kept.kg.transe.data import TransEDataModule
from kept.kg.transe.evaluate import evaluate_link_prediction
from kept.kg.transe.io import read_json
from kept.kg.transe.lightning import TransELightning
from kept.progress import with_progress_bar
from kept.runtime import quiet_library_notices, reuse_freed_memory


@dataclass
class TrainResult:
    """What :func:`train_transe` returns: the kept vectors and how they were obtained."""

    entity: np.ndarray                     #: float32 [num_entities, dim]
    relation: np.ndarray                   #: float32 [num_relations, dim]
    metrics: dict                          #: valid / test metrics (kept.kg.transe.evaluate) + run facts
    config: dict                           #: resolved configuration
    epoch_seconds: list[float] = field(default_factory=list)  #: training time of each epoch (no validation)
    is_global_zero: bool = True            #: False in the other processes of a multi-device run


class EpochTimer(pl.Callback):
    """Seconds of each training epoch, validation time excluded."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = self._val_start = self._val = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start, self._val = time.perf_counter(), 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        self._val += time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._start - self._val)


class StreamingCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints straight to a temporary file renamed into place.

    Lightning's default first serialises the whole checkpoint into memory (``io.BytesIO``),
    which doubles the training state in RAM at every save (+12 · dim bytes per entity).
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        """Tensors and plain data only (``weights_only=True``, whatever the caller asks): a
        checkpoint someone sent cannot run code."""
        if map_location is None:
            return super().load_checkpoint(path, weights_only=True)
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


def device_for(accelerator: str) -> torch.device:
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def train_transe(store: KGStore | str, config: TransEConfig | None = None, work_dir: str | Path | None = None,
                 accelerator: str = "auto", devices: int | str = "auto", max_minutes: float | None = None,
                 resume: str | Path | None = None, progress: bool = True, evaluate: bool = True) -> TrainResult:
    """Train TransE on a store's train split; keep the epoch with the best validation MRR.

    Args:
        store: a KG store or its path.
        config: hyperparameters (default: ``TransEConfig()``, the documented recipe).
        work_dir: checkpoints (``checkpoints/last.ckpt``, ``best.ckpt``) and CSV logs
            (default: ``STORE/embeddings/.work-transe``).
        accelerator, devices: as Lightning's ``Trainer`` ("auto": a GPU when there is one).
        max_minutes: stop training after this wall time (validation included).
        resume: a checkpoint to continue from (e.g. ``WORK/checkpoints/last.ckpt``).
        progress: show the progress bar.
        evaluate: pick the best weights and evaluate them; False = return the final weights
            without evaluation (``metrics`` then only has the run facts).

    The final weights and those of the best validated epoch are compared on valid; the
    better are kept and evaluated on test (filtered, both directions).
    """
    store = store if isinstance(store, KGStore) else open_store(store)
    config = config or TransEConfig()
    reuse_freed_memory()  # small steps: reuse freed tensor memory instead of faulting in new pages
    quiet_library_notices()
    work = Path(work_dir) if work_dir else store.path / "embeddings" / ".work-transe"
    data = TransEDataModule(store, config.batch_size, config.negatives, config.chunk_size, config.sampler,
                            config.seed, config.eval_batch_size)
    data.setup()
    module = TransELightning(store.num_entities, store.num_relations, config)
    if resume is None:  # a fresh run: checkpoints of an earlier run must not be resumed by mistake
        shutil.rmtree(work / "checkpoints", ignore_errors=True)
    best = ModelCheckpoint(dirpath=work / "checkpoints", filename="best", monitor="valid/mrr", mode="max",
                           save_top_k=1, save_last=True, enable_version_counter=False)
    timer = EpochTimer()
    callbacks = with_progress_bar([best, timer, EarlyStopping(monitor="valid/mrr", mode="max", patience=config.patience)],
                                  progress)  # "epoch E/MAX", no v_num
    trainer = pl.Trainer(
        max_epochs=config.epochs, accelerator=accelerator, devices=devices, callbacks=callbacks,
        check_val_every_n_epoch=config.eval_every, num_sanity_val_steps=0, use_distributed_sampler=False,
        logger=CSVLogger(work, name="logs"), enable_progress_bar=progress, enable_model_summary=False,
        max_time={"minutes": max_minutes} if max_minutes else None, log_every_n_steps=10,
        plugins=[StreamingCheckpointIO()])
    start = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=str(resume) if resume else None, weights_only=True)
    train_seconds = time.perf_counter() - start

    final = {k: v.detach().cpu().numpy() for k, v in  # views of the CPU weights: no copy
             (("entity", module.model.entity), ("relation", module.model.relation))}
    if not evaluate or not trainer.is_global_zero:
        facts = {"epochs": trainer.current_epoch, "train_seconds": round(train_seconds, 2)}
        return TrainResult(final["entity"], final["relation"], facts, config.to_dict(), timer.seconds,
                           trainer.is_global_zero)

    # keep the better of the final weights and the best validated checkpoint
    start = time.perf_counter()
    device = device_for(accelerator)
    p = config.norm
    epochs_run = trainer.current_epoch
    candidates, best_epoch = [("final", final)], epochs_run
    if best.best_model_path and Path(best.best_model_path).exists():
        checkpoint = torch.load(best.best_model_path, map_location="cpu", weights_only=True, mmap=True)
        best_epoch = int(checkpoint["epoch"]) + 1
        if best_epoch != epochs_run:  # else the best validated weights are the final ones
            table = checkpoint["state_dict"]["model.table.weight"].numpy()  # [N + R, d]: entity rows, then relations
            candidates.append(("best", {"entity": table[: store.num_entities], "relation": table[store.num_entities :]}))
    scored = []
    for label, vectors in candidates:
        valid = evaluate_link_prediction(vectors["entity"], vectors["relation"], data.splits["valid"], data.known,
                                         p, data.eval_batch_size, device)
        scored.append((valid["overall"]["mrr"], label == "final", label, vectors, valid))
    _, _, chosen, vectors, valid = max(scored, key=lambda s: (s[0], s[1]))
    test = evaluate_link_prediction(vectors["entity"], vectors["relation"], data.splits["test"], data.known, p,
                                    data.eval_batch_size, device)
    metrics = {
        "valid": valid, "test": test, "epochs": epochs_run, "kept_weights": chosen,
        "kept_epoch": best_epoch if chosen == "best" else epochs_run,
        "stopped_early": bool(trainer.should_stop and epochs_run < config.epochs),
        "train_seconds": round(train_seconds, 2), "eval_seconds": round(time.perf_counter() - start, 2),
        "seconds_per_epoch": round(float(np.mean(timer.seconds)), 3) if timer.seconds else None,
        "device": str(device),
    }
    resolved = {**config.to_dict(), "store": str(store.path), "split": data.split_source,
                "num_entities": store.num_entities, "num_relations": store.num_relations,
                "train_triples": len(data.splits["train"]), "valid_triples": len(data.splits["valid"]),
                "test_triples": len(data.splits["test"]), "max_minutes": max_minutes}
    return TrainResult(np.asarray(vectors["entity"], dtype=np.float32),
                       np.asarray(vectors["relation"], dtype=np.float32), metrics, resolved, timer.seconds)


def evaluate_embeddings(store: KGStore | str, name: str = "transe", device: str = "cpu") -> dict:
    """Re-evaluate a store's saved vectors on the valid and test splits used in training."""
    store = store if isinstance(store, KGStore) else open_store(store)
    config = TransEConfig.from_dict(read_json(store, "config.json", name))
    data = TransEDataModule(store, seed=config.seed, eval_batch_size=config.eval_batch_size)
    data.setup()
    entity, relation = store.entity_vectors(name), store.relation_vectors(name)
    return {split: evaluate_link_prediction(entity, relation, data.splits[split], data.known, config.norm,
                                            data.eval_batch_size, device) for split in ("valid", "test")}
