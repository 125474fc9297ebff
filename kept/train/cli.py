"""``kept pretrain``: every pretraining method through one LightningCLI.

    kept pretrain --method ernie-baidu --config experiments/demo/pretrain.yaml \\
        --trainer.max_steps 200 --export runs/ernie-baidu/hf

``--method NAME`` loads the method's own config (``kept/train/configs/NAME.yaml``:
which LightningModule, which data module, which callbacks); ``--config`` files
and dotted flags then set the experiment (data paths, model size, steps). All of
LightningCLI's flags work (``--print_config`` shows the resolved configuration).
``--ckpt_path`` resumes a run exactly; ``--export DIR`` writes the trained model
in Hugging Face format at the end (with vocab.txt, a README.md model card and kept.json).
Checkpoints, logs and the run's config.yaml go under ``--trainer.default_root_dir``
(default runs/METHOD), in lightning_logs/version_N/. The trainer defaults to
``accelerator="auto"`` with bf16 mixed precision on GPUs and fp32 on CPU.
``kept pretrain --method NAME --help`` also lists the arguments of the method's
model and data classes, each with its description.
"""

from __future__ import annotations

import sys
import zipfile
from argparse import RawDescriptionHelpFormatter
from pathlib import Path

import torch
from jsonargparse import DefaultHelpFormatter
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from kept.errors import InputError
from kept.flags import LIGHTNING_DEVICES, quiet_progress, rewrite_args
from kept.methods import METHODS, Method, get_method, resolve
from kept.progress import with_progress_bar
from kept.runtime import quiet_library_notices
from kept.train.export import finish_export

#: the flags every kept command shares (kept/flags.py) -> the data-module argument each one sets
DATA_ALIASES = {"--store": "store", "--lang": "language", "--workers": "num_workers", "--max-branches": "max_entities"}
#: spellings of the store from before the shared vocabulary: they still work, with a notice
DEPRECATED_ALIASES = {"--model.entity_store": "--store", "--model.init_args.entity_store": "--store"}


def methods() -> list[str]:
    """Names accepted by ``--method`` (the registry, :mod:`kept.methods`)."""
    return list(METHODS)


class PretrainCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="checkpoint to resume from (exactly, mid-epoch included)")
        parser.add_argument("--export", type=str | None, default=None,
                            help="after training, write the model in Hugging Face format to this directory")
        parser.add_argument("--method", type=str | None, default=None,
                            help="the pretraining method, one of: " + ", ".join(METHODS) + " (its config "
                                 "kept/train/configs/NAME.yaml is read first; give it on the command line)")
        parser.link_arguments("data", "model.init_args.vocab_size", apply_on="instantiate",
                              compute_fn=lambda data: data.vocab_size)

    def before_instantiate_classes(self) -> None:
        trainer = self.config["trainer"]
        if trainer.get("precision") is None:
            trainer["precision"] = "bf16-mixed" if torch.cuda.is_available() else "32-true"
        check_logger_installed(trainer.get("logger"))

    def _instantiate_trainer(self, config: dict, callbacks: list):
        # kept's progress bar (step S/MAX, no v_num) unless the bar is off or the user chose one
        given = config.get("callbacks") or []
        given = given if isinstance(given, list) else [given]
        extra = with_progress_bar([*given, *callbacks], config.get("enable_progress_bar"))[len(given) + len(callbacks):]
        return super()._instantiate_trainer(config, [*callbacks, *extra])


#: logger class name -> (the module it needs, the pip extra that installs it)
LOGGER_PACKAGES = {"TensorBoardLogger": (("tensorboard", "tensorboardX"), "tensorboard")}


def check_logger_installed(logger) -> None:
    """InputError (one line, the install command) when ``--trainer.logger`` names a logger whose package is
    missing, e.g. TensorBoardLogger without ``tensorboard``: ``pip install 'kept[tensorboard]'``."""
    import importlib

    loggers = logger if isinstance(logger, list) else [logger]
    for item in loggers:
        class_path = item.get("class_path") if hasattr(item, "get") else None
        if not isinstance(class_path, str):
            continue
        need = LOGGER_PACKAGES.get(class_path.rpartition(".")[2])
        if need is None:
            continue
        modules, extra = need
        for module in modules:
            try:
                importlib.import_module(module)
                break
            except ImportError:
                continue
        else:
            raise InputError(f"--trainer.logger {class_path.rpartition('.')[2]}: needs the {modules[0]} package, "
                             f"which is not installed; pip install 'kept[{extra}]' (or pip install {modules[0]})")


