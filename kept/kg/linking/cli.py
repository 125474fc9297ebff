"""``kept link --store STORE``: link entity mentions in texts to a KG store.

The work is done by :mod:`kept.kg.linking.linker` (imported only when the command runs, so
``kept --help`` stays fast). The alias index is cached in ``STORE/linker/<hash>/``
the first time and loaded from there afterwards.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from kept.errors import InputError
from kept.flags import add_no_progress, quiet_progress, warn_deprecated
from kept.kg.outputs import OutputError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``kept link`` to the top-level subcommands."""
    p = sub.add_parser(
        "link", help="link entity mentions in text to a KG store",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Find mentions of the store's entities (labels and aliases, longest match) and pick one\n"
                    "entity per mention (alias prior, context, TransE coherence). Input: plain text, one text\n"
                    "per line, or JSONL with a text field (--field); output: JSONL, one line per input line,\n"
                    "with a \"mentions\" list (start, end, surface, entity_id, key, label, score; character\n"
                    "offsets). The alias index is cached in STORE/linker/ after the first run.",
        epilog="examples:\n"
               "  kept link --store stores/trex --input sentences.txt --out linked.jsonl\n"
               "  kept kg build kg_data/kbert/HowNet.spo.gz --out stores/hownet\n"
               "  kept link --store stores/hownet --lang zh --jieba-boundaries --text '我喜欢吃苹果蛋糕，也喜欢喝苹果酒'")
    p.add_argument("--store", type=Path, default=None, help="KG store directory (required)")
    # before the one vocabulary of flags (README, "Flags used by every command"): `kept link STORE`
    p.add_argument("old_store", nargs="?", type=Path, default=None, metavar="STORE", help=argparse.SUPPRESS)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", "-i", type=Path, help="text file (one text per line) or .jsonl[.gz]")
    source.add_argument("--text", help="link this text and print the result as JSON")
    p.add_argument("--out", "-o", type=Path, help="output JSONL (required with --input)")
    p.add_argument("--format", choices=["auto", "text", "jsonl"], default="auto",
                   help="input format (default: auto: jsonl for *.jsonl[.gz]/*.json, else text)")
    p.add_argument("--field", default="text", help="JSONL field holding the text (default: text)")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="language: stop words (default: en)")
    p.add_argument("--case", choices=["auto", "insensitive", "sensitive"], default="auto",
                   help="case folding: auto = insensitive except all-caps acronyms of <= 4 characters "
                        "(default: auto)")
    p.add_argument("--jieba-boundaries", action="store_true",
                   help="accept a match only on jieba word boundaries (Chinese)")
    p.add_argument("--threshold", type=float, default=0.0, help="lowest score of a kept mention (default: 0.0)")
    p.add_argument("--min-alias-chars", type=int, default=2, help="shortest name linked (default: 2)")
    p.add_argument("--keep-numeric", action="store_true", help="also link names without letters (e.g. 1984)")
    p.add_argument("--no-coherence", action="store_true", help="do not use the store's TransE vectors")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cached index")
    p.add_argument("--rebuild-index", action="store_true", help="rebuild the cached index")
    p.add_argument("--batch-size", type=int, default=256, help="texts linked together (default: 256)")
    add_no_progress(p)
    p.set_defaults(func=_link)


def _store_arg(args: argparse.Namespace) -> Path:
    """``--store``, or the deprecated positional ``kept link STORE`` (with a notice); an InputError (exit 2)
    when neither or both are given."""
    if args.old_store is not None:
        if args.store is not None:
            raise InputError("give the store once, as --store STORE")
        warn_deprecated("kept link STORE", "kept link --store STORE")
        return args.old_store
    if args.store is None:
        raise InputError("kept link: the following arguments are required: --store STORE")
    return args.store


def _config(args: argparse.Namespace):
    from kept.kg.linking.disambiguation import DisambiguationConfig
    from kept.kg.linking.linker import LinkerConfig

    return LinkerConfig(language=args.lang, case=args.case, min_alias_chars=args.min_alias_chars,
                        keep_numeric=args.keep_numeric, jieba_boundaries=args.jieba_boundaries,
                        threshold=args.threshold,
                        disambiguation=DisambiguationConfig(vectors=None if args.no_coherence else "transe"))


