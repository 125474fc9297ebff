"""``kept demo``: the end-to-end run on the shipped sample data (``kg_data/``).

Today it builds a KG store from every shipped sample and prints their summaries;
each later stage of the pipeline (TransE, linking, pretraining, probing) adds a
step here, so that one command shows the whole path working.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

#: (store name, input path relative to the data folder, build options)
SAMPLES: list[tuple[str, str, dict]] = [
    ("medical", "kbert/Medical.spo", {}),
    ("hownet", "kbert/HowNet.spo.gz", {}),
    ("wikidata", "wikidata/wikidata_latest-all_first50lines.json.gz", {"languages": ("en",)}),
    ("cndbpedia", "cndbpedia/baike_triples_sample.txt", {"languages": ("zh",)}),
    ("trex", "trex/trex_facts.nt.gz", {"languages": ("en",)}),
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the shipped sample data",
                       description="Run kept end to end on the shipped sample data: build the KG stores "
                                   "(later stages add TransE, linking, pretraining and probing).")
    p.add_argument("--data", type=Path, default=Path("kg_data"), help="shipped data folder (default: kg_data)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kept.kg.build import BuildOptions, build_store
    from kept.kg.sources import ReaderOptions

    stores = args.out / "stores"
    summaries = {}
    for name, rel, opts in SAMPLES:
        src = args.data / rel
        if not src.exists():
            raise FileNotFoundError(f"shipped sample {src} is missing; run from the repository root or pass --data")
        print(f"[kg build] {name}: {src}", flush=True)
        options = BuildOptions(reader=ReaderOptions(**opts), overwrite=True)
        report = build_store([(src, None)], stores / name, options)
        c = report.meta["counts"]
        summaries[name] = {"entities": c["entities"], "relations": c["relations"], "triples": c["triples"],
                           "aliases": c["aliases"], "attributes": c["attributes"], "seconds": round(report.seconds, 2)}
    print()
    header = f"{'store':<10} {'entities':>9} {'relations':>9} {'triples':>9} {'aliases':>8} {'attributes':>10} {'s':>6}"
    print(header)
    print("-" * len(header))
    for name, s in summaries.items():
        print(f"{name:<10} {s['entities']:>9,} {s['relations']:>9,} {s['triples']:>9,} {s['aliases']:>8,} "
              f"{s['attributes']:>10,} {s['seconds']:>6}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    print(f"\nstores in {stores}/ ; summary in {args.out / 'summary.json'} ({time.strftime('%H:%M:%S')})")
    return 0
