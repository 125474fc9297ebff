"""What every ``kept pretrain --export DIR`` folder carries besides the weights, whatever the method.

:func:`finish_export` runs after the method's own ``export_hf`` and gives every export:

* ``kept.json`` with ``"method"`` and, for a method trained with a KG store, ``"store"``: the
  store's **absolute** path (one rule for every method; :func:`kept.model_dir.recorded_store`
  reads it, and also the relative paths of exports made before this rule);
* ``vocab.txt``: the tokenizer's vocabulary, one wordpiece per line in id order (what BERT tools
  outside Hugging Face, and ``kept data build --vocab``, read);
* ``README.md``: a short model card (method, data, steps, size, kept version, how to load);
* file modes a plain ``open(path, "w")`` gives (0644 under umask 022), also for the weights that
  ``safetensors`` writes private (0600).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from kept import __version__
from kept.files import normal_mode
from kept.methods import get_method


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _data_store(datamodule: Any) -> str | None:
    """The KG store a data module trained with (``store_path`` or its ``store`` argument), or None."""
    store = getattr(datamodule, "store_path", None)
    if store is None:
        hparams = getattr(datamodule, "hparams", {}) or {}
        store = hparams.get("store") if hasattr(hparams, "get") else None
    return None if store is None else str(store)


def write_vocab(out: Path, tokenizer: Any) -> Path:
    """``out/vocab.txt`` from ``tokenizer.get_vocab()``: one token per line, line i = id i."""
    vocab = tokenizer.get_vocab()
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        if not 0 <= index < len(tokens) or tokens[index]:
            raise ValueError(f"{out}: the tokenizer's ids are not 0..{len(vocab) - 1} (id {index}): "
                             "no vocab.txt can list them")
        tokens[index] = token
    path = out / "vocab.txt"
    _write_text(path, "\n".join(tokens) + "\n")
    return path


def _size(out: Path, module: Any) -> str:
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    layers = config.get("num_hidden_layers") or (config.get("num_text_layers", 0) + config.get("num_aggregator_layers", 0))
    params = sum(p.numel() for p in module.parameters()) if module is not None else None
    return (f"{layers} layer{'' if layers == 1 else 's'}, hidden size {config.get('hidden_size')}, vocabulary {config.get('vocab_size')}"
            + (f", {params / 1e6:.1f} M parameters" if params else ""))


def model_card(out: Path, info: dict, module: Any = None, datamodule: Any = None, trainer: Any = None) -> str:
    """The README.md of an export: what it is, what it was trained on, and how to load it."""
    method = get_method(info["method"]) if info.get("method") else None
    hparams = getattr(datamodule, "hparams", {}) or {}
    lines = [f"# {out.name}: a kept `{info['method']}` model" if method else f"# {out.name}: a kept BERT model", ""]
    if method is not None:
        lines += [f"{method.description} ({method.paper})." if method.paper else f"{method.description}.", ""]
    lines += ["| | |", "|---|---|"]
    if method is not None:
        lines.append(f"| method | `{method.name}` (`kept pretrain --method {method.name}`) |")
    if hparams.get("corpus"):
        lines.append(f"| data | linked corpus `{Path(hparams['corpus']).resolve()}` |")
    if info.get("store"):
        lines.append(f"| KG store | `{info['store']}` |")
    if trainer is not None:
        lines.append(f"| training | {trainer.global_step:,} optimizer steps "
                     f"(batch size {hparams.get('batch_size', '?')}, max length {hparams.get('max_length', '?')}) |")
    lines += [f"| size | {_size(out, module)} |", f"| kept version | {__version__} |",
              f"| exported | {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} |", "", "## Load it", ""]
    if method is None or method.hf_masked_lm:
        lines += ["A stock Hugging Face BERT masked LM:", "", "```python", "from transformers import pipeline", "",
                  f'fill = pipeline("fill-mask", model="{out}")', 'fill("paris is the capital of [MASK] .")', "```"]
    else:
        loader = method.loader.rpartition(".")
        lines += ["kept's own modules (not a `transformers` architecture):", "", "```python",
                  f"from {loader[0]} import {loader[2]}", "", f'model = {loader[2]}("{out}")  # hidden states',
                  "", "from kept.fusion.ernie_t import ErnieTFillMask  # a fill-mask pipeline for it",
                  f'fill = ErnieTFillMask.from_pretrained("{out}")', 'fill("paris is the capital of [MASK] .")',
                  "```"]
    if method is not None and method.knowledge_at_probe:
        lines += ["", f"Probe it with its knowledge: `kept probe --model {out} --kg {info.get('store') or 'STORE'} ...`"]
    lines += ["", "Files: `kept.json` (method and options, read by `kept probe`), `vocab.txt` (the wordpiece "
              "vocabulary, line = id), the tokenizer, the config and the weights."]
    return "\n".join(lines) + "\n"


def finish_export(out: str | Path, method: str | None, module: Any = None, datamodule: Any = None,
                  trainer: Any = None) -> Path:
    """Complete an export folder written by a method's ``export_hf`` (see the module docstring).

    method: the registry name (None: keep what ``kept.json`` says; without one it is a plain BERT). module /
    datamodule / trainer: the run's objects, for the store, the tokenizer and the model card
    (each may be None). Returns ``out``.
    """
    out = Path(out)
    info_path = out / "kept.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    if method is not None:  # a run from --config files alone names no method: a plain BERT export
        info.setdefault("method", method)
    store = info.get("store") or _data_store(datamodule)
    if store is not None:
        info["store"] = str(Path(store).resolve())  # one rule: the absolute path
    if "method" in info:  # no kept.json for a plain BERT: `kept probe` reads the folder as one
        info["kept_version"] = __version__
        _write_text(info_path, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    tokenizer = getattr(datamodule, "tokenizer", None)
    if tokenizer is not None and not (out / "vocab.txt").is_file():
        write_vocab(out, tokenizer)
    _write_text(out / "README.md", model_card(out, info, module, datamodule, trainer))
    normal_mode(*(p for p in out.rglob("*") if p.is_file()))
    return out


__all__ = ["finish_export", "model_card", "write_vocab"]
