"""``kept data build``: raw text -> a linked corpus (tokens, word/phrase units, entity links)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kept.flags import add_no_progress, quiet_progress


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build linked corpora for pretraining",
                          description="Prepare pretraining data.")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    b = data_sub.add_parser(
        "build", help="tokenise, segment and entity-link a text corpus",
        description="Build a linked corpus (the input of `kept pretrain`) from a text file: .txt (one text "
                    "per line), .jsonl (a text field) or .tsv (a text/text_a column), optionally compressed. "
                    "Runs in worker processes; a second build with the same inputs reuses the first.")
    b.add_argument("input", type=Path, help="text corpus")
    b.add_argument("--out", "-o", type=Path, required=True, help="linked corpus directory to write")
    b.add_argument("--vocab", type=Path, required=True, help="BERT vocab.txt (e.g. kg_data/vocab/...)")
    b.add_argument("--store", type=Path, default=None, help="KG store to link entities against (default: none)")
    b.add_argument("--lang", choices=["en", "zh"], default="en", help="language (default: en)")
    b.add_argument("--field", default=None, help="JSONL field / TSV column of the text")
    b.add_argument("--phrases", default="learn",
                   help="'learn' (NPMI collocations of this corpus, default), 'none', or a phrase table JSON")
    b.add_argument("--min-phrase-count", type=int, default=5, help="least count of a learned phrase (default 5)")
    b.add_argument("--max-tokens", type=int, default=510, help="wordpieces kept per text (default 510)")
    b.add_argument("--threshold", type=float, default=0.0, help="lowest entity-link score kept (default 0)")
    b.add_argument("--jieba-boundaries", action="store_true", help="Chinese: link only on jieba word boundaries")
    b.add_argument("--overwrite", action="store_true",
                   help="replace an existing linked corpus at --out (never another folder)")
    b.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores; 0: none)")
    add_no_progress(b)
    b.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from kept.data.build import CorpusOptions, build_linked_corpus

    quiet_progress(args.no_progress)
    options = CorpusOptions(lang=args.lang, max_tokens=args.max_tokens,
                            phrases=None if args.phrases == "none" else args.phrases,
                            min_phrase_count=args.min_phrase_count, text_field=args.field,
                            link_threshold=args.threshold, jieba_boundaries=args.jieba_boundaries)
    corpus = build_linked_corpus(args.input, args.out, args.vocab, args.store, options, workers=args.workers,
                                 progress=not args.no_progress, overwrite=args.overwrite)
    m = corpus.meta
    print(f"{args.out}: {m['examples']:,} texts, {m['tokens']:,} tokens, {m['entities']:,} linked mentions")
    return 0
