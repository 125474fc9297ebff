"""The ``kept`` command. Each feature area registers its own subcommands."""

from __future__ import annotations

import argparse
import sys

from kept import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kept", description="kept: knowledge-enhanced pretraining. KG stores from real dumps, TransE, "
                                 "entity linking, knowledge-injected BERT pretraining, cloze probing.")
    parser.add_argument("--version", action="version", version=f"kept {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from kept import demo
    from kept.data import cli as data_cli
    from kept.kg import cli as kg_cli
    from kept.kg import link_cli
    from kept.probe import cli as probe_cli
    from kept.train import finetune

    kg_cli.register(sub)
    link_cli.register(sub)
    data_cli.register(sub)
    sub.add_parser("pretrain", help="pretrain a model with one of the methods (LightningCLI; "
                                    "`kept pretrain --help`)", add_help=False)
    finetune.register(sub)
    probe_cli.register(sub)
    demo.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input, 130 when interrupted)."""
    from kept.kg.sources.errors import SourceError
    from kept.kg.store import StoreError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pretrain"]:  # LightningCLI parses its own arguments
        from kept.train.cli import main as pretrain_main

        return pretrain_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SourceError, StoreError, FileExistsError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"kept: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kept: interrupted; nothing was written at the output path", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