def run_folder(method: str | None) -> str | None:
    """Where a run writes checkpoints, logs and its config.yaml unless ``--trainer.default_root_dir`` says:
    ``runs/METHOD`` (as run_mlm.py's ``--output_dir``: one folder per run; Lightning adds
    ``lightning_logs/version_N`` inside). None (Lightning's current directory) for a run without ``--method``."""
    return None if method is None else str(Path("runs") / method)


def _method_args(argv: list[str]) -> list[str]:
    """Move ``--method NAME`` to the front, preceded by ``--config <the method's config>`` (so that flags
    given before ``--method`` apply on top of the method's classes)."""
    out, first, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        name = None
        if arg == "--method" and i + 1 < len(argv):
            name, i = argv[i + 1], i + 2
        elif arg.startswith("--method="):
            name, i = arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        try:
            first = ["--config", str(get_method(name).config), "--method", name]
        except ValueError as exc:
            raise SystemExit(f"kept pretrain: {exc}") from None
    return first + out


def alias_args(argv: list[str], method: Method | None = None) -> list[str]:
    """``argv`` with the shared flags (README, "Flags used by every command") turned into LightningCLI keys.

    ``--store S`` -> ``--data.init_args.store S``, ``--lang L`` -> ``...language``, ``--workers N`` ->
    ``...num_workers``, ``--max-branches N`` -> ``...max_entities`` (each only for a method whose data module
    takes it: a SystemExit naming the method otherwise), ``--device D`` -> ``--trainer.accelerator D``,
    ``--no-progress`` -> ``--trainer.enable_progress_bar false``; the deprecated ``--model.entity_store S``
    (ERNIE-T) -> ``--data.init_args.store S`` with a notice. method: the ``--method`` given, if any.
    """
    import inspect

    params = inspect.signature(resolve(method.datamodule).__init__).parameters if method is not None else None

    def data(flag: str, key: str):
        def to(value: str | None) -> list[str]:
            if params is not None and key not in params:
                raise SystemExit(f"kept pretrain: {flag}: method {method.name} does not take it "
                                 f"({method.datamodule} has no argument {key!r})")
            return [f"--data.init_args.{key}", value]
        return to

    def device(value: str | None) -> list[str]:
        if value not in LIGHTNING_DEVICES:
            raise SystemExit(f"kept pretrain: --device {value}: choose one of {', '.join(LIGHTNING_DEVICES)}")
        return ["--trainer.accelerator", value]

    aliases = {flag: data(flag, key) for flag, key in DATA_ALIASES.items()}
    aliases.update({old: data(new, "store") for old, new in DEPRECATED_ALIASES.items()})
    aliases["--device"] = device
    aliases["--no-progress"] = lambda _: ["--trainer.enable_progress_bar", "false"]
    return rewrite_args(argv, aliases, switches=["--no-progress"], deprecated=DEPRECATED_ALIASES)


