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
from kept.methods import METHODS, get_method
from kept.progress import with_progress_bar
from kept.runtime import quiet_library_notices
from kept.train.export import finish_export


def methods() -> list[str]:
    """Names accepted by ``--method`` (the registry, :mod:`kept.methods`)."""
    return list(METHODS)


class PretrainCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="checkpoint to resume from (exactly, mid-epoch included)")
        parser.add_argument("--export", type=str | None, default=None,
                            help="after training, write the model in Hugging Face format to this directory")
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
    """Replace ``--method NAME`` by ``--config <the method's config>``."""
    out, i = [], 0
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
            out.extend(["--config", str(get_method(name).config)])
        except ValueError as exc:
            raise SystemExit(f"kept pretrain: {exc}") from None
    return out


class _HelpFormatter(RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the description's line breaks kept (the method list)."""


def _description() -> str:
    """The module docstring plus one line per registered method (``kept pretrain --help``)."""
    width = max(len(name) for name in METHODS)
    lines = [f"  {name:<{width}}  {m.description}" for name, m in METHODS.items()]
    return __doc__ + "\nMethods (--method NAME):\n" + "\n".join(lines) + "\n"


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
    argv = _method_args(argv)
    saved, sys.argv = sys.argv, sys.argv[:1]  # the arguments are `argv`: LightningCLI must not also see ours
    try:
        cli = PretrainCLI(subclass_mode_model=True, subclass_mode_data=True, run=False, args=argv,
                          trainer_defaults={"accelerator": "auto", "precision": None,
                                            "default_root_dir": run_folder(method)},
                          parser_kwargs={"prog": "kept pretrain", "description": _description(), "formatter_class": _HelpFormatter,
                                         "default_env": False},
                          save_config_kwargs={"overwrite": True})
    except (ValueError, TypeError) as exc:  # jsonargparse wraps what a class raised while instantiated
        raise _input_error_in(exc) or exc from None
    finally:
        sys.argv = saved
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
