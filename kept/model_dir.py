"""Checks on a Hugging Face model directory before transformers reads it, so a broken
``config.json``, missing weights or a truncated ``model.safetensors`` is one clear
:class:`~kept.errors.InputError` (``<path>: <problem>``) instead of a traceback from deep inside."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

from kept.errors import InputError

WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def _json_object(path: Path) -> dict:
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(value, dict):
        raise InputError(f"{path}: a JSON {type(value).__name__}, expected an object")
    return value


def check_safetensors(path: Path) -> None:
    """The header parses and the tensors it lists fit exactly in the file (no truncation)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise InputError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise InputError(f"{path}: truncated or not a safetensors file (header of {n:,} bytes in a file "
                             f"of {size:,})")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InputError(f"{path}: not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: not a safetensors file (header is not an object)")
    ends = [t.get("data_offsets", [0, 0])[1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
    need = 8 + n + max(ends, default=0)
    if need > size:
        raise InputError(f"{path}: truncated safetensors file ({size:,} bytes, its tensors need {need:,})")


def check_model_dir(model_dir: str | Path, hf_config: bool = True) -> Path:
    """InputError unless ``model_dir`` holds a readable config.json and complete weights.

    hf_config: require a Hugging Face config (``model_type``; default True). False for exports with
    their own config (the registry's ``hf_masked_lm`` False: ERNIE-T).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        what = "does not exist" if not model_dir.exists() else "is not a directory"
        raise InputError(f"{model_dir}: {what}; expected a model directory (config.json and weights)")
    config = model_dir / "config.json"
    if not config.is_file():
        raise InputError(f"{model_dir}: not a model directory (no config.json)")
    info = _json_object(config)
    if hf_config and (not isinstance(info.get("model_type", ""), str)
                      or "model_type" not in info and "architectures" not in info):
        raise InputError(f"{config}: not a Hugging Face model config (no \"model_type\")")
    present = [name for name in WEIGHTS if (model_dir / name).is_file()]
    if not present:
        raise InputError(f"{model_dir}: no model weights ({' or '.join(WEIGHTS[:2])})")
    if "model.safetensors" in present:
        check_safetensors(model_dir / "model.safetensors")
    elif "pytorch_model.bin" in present and not zipfile.is_zipfile(model_dir / "pytorch_model.bin"):
        raise InputError(f"{model_dir / 'pytorch_model.bin'}: truncated or not a PyTorch weights file")
    elif present[0].endswith(".index.json"):
        _json_object(model_dir / present[0])
    return model_dir


def recorded_store(model_dir: str | Path, info: dict) -> Path | None:
    """The KG store an export's ``kept.json`` records (``info["store"]``), or None when it records none.

    Exports record the store's absolute path (``kept.train.export``). Exports made before that rule
    may hold a relative path: it is taken relative to the model folder when a store is there, else
    relative to the current directory (where such exports were trained)."""
    store = info.get("store")
    if not store:
        return None
    path = Path(store)
    if path.is_absolute():
        return path
    beside = Path(model_dir) / path
    return beside if (beside / "meta.json").is_file() else path