def _records(path: Path, fmt: str, field: str, on_bytes) -> Iterator[dict]:
    """Input records as dicts with the text under ``field``; ``on_bytes(position)`` reports progress."""
    from kept.kg.sources.errors import SourceError

    name = path.name.removesuffix(".gz")
    jsonl = fmt == "jsonl" or (fmt == "auto" and name.endswith((".jsonl", ".json")))
    with open(path, "rb") as raw:
        stream = gzip.open(raw) if path.suffix == ".gz" else raw
        for number, line in enumerate(stream, 1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SourceError(path, number, f"invalid UTF-8 ({exc.reason})") from None
            if jsonl:
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise SourceError(path, number, f"invalid JSON ({exc.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get(field), str):
                    raise SourceError(path, number, f"no string field {field!r} (choose one with --field)")
            else:
                record = {field: text.rstrip("\r\n")}
            yield record
            on_bytes(raw.tell())


def _link(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from kept.kg.linking.linker import EntityLinker
    from kept.kg.store import open_store

    store_path = _store_arg(args)
    quiet_progress(args.no_progress)
    if args.input is not None and args.out is None:
        print("kept link: error: --out is required with --input", file=sys.stderr)
        return 2
    if args.input is not None and not args.input.exists():
        raise FileNotFoundError(f"{args.input}: no such file")
    tmp = _output_temp(Path(args.out), args.input) if args.input is not None else None
    try:
        store = open_store(store_path)
        linker = EntityLinker.from_store(store, _config(args), cache=not args.no_cache, rebuild=args.rebuild_index,
                                         progress=not args.no_progress)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    if args.text is not None:
        mentions = [m.to_dict() for m in linker.link(args.text)]
        print(json.dumps({"text": args.text, "mentions": mentions}, ensure_ascii=False, indent=2))
        return 0

    start = time.perf_counter()
    bar = tqdm(total=args.input.stat().st_size, unit="B", unit_scale=True, desc="linking",
               disable=args.no_progress or None)
    n_texts = n_mentions = n_chars = 0

    def progress(position: int) -> None:
        bar.n = position
        if n_texts % 1000 == 0:
            bar.refresh()

    out = Path(args.out)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            batch: list[dict] = []
            records = _records(args.input, args.format, args.field, progress)
            for record in _with_end(records):
                if record is not None:
                    batch.append(record)
                if batch and (record is None or len(batch) >= args.batch_size):
                    texts = [r[args.field] for r in batch]
                    for r, text, mentions in zip(batch, texts, linker.link_many(texts, len(texts))):
                        r["mentions"] = [m.to_dict() for m in mentions]
                        f.write(json.dumps(r, ensure_ascii=False) + "\n")
                        n_texts += 1
                        n_mentions += len(mentions)
                        n_chars += len(text)
                    batch = []
        try:
            os.replace(tmp, out)
        except OSError as exc:
            raise OutputError(out, f"cannot write the output: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    print(f"linked {n_texts:,} texts ({n_chars:,} characters): {n_mentions:,} mentions in {seconds:.1f} s; "
          f"wrote {out}", file=sys.stderr)
    return 0


def _output_temp(out: Path, source: Path) -> Path:
    """The temp file beside ``out`` (created empty), after checking ``out`` can be written and is
    neither a directory nor the input; :raises OutputError: naming the path otherwise."""
    if out.is_dir():
        raise OutputError(out, "is a directory; --out names the JSONL file to write")
    if out.exists() and out.resolve() == source.resolve():
        raise OutputError(out, "is the input; choose another output path")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(exc.filename or out.parent,
                          f"cannot create the output's folder: {exc.strerror or exc}") from None
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.touch()
    except OSError as exc:
        raise OutputError(out.parent, f"cannot write here: {exc.strerror or exc}") from None
    return tmp


def _with_end(items: Iterator[dict]) -> Iterator[dict | None]:
    yield from items
    yield None
