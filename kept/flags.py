"""One vocabulary of flags for every ``kept`` command.

Each concept that several commands share has one flag name (:data:`VOCABULARY`; the README's
table "Flags used by every command" is :func:`flags_table`, kept equal by a test). Spellings used
before stay for one release as deprecated aliases: they still work and print one line to stderr
naming the new flag (:func:`add_deprecated`, and :func:`rewrite_args` for ``kept pretrain``, whose
LightningCLI parser reads dotted keys).

This module imports nothing heavy: commands call it while parsing, before torch is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: the devices ``--device`` accepts in commands that train with Lightning (an accelerator name)
LIGHTNING_DEVICES = ("auto", "cpu", "cuda", "gpu", "mps")


@dataclass(frozen=True)
class Flag:
    """One shared concept: its flag, what it means, where it is taken, and the spellings it replaced."""

    concept: str
    flag: str
    meaning: str
    commands: str
    old: str = ""


VOCABULARY: tuple[Flag, ...] = (
    Flag("KG store", "--store STORE",
         "the KG store directory the command reads (`kept kg build --out` makes one)",
         "`link`, `data build`, `pretrain` (kbert, ernie-t, uktp), `finetune`, `probe` "
         "(`--seen-store` for the seen/unseen split); `kept kg info/export/embed STORE` take it first",
         "`kept link STORE`, `--kg` (probe, finetune), `--seen-kg` (probe), `--model.entity_store` (ernie-t)"),
    Flag("language", "--lang LANG",
         "`en` or `zh`, the language of the text: tokenisation, word units, linker stop words "
         "(`kg build`: label languages, a comma list)",
         "`kg build`, `link`, `data build`, `pretrain` (kbert), `finetune`, `probe`", ""),
    Flag("device", "--device auto",
         "where models run: `auto` = CUDA when available, else CPU; `cpu`, `cuda` (probe also `cuda:N`)",
         "`kg embed`, `pretrain`, `finetune`, `probe` (all default `auto`)",
         "`--accelerator` (kg embed, finetune)"),
    Flag("workers", "--workers N",
         "worker processes: corpus linking (`data build`, `demo`: default all cores) or DataLoader workers "
         "(`pretrain`, `finetune`: default 0)",
         "`data build`, `demo`, `pretrain`, `finetune`",
         "`--num-workers` (finetune)"),
    Flag("progress", "--no-progress",
         "no progress bars: kept's, Lightning's and Hugging Face's",
         "`kg build`, `kg embed`, `link`, `data build`, `pretrain`, `finetune`, `probe`, `demo`", ""),
    Flag("entities kept", "--max-entities N",
         "keep the N entities of highest degree", "`kg build`", ""),
    Flag("branches per word", "--max-branches N",
         "K-BERT: (relation, object) branches injected per linked word at most (default 2)",
         "`pretrain` (kbert), `finetune`",
         "`--max-entities` (finetune)"),
)

_warned: set[str] = set()


def warn_deprecated(old: str, new: str) -> None:
    """Print ``kept: OLD is deprecated; use NEW`` to stderr (once per process for each OLD)."""
    if old not in _warned:
        _warned.add(old)
        print(f"kept: {old} is deprecated; use {new} (same meaning)", file=sys.stderr)


class _Deprecated(argparse.Action):
    """An alias that stores (or sets True, with ``nargs=0``) into the new flag's ``dest`` and warns."""

    def __init__(self, option_strings, dest, new: str = "", const=None, nargs=None, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, nargs=nargs, const=const, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn_deprecated(option_string, self.new)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_deprecated(parser: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, new: str, dest: str,
                   type: Callable | None = None, flag: bool = False, choices: Sequence | None = None) -> None:
    """Add ``old`` as a hidden, deprecated spelling of ``new`` storing into ``dest``.

    type / choices: as the new flag's. flag: True for an on/off switch (no value; stores True).
    """
    if flag:
        parser.add_argument(old, dest=dest, action=_Deprecated, new=new, nargs=0, const=True, help=argparse.SUPPRESS)
    else:
        parser.add_argument(old, dest=dest, action=_Deprecated, new=new, type=type, choices=choices,
                            help=argparse.SUPPRESS)


def add_device(parser: argparse.ArgumentParser | argparse._ArgumentGroup, lightning: bool = True,
               dest: str = "device") -> None:
    """``--device`` (default ``auto``). lightning: the command trains with Lightning (accelerator names,
    :data:`LIGHTNING_DEVICES`); otherwise any torch device string (``cpu``, ``cuda``, ``cuda:1``)."""
    if lightning:
        parser.add_argument("--device", dest=dest, default="auto", choices=LIGHTNING_DEVICES,
                            help="auto (default: CUDA when available, else CPU), cpu, cuda")
    else:
        parser.add_argument("--device", dest=dest, default="auto",
                            help="auto (default: CUDA when available, else CPU), cpu, cuda, cuda:N")


def add_no_progress(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--no-progress``: no progress bars (kept's, Lightning's, Hugging Face's)."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (kept's, Lightning's and Hugging Face's)")


def resolve_device(device: str = "auto") -> str:
    """The torch device for ``device``: ``auto`` (the default) is ``cuda`` when a GPU is usable, else ``cpu``;
    anything else is returned unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def quiet_progress(quiet: bool = True) -> None:
    """With ``quiet`` (default True), silence Hugging Face's progress bars ("Loading weights", downloads) for
    this process: before ``transformers`` is imported through ``HF_HUB_DISABLE_PROGRESS_BARS``, after it
    through its logging switch. Does nothing when ``quiet`` is False."""
    if not quiet:
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def rewrite_args(argv: list[str], aliases: dict[str, str | Callable[[str | None], list[str]]],
                 switches: Sequence[str] = (), deprecated: dict[str, str] | None = None) -> list[str]:
    """``argv`` with each alias replaced by its target, for parsers that cannot take aliases themselves.

    aliases: flag -> the flag it stands for (``--store`` -> ``--data.init_args.store``; value kept, as
    ``--flag VALUE`` or ``--flag=VALUE``), or a function of the value returning the replacement
    arguments. switches: the flags among them that take no value (the function gets None).
    deprecated: old flag -> the flag to use instead, for the aliases that print a deprecation notice.
    Everything after ``--`` is kept as it is.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        name, eq, inline = arg.partition("=")
        if name not in aliases:
            out.append(arg)
            i += 1
            continue
        target = aliases[name]
        if name in switches:
            value, i = None, i + 1
        elif eq:
            value, i = inline, i + 1
        elif i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        else:
            raise SystemExit(f"kept: {name} needs a value")
        if deprecated and name in deprecated:
            warn_deprecated(name, deprecated[name])
        out.extend(target(value) if callable(target) else [target, value])
    return out


def flags_table() -> str:
    """The Markdown table of :data:`VOCABULARY` (README.md, "Flags used by every command")."""
    rows = ["| concept | flag | meaning | commands | old spelling (still works, prints a notice) |",
            "|---|---|---|---|---|"]
    for f in VOCABULARY:
        rows.append(f"| {f.concept} | `{f.flag}` | {f.meaning} | {f.commands} | {f.old or '—'} |")
    return "\n".join(rows)
