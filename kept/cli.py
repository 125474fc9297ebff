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


def report_error(exc: BaseException) -> int:
    """Print ``kept: error: <path>: <problem>`` for a bad input and return 2."""
    if isinstance(exc, KeyError) and exc.args:
        msg = exc.args[0]
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        msg = f"{exc.filename}: {exc.strerror}"
    else:
        msg = exc
    print(f"kept: error: {msg}", file=sys.stderr)
    return 2


def quiet_broken_pipe() -> int:
    """stdout's reader went away (``kept kg info S | head -1``): stop quietly, like coreutils do."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def run_guarded(func, *args) -> int:
    """Run a command's body with the error funnel: bad input is one line and exit 2, never a traceback."""
    from kept.errors import InputError
    from kept.kg.sources.errors import SourceError

    try:
        status = func(*args)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        return quiet_broken_pipe()
    except (InputError, SourceError, OSError, KeyError) as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        print("kept: interrupted; nothing was written at the output path", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input, 130 when interrupted)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pretrain"]:  # LightningCLI parses its own arguments
        from kept.train.cli import main as pretrain_main

        return run_guarded(pretrain_main, argv[1:])
    if argv[:1] == ["finetune"]:
        from kept.train.finetune import main as finetune_main

        return run_guarded(finetune_main, argv[1:])
    if argv[:1] == ["probe"]:
        from kept.probe.cli import main as probe_main

        return run_guarded(probe_main, argv[1:])
    args = build_parser().parse_args(argv)
    return run_guarded(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
