"""``kept probe``: LAMA-style cloze probing of one or more models.

    kept probe --model runs/demo/models/mlm [--model DIR --name NAME ...] \\
        --data kg_data/trex/probe --out runs/probe [--store STORE] [--seen-store STORE] ...

Writes ``OUT/metrics.json`` (options and, per model and mode, metrics per relation,
macro and micro averages, seen/unseen splits), ``OUT/report.md`` (Markdown tables),
``OUT/<mode>.png`` (per-relation bars, models side by side; ``<mode>_seen.png`` for the
split) and ``OUT/predictions.jsonl`` (one line per query: rank and top prediction).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kept.flags import add_deprecated, add_device, add_no_progress, quiet_progress, resolve_device
from kept.methods import METHODS
from kept.probe.lama import ProbeDataError, load_probe_set, read_common_vocab
from kept.probe.probe import ProbeOptions, probe_relations


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``kept probe``."""
    p.add_argument("--model", action="append", required=True, metavar="DIR",
                   help="model directory (Hugging Face BERT or a kept export); repeat to compare models")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="display name of each --model, in order (default: the directory names)")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="LAMA-format directory: one <relation>.jsonl[.gz] per relation (e.g. kg_data/trex/probe, "
                        "../shared/data/lama/TREx)")
    p.add_argument("--relations-file", metavar="FILE",
                   help="templates (LAMA relations.jsonl; default: DATA/relations.jsonl or DATA/../relations.jsonl)")
    p.add_argument("--relation", action="append", metavar="ID",
                   help="relation(s) to probe, repeatable or comma-separated (default: all files in DATA)")
    p.add_argument("--max-facts", type=int, metavar="N", help="probe the first N facts of each relation")
    p.add_argument("--queries", choices=("template", "sentences"), default="template",
                   help="fill the relation's template (default) or use the facts' masked evidence sentences")
    p.add_argument("--max-sentences", type=int, default=1, metavar="N",
                   help="masked sentences per fact with --queries sentences, one query each (default 1)")
    p.add_argument("--mode", choices=("single", "multi", "both"), default=None,
                   help="single: LAMA single-wordpiece objects over the vocabulary; multi: all objects among the "
                        "relation's distinct objects; both (default; single with --protocol lama)")
    p.add_argument("--uhn", action="store_true",
                   help="LAMA-UHN: drop facts whose object label is a substring of the subject label (and, with "
                        "--uhn-model, those a BERT guesses from the subject's name alone)")
    p.add_argument("--uhn-model", metavar="DIR",
                   help="with --uhn: LAMA-UHN's person-name filter with this masked LM (LAMA-UHN used "
                        "bert-base-cased): P19/P20/P27/P103/P1412 facts whose object is in its top 3 for "
                        "'NAME is a common name in the following city/country/language : [MASK] .' go")
    p.add_argument("--protocol", choices=("kept", "lama"), default="kept",
                   help="kept (default): kept's ranks (ties against the gold) and options; lama: LAMA's own "
                        "T-REx evaluation to compare with published tables (single mode, distinct (subject, "
                        "object) facts, LAMA's common vocabulary from kg_data/lama unless --common-vocab, "
                        "LAMA's tie rule and MRR@1000; docs/probe.md)")
    p.add_argument("--common-vocab", metavar="FILE",
                   help="single mode: rank over these tokens only (one per line, LAMA common_vocab) and skip facts "
                        "whose object is not one of them")
    p.add_argument("--multi-scoring", choices=("masked", "pll"), default="masked",
                   help="multi mode: all pieces masked at once (default) or pseudo-log-likelihood (slower)")
    p.add_argument("--length-norm", choices=("mean", "sum"), default="mean",
                   help="multi mode: mean (default) or sum of a candidate's wordpiece log-probs")
    p.add_argument("--max-object-pieces", type=int, default=10, metavar="N",
                   help="multi mode: longest object in wordpieces (default 10)")
    p.add_argument("--filter-objects", action="store_true",
                   help="leave other true objects of the same subject out of the ranking")
    p.add_argument("--store", dest="kg", metavar="STORE",
                   help="KG store: subjects whose sub_uri is a key get their entity, the linker marks the rest; "
                        "knowledge methods (kbert, ernie-t) use it")
    add_deprecated(p, "--kg", "--store", dest="kg")
    p.add_argument("--no-link", action="store_true", help="with --store: mark subjects by sub_uri only, no linker")
    p.add_argument("--knowledge", choices=("full", "leave-one-out", "off"), default="full",
                   help="what models that read the KG at probe time (kbert, ernie-t) may use: full = the KG as "
                        "built (default), leave-one-out = the KG minus each probed triple (kbert), off = no KG, "
                        "the model alone; full and leave-one-out need --store")
    p.add_argument("--seen-store", dest="seen_kg", metavar="STORE",
                   help="split metrics by whether the fact's (sub_uri, relation, obj_uri) triple is in this store")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="word units and linker language (default en)")
    p.add_argument("--vocab", metavar="FILE", help="vocab.txt for models saved without their tokenizer")
    add_deprecated(p, "--seen-kg", "--seen-store", dest="seen_kg")
    add_device(p, lightning=False)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="plain BERT models: weights and activations (default float32)")
    p.add_argument("--quantize", action="store_true",
                   help="plain BERT models on CPU (--device auto then picks the CPU): int8 dynamic quantisation "
                        "of the Linear layers (~3x float32 speed, >200 queries/s for BERT-base on 2 cores; same top-1, ranks may move)")
    p.add_argument("--batch-size", type=int, default=128, help="queries per forward pass (default 128)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_no_progress(p)



def model_names(models: list[str], names: list[str] | None) -> list[str]:
    """Display names: the given ones, or the directory names made unique."""
    if names:
        if len(names) != len(models):
            raise ValueError(f"{len(names)} --name for {len(models)} --model; give one name per model")
        if len(set(names)) != len(names):
            raise ValueError(f"--name values must be different: {names}")
        return names
    out: list[str] = []
    for model in models:
        base = Path(model).resolve().name or "model"
        name, k = base, 2
        while name in out:
            name, k = f"{base}-{k}", k + 1
        out.append(name)
    return out


def _tokenizer(model_dir: Path, vocab: str | None):
    from kept.data.tokenizer import load_tokenizer

    if vocab is not None:
        return load_tokenizer(vocab)
    if not any((model_dir / f).exists() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise FileNotFoundError(f"{model_dir} has no tokenizer (tokenizer.json or vocab.txt); pass --vocab FILE")
    return load_tokenizer(model_dir)


def _modes(mode: str | None, protocol: str) -> tuple[str, ...]:
    """The ranking modes of ``--mode`` (default: both, or single under ``--protocol lama``)."""
    mode = mode or ("single" if protocol == "lama" else "both")
    return ("single", "multi") if mode == "both" else (mode,)


def check_knowledge(model_dirs: list[str], methods: list[str | None], knowledge: str, kg: str | None) -> None:
    """A ValueError when a model that reads the KG at probe time cannot have the ``knowledge`` condition:
    no ``--store`` (probing it without its store would silently be ``off``), or a condition it lacks."""
    for model_dir, name in zip(model_dirs, methods):
        method = METHODS.get(name) if name else None
        if method is None or not method.knowledge_at_probe:
            continue
        if knowledge not in method.knowledge_conditions:
            raise ValueError(f"{model_dir}: {name} supports --knowledge {' / '.join(method.knowledge_conditions)}, "
                             f"not {knowledge}")
        if knowledge != "off" and kg is None:
            raise ValueError(f"{model_dir} is a {name} model, which reads the KG at probe time: give --store STORE "
                             f"(or --knowledge off to probe the model alone)")


def run(args: argparse.Namespace) -> int:
    """Run ``kept probe`` from parsed arguments; returns the exit status (2 for bad input)."""
    from kept.kg.store import StoreError

    try:
        return _run(args)
    except (ProbeDataError, StoreError, FileNotFoundError, ValueError) as exc:
        print(f"kept: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from kept.kg.linking.linker import EntityLinker, LinkerConfig
    from kept.kg.store import open_store
    from kept.model_dir import check_model_dir
    from kept.probe.queries import QueryBuilder
    from kept.probe.report import markdown_report, plot_report
    from kept.probe.scorers import load_scorer, read_method

    # "auto": CUDA when available, else CPU (int8 --quantize runs on CPU only); metrics.json records the device
    args.device = "cpu" if args.quantize and args.device == "auto" else resolve_device(args.device)
    quiet_progress(args.no_progress)
    names = model_names(args.model, args.name)
    methods = [read_method(model_dir)[0] for model_dir in args.model]
    for model_dir, method in zip(args.model, methods):  # every model checked before anything is read or written
        check_model_dir(model_dir, hf_config=method not in METHODS or METHODS[method].hf_masked_lm)
    relations = [r for value in args.relation or [] for r in value.split(",") if r] or None
    options = ProbeOptions(queries=args.queries, max_facts=args.max_facts, max_sentences=args.max_sentences,
                           modes=_modes(args.mode, args.protocol),
                           common_vocab=read_common_vocab(args.common_vocab) if args.common_vocab else None,
                           multi_scoring=args.multi_scoring, length_norm=args.length_norm,
                           max_object_pieces=args.max_object_pieces, filter_objects=args.filter_objects,
                           progress=not args.no_progress, knowledge=args.knowledge, protocol=args.protocol)
    probe_set = load_probe_set(args.data, relations, args.relations_file)
    uhn_removed = None
    if args.uhn or args.uhn_model:
        from kept.probe.lama_protocol import uhn_filter

        name_scorer = load_scorer(args.uhn_model, device=args.device) if args.uhn_model else None
        probe_set, uhn_removed = uhn_filter(probe_set, name_scorer, getattr(name_scorer, "tokenizer", None))
    check_knowledge(args.model, methods, args.knowledge, args.kg)
    # "off": no store and no linker for the queries, so they carry no entity to inject
    store = open_store(args.kg) if args.kg and args.knowledge != "off" else None
    seen_store = open_store(args.seen_kg) if args.seen_kg else None
    linker = (EntityLinker.from_store(store, LinkerConfig(language=args.lang))
              if store is not None and not args.no_link else None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models: dict = {}
    with open(out / "predictions.jsonl", "w", encoding="utf-8") as predictions:
        for name, model_dir, method in zip(names, map(Path, args.model), methods):
            tokenizer = _tokenizer(model_dir, args.vocab)
            extra = {"dtype": args.dtype, "quantize": args.quantize, "batch_size": args.batch_size,
                     "tokenizer": tokenizer}
            scorer = load_scorer(model_dir, store=store, device=args.device, knowledge=args.knowledge, **extra)
            builder = QueryBuilder(getattr(scorer, "tokenizer", None) or tokenizer, store=store, link=False,
                                   lang=args.lang, linker=linker)
            start = time.perf_counter()
            metrics, records = probe_relations(scorer, builder, probe_set, options, seen_store, name=name)
            seconds = time.perf_counter() - start
            reads_kg = method in METHODS and METHODS[method].knowledge_at_probe
            models[name] = {"model_dir": str(model_dir), "method": method, "seconds": round(seconds, 3),
                            "knowledge": args.knowledge if reads_kg else "none", "modes": metrics}
            for record in records:
                predictions.write(json.dumps({"model": name, **record}, ensure_ascii=False) + "\n")
    config = {k: v for k, v in vars(args).items() if k != "func"}
    config["relations_probed"] = [r.relation for r, _ in probe_set]
    if uhn_removed is not None:
        config["uhn_removed"] = uhn_removed
    (out / "metrics.json").write_text(json.dumps({"config": config, "models": models}, indent=2,
                                                 ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown_report(models), encoding="utf-8")
    plots = plot_report(models, out)
    for name, info in models.items():
        for mode, m in info["modes"].items():
            macro = m["macro"]
            if macro["n"]:
                print(f"{name} {mode}: P@1 {100 * macro['p@1']:.1f}  P@10 {100 * macro['p@10']:.1f}  "
                      f"MRR {100 * macro['mrr']:.1f}  ({macro['n']} queries, {macro['relations']} relations)")
            else:
                print(f"{name} {mode}: no query could be probed (see 'skipped' in metrics.json)")
    print(f"wrote {out / 'metrics.json'}, {out / 'report.md'}, {', '.join(p.name for p in plots)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``kept probe`` as a standalone entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="kept probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