class _HelpFormatter(RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the description's line breaks kept (the method list)."""


def _description() -> str:
    """The module docstring plus one line per registered method (``kept pretrain --help``)."""
    width = max(len(name) for name in METHODS)
    lines = [f"  {name:<{width}}  {m.description}" for name, m in METHODS.items()]
    shared = "\n".join(f"  {flag:<22}  = {target}" for flag, target in (
        ("--store STORE", "--data.store (kbert, ernie-t, uktp)"), ("--lang en|zh", "--data.language (kbert)"),
        ("--workers N", "--data.num_workers"), ("--max-branches N", "--data.max_entities (kbert)"),
        ("--device auto|cpu|cuda", "--trainer.accelerator (default auto)"),
        ("--no-progress", "--trainer.enable_progress_bar false")))
    return (__doc__ + "\nMethods (--method NAME):\n" + "\n".join(lines) + "\n\nFlags shared with the other kept "
            "commands (README, \"Flags used by every command\"):\n" + shared + "\n")


def method_help(method: Method) -> str:
    """The arguments of ``method``'s model and data classes with their descriptions (``--method NAME --help``)."""
    from jsonargparse import ArgumentParser

    parts = []
    for key, path in (("model", method.module), ("data", method.datamodule)):
        parser = ArgumentParser(prog="kept pretrain", formatter_class=DefaultHelpFormatter)
        parser.add_class_arguments(resolve(path), key, skip={"vocab_size"})
        text = parser.format_help().split("\n\n", 1)[1]
        text = text.split("\n\n", 1)[1] if text.startswith("options:") else text  # drop -h
        parts.append(f"{method.name}'s {key} ({path}; also as --{key}.init_args.NAME):\n" + text.split("\n", 1)[1])
    return "\n".join(parts)


def check_checkpoint(ckpt_path: str | None) -> None:
    """InputError for a ``--ckpt_path`` that is missing or not a PyTorch checkpoint (garbage, truncated);
    Lightning's own names ("last", "best", "hpc", "registry") pass."""
    if ckpt_path is None or ckpt_path in ("last", "best", "hpc", "registry") or "://" in ckpt_path:
        return
    path = Path(ckpt_path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise InputError(f"{path}: {what}; --ckpt_path takes a checkpoint file (e.g. .../checkpoints/last.ckpt)")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a PyTorch checkpoint (truncated or another kind of file)")
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"{path}: damaged checkpoint ({exc})") from None
    if bad is not None:
        raise InputError(f"{path}: damaged checkpoint (bad entry {bad})")


def _input_error_in(exc: BaseException) -> BaseException | None:
    """The InputError (or OSError) behind an exception jsonargparse raised, if there is one."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (InputError, OSError)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[2:] if argv is None else argv
    quiet_library_notices()
    method = next((name for name in methods() if ["--method", name] in (argv[i:i + 2] for i in range(len(argv)))
                   or f"--method={name}" in argv), None)
    asks_help = any(a in ("-h", "--help") or a.startswith("--print_config") for a in argv)
    named = any(a in ("-c", "--config", "--method") or a.startswith(("--config=", "--method=")) for a in argv)
    if not named and not asks_help:
        raise SystemExit(f"kept pretrain: give --method NAME, one of {', '.join(METHODS)} (or a --config that "
                         "names the model and data classes); `kept pretrain --help` describes them")
    if "--no-progress" in argv:
        quiet_progress()
    argv = alias_args(_method_args(argv), METHODS.get(method))
    saved, sys.argv = sys.argv, sys.argv[:1]  # the arguments are `argv`: LightningCLI must not also see ours
    try:
        cli = PretrainCLI(subclass_mode_model=True, subclass_mode_data=True, run=False, args=argv,
                          trainer_defaults={"accelerator": "auto", "precision": None,
                                            "default_root_dir": run_folder(method)},
                          parser_kwargs={"prog": "kept pretrain", "description": _description(), "formatter_class": _HelpFormatter,
                                         "default_env": False},
                          save_config_kwargs={"overwrite": True})
    except SystemExit as exc:
        if method is not None and any(a in ("-h", "--help") for a in argv) and not exc.code:
            print("\n" + method_help(METHODS[method]))
        raise
    except (ValueError, TypeError) as exc:  # jsonargparse wraps what a class raised while instantiated
        raise _input_error_in(exc) or exc from None
    finally:
        sys.argv = saved
    method = method or cli.config.get("method")  # a saved config.yaml records it
    check_checkpoint(cli.config.get("ckpt_path"))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"),
                    weights_only=True)  # a checkpoint someone sent cannot run code
    _print_run_folders(cli.trainer)
    if cli.config.get("export"):
        out = Path(cli.model.export_hf(cli.config["export"], cli.datamodule.tokenizer))
        finish_export(out, method, cli.model, cli.datamodule, cli.trainer)  # kept.json, vocab.txt, README.md, modes
        print(f"exported the model in Hugging Face format to {out}")
    return 0


def _print_run_folders(trainer) -> None:
    """Say where the run's checkpoints and logs went (``--trainer.default_root_dir`` decides)."""
    checkpoint = getattr(trainer, "checkpoint_callback", None)
    if checkpoint is not None and checkpoint.dirpath:
        latest = checkpoint.last_model_path or checkpoint.best_model_path
        print(f"checkpoints: {checkpoint.dirpath}" + (f" (resume: --ckpt_path {latest})" if latest else ""))
    if trainer.logger is not None and trainer.log_dir:
        print(f"logs and config.yaml: {trainer.log_dir}")
