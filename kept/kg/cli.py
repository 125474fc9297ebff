"""``kept kg ...``: build, inspect and export KG stores."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kept.flags import add_no_progress
from kept.kg.sources import FORMATS
from kept.kg.transe.cli import register_embed


def _csv(value: str) -> tuple[str, ...]:
    """Comma-separated list, or @FILE with one item per line."""
    if value.startswith("@"):
        lines = Path(value[1:]).read_text(encoding="utf-8").splitlines()
        return tuple(x.strip() for x in lines if x.strip())
    return tuple(x.strip() for x in value.split(",") if x.strip())


def register(sub: argparse._SubParsersAction) -> None:
    kg = sub.add_parser("kg", help="build, inspect and export KG stores",
                        description="Build a KG store from dumps, inspect it, export it.")
    kg_sub = kg.add_subparsers(dest="kg_command", required=True, metavar="COMMAND")

    b = kg_sub.add_parser(
        "build", help="build a KG store from one or more dumps",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build a KG store (a directory) from dumps, streaming and in bounded memory.\n\n"
                    "Formats: " + ", ".join(FORMATS) + ".\n"
                    "The format is guessed from the file name (.json[.gz|.bz2] wikidata-json, .nt ntriples,\n"
                    ".ttl turtle, .rdf/.owl/.xml rdfxml, .spo spo, *baike_triples* cndbpedia, a directory\n"
                    "with entity2id.txt openke). The store is written to a temporary directory and renamed\n"
                    "into place only when complete.",
        epilog="example: kept kg build latest-all.json.gz --out stores/wikidata --lang en --ranks truthy")
    b.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="dump files (or an OpenKE directory)")
    b.add_argument("--out", "-o", required=True, type=Path, help="store directory to create")
    b.add_argument("--format", "-f", choices=sorted(FORMATS), help="format of every input (default: guessed)")
    b.add_argument("--lang", type=_csv, default=("en",),
                   help="label languages, most preferred first, comma-separated (default: en)")
    b.add_argument("--ranks", choices=["non-deprecated", "truthy", "all"], default="non-deprecated",
                   help="Wikidata statement ranks to keep (default: non-deprecated)")
    b.add_argument("--properties", type=_csv, default=None,
                   help="keep only triples with these relation keys (comma-separated or @file)")
    b.add_argument("--edge-predicates", type=_csv, default=None,
                   help="CN-DBpedia predicates whose objects become entity edges (default: objects that are "
                        "one <a> link)")
    b.add_argument("--ntriples-engine", choices=["fast", "rdflib"], default="fast",
                   help="N-Triples parser: fast line-oriented path or rdflib (reference) (default: fast)")
    b.add_argument("--min-degree", type=int, default=0, help="drop entities in fewer triples (default: 0)")
    b.add_argument("--max-entities", type=int, default=None, help="keep the N entities of highest degree")
    b.add_argument("--drop-unlabelled", action="store_true", help="drop entities that have no label")
    b.add_argument("--max-bad-lines", type=int, default=0,
                   help="skip up to N malformed lines, reporting them (default: 0, the first is an error)")
    b.add_argument("--chunk-triples", type=int, default=1 << 22,
                   help="triples held in memory before spilling to disk (default: 4194304)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing store once the new one is built")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_no_progress(b)
    b.set_defaults(func=_build)

    i = kg_sub.add_parser("info", help="print a store's summary", description="Print a store's counts and sources.")
    i.add_argument("store", type=Path)
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=_info)

    e = kg_sub.add_parser("export", help="export a store (or the k-hop subgraph of some entities) as N-Triples",
                          description="Export triples and labels as N-Triples through rdflib.")
    e.add_argument("store", type=Path)
    e.add_argument("--out", "-o", required=True, type=Path, help="output .nt file")
    e.add_argument("--around", type=_csv, default=None, help="entity keys: export only their k-hop subgraph")
    e.add_argument("--hops", type=int, default=1, help="k for --around (default: 1)")
    e.set_defaults(func=_export)
    register_embed(kg_sub)


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if key == "sources":
            value = "; ".join(f"{s['path']} ({s['format']})" for s in value)
        elif key == "splits":
            value = ", ".join(f"{k} {v:,}" for k, v in value.items()) or "none"
        elif isinstance(value, int):
            value = f"{value:,}"
        print(f"{key:<{width}}  {value}")


def _build(args: argparse.Namespace) -> int:
    from kept.kg.build import BuildOptions, build_store
    from kept.kg.sources import ReaderOptions

    reader = ReaderOptions(
        languages=args.lang, ranks=args.ranks,
        properties=frozenset(args.properties) if args.properties else None,
        edge_predicates=frozenset(args.edge_predicates) if args.edge_predicates else None,
        ntriples_engine=args.ntriples_engine)
    options = BuildOptions(reader=reader, min_degree=args.min_degree, max_entities=args.max_entities,
                           drop_unlabelled=args.drop_unlabelled, max_bad_lines=args.max_bad_lines,
                           chunk_triples=args.chunk_triples, overwrite=args.overwrite,
                           progress=not args.no_progress)
    report = build_store([(p, args.format) for p in args.inputs], args.out, options)
    for example in report.bad_line_examples:
        print(f"skipped: {example}", file=sys.stderr)
    summary = {"path": str(report.path), **report.meta["counts"], "seconds": round(report.seconds, 2)}
    _print_summary(summary, args.json)
    return 0


def _info(args: argparse.Namespace) -> int:
    from kept.kg.graph import describe
    from kept.kg.store import open_store

    store = open_store(args.store, validate=True)
    summary, graph = store.summary(), describe(store)
    if args.json:
        print(json.dumps({**summary, **graph}, indent=2, ensure_ascii=False))
        return 0
    _print_summary(summary, False)
    d = graph["degree"]
    print(f"\ndegree (in + out)  mean {d['mean']}, median {d['median']:g}, max {d['max']:,}, "
          f"isolated entities {d['isolated']:,}")
    if graph["relations"]:
        print(f"\n{'relation':<40} {'triples':>10}")
        for r in graph["relations"]:
            name = r["key"] if r["label"] in (None, r["key"]) else f"{r['key']} ({r['label']})"
            print(f"{name[:40]:<40} {r['triples']:>10,}")
    if graph["top_entities"]:
        print(f"\n{'best-connected entities':<40} {'degree':>10}")
        for e in graph["top_entities"]:
            name = e["key"] if e["label"] in (None, e["key"]) else f"{e['key']} ({e['label']})"
            print(f"{name[:40]:<40} {e['degree']:>10,}")
    return 0


def resolve_entity(store, name: str) -> int:
    """The entity a user named: its key, else its one label or alias; a KeyError that says what the store
    has instead ("did you mean": up to 5 keys or labels containing the name) otherwise."""
    try:
        return store.entity_id(name)
    except KeyError:
        pass
    ids = store.lookup(name)
    if len(ids) == 1:
        return ids[0]
    if len(ids) > 1:
        keys = ", ".join(store.entity_key(i) for i in ids[:5])
        raise KeyError(f"{store.path}: {name!r} names {len(ids)} entities ({keys}{', ...' if len(ids) > 5 else ''}); "
                       f"give one key")
    like = f"%{name.replace('%', '').replace('_', '')}%"
    rows = store.db.execute("SELECT key, label FROM entities WHERE key LIKE ? OR label LIKE ? ORDER BY length(key) "
                            "LIMIT 5", (like, like)).fetchall()
    hint = "; did you mean " + ", ".join(key if label in (None, key) else f"{key} ({label})" for key, label in rows) + \
        "?" if rows else ""
    raise KeyError(f"{store.path}: no entity with key {name!r} (nor with that label or alias){hint}")


def _export(args: argparse.Namespace) -> int:
    from kept.kg.graph import export_ntriples, k_hop_triples
    from kept.kg.store import open_store

    store = open_store(args.store)
    rows = None
    if args.around:
        rows = k_hop_triples(store, [resolve_entity(store, k) for k in args.around], args.hops)
    n = export_ntriples(store, args.out, rows)
    with open(args.out, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    print(f"wrote {n:,} triples between entities and {lines - n:,} lines of names (labels, aliases, descriptions, "
          f"attributes) to {args.out}")
    return 0
