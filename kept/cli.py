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
    from kept.kg.linking import cli as link_cli

    kg_cli.register(sub)
    link_cli.register(sub)
    data_cli.register(sub)
    # these three parse their own arguments (and import torch only when they run): `kept NAME --help`
    sub.add_parser("pretrain", help="pretrain a model with one of the methods (LightningCLI; "
                                    "`kept pretrain --help`)", add_help=False)
    sub.add_parser("finetune", help="fine-tune a BERT sentence classifier, with or without K-BERT knowledge "
                                    "(`kept finetune --help`)", add_help=False)
    sub.add_parser("probe", help="LAMA-style cloze probing: P@1, P@10, MRR per relation, report and plots "
                                 "(`kept probe --help`)", add_help=False)
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
    if argv[:1] == ["finetune"]:
        from kept.train.finetune import main as finetune_main

        return finetune_main(argv[1:])
    if argv[:1] == ["probe"]:
        from kept.probe.cli import main as probe_main

        return probe_main(argv[1:])
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
