"""Benchmarks of the entity linker (``kept.kg.linking.linker``): quality on LAMA T-REx, speed with >= 1M aliases.

Two parts:

quality
    A store is built from ALL LAMA T-REx facts (``../shared/data/lama/TREx/*.jsonl[.gz]``)
    with the recipe ``kg_data/recipes/make_trex_sample.py`` (every fact, every evidence):
    entity labels are the LAMA labels (``rdfs:label``) and, in the ``aliases`` store, the
    evidence surface forms that differ from the label are ``skos:altLabel`` aliases (at most
    ``--max-aliases`` per entity); the ``labels`` store has labels only. The evidence
    sentences (``[MASK]`` replaced by obj_surface) are linked. Gold mentions are the
    subject and object surfaces of each sentence (object: where ``[MASK]`` was; subject: its
    first occurrence not overlapping the object), grouped by sentence text: a sentence that
    is evidence for several facts has the union of their mentions, and a span that is gold
    for several entities accepts any of them.

    * recall = gold mentions (in the store) with a predicted mention of exactly the same
      character span and an acceptable entity / gold mentions whose surface form is a
      label or alias of some entity of the store (after the linker's normalisation:
      ``AliasIndex.has_name``);
    * precision = predicted mentions with exactly the span of an overlapping gold
      mention and one of its entities / predicted mentions that overlap a gold mention.

    Reported for the default configuration (with TransE coherence: vectors are trained on the
    ``aliases`` store for at most ``--transe-minutes``), ablations of the score and a threshold sweep.

speed
    A synthetic store with >= 1M names: the real T-REx labels plus generated multi-word
    names made of words of real labels (drawn by their frequency), a third of them with a
    one-word alias (their last word: highly ambiguous, like surnames), and edges drawn
    towards a few popular entities. Real English text (WikiText-2 valid + test) is linked;
    throughput is UTF-8 megabytes per CPU-second of this process (``time.process_time``), so
    other jobs on a shared machine slow it less than wall time. The baseline, measured in the
    same run on the first ``--baseline-chars`` characters, is a plain Python dictionary scan:
    look up every n-gram of word tokens up to the longest name (in tokens) in a dict of all
    names. Reported as a ratio, with candidate generation alone and with disambiguation.

Usage::

    .venv/bin/python bench/linking.py                        # both parts
    .venv/bin/python bench/linking.py --parts quality
    .venv/bin/python bench/linking.py --parts speed --workdir /tmp/kept-linking   # keep the stores

Figures go to ``bench/results/linking.json`` (a part not run keeps its previous entry) and a
Markdown summary is printed.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from kept.kg import open_store  # noqa: E402
from kept.kg.build import BuildOptions, build_store  # noqa: E402
from kept.kg.linking.disambiguation import DisambiguationConfig  # noqa: E402
from kept.kg.linking.linker import EntityLinker, LinkerConfig  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_OUT = BENCH / "results" / "linking.json"
GOALS = {"recall": 0.90, "precision": 0.85, "mb_per_cpu_s": 1.0}


def _recipe():
    spec = importlib.util.spec_from_file_location("make_trex_sample", ROOT / "kg_data" / "recipes" / "make_trex_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------
# quality
# --------------------------------------------------------------------------------------------
def trex_store(lama: Path, work: Path, max_aliases: int, per_relation: int = 0) -> tuple[Path, Path]:
    """(store dir, sentences.jsonl.gz) for all T-REx facts (or the first ``per_relation`` of each
    relation), built once per work dir."""
    name = f"trex_all_a{max_aliases}" if per_relation <= 0 else f"trex_{per_relation}_a{max_aliases}"
    data, store = work / name, work / f"{name}_store"
    if not (data / "sentences.jsonl.gz").exists():
        counts = _recipe().make_sample(lama, data, per_relation=per_relation if per_relation > 0 else 10**9,
                                       max_evidences=10**9, max_aliases=max_aliases)
        (data / "counts.json").write_text(json.dumps(counts, indent=2))
    if not (store / "meta.json").exists():
        build_store([(data / "trex_facts.nt.gz", None)], store, BuildOptions(progress=False, overwrite=True))
    return store, data / "sentences.jsonl.gz"


def gold_by_text(sentences: Path) -> dict[str, dict[tuple[int, int], set[str]]]:
    """sentence text -> {(start, end): acceptable entity keys}."""
    gold: dict[str, dict[tuple[int, int], set[str]]] = {}
    with gzip.open(sentences, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            spans = gold.setdefault(r["text"], {})
            spans.setdefault((r["sub_start"], r["sub_end"]), set()).add(r["sub_uri"])
            spans.setdefault((r["obj_start"], r["obj_end"]), set()).add(r["obj_uri"])
    return gold


def link_all(linker: EntityLinker, texts: list[str]) -> list[list[tuple[int, int, str, float]]]:
    """(start, end, entity key, score) of every predicted mention of every text."""
    out = []
    for spans, entity, score in linker.link_batch(texts):
        out.append([(s, e, linker.describe(x)[0], p) for (s, e), x, p in zip(spans.tolist(), entity.tolist(),
                                                                               score.tolist())])
    return out


def score_links(linker: EntityLinker, gold: dict, predicted: list, threshold: float = 0.0) -> dict:
    """Precision / recall as defined in the module docstring, plus the error kinds."""
    g_total = g_in_store = g_hit = p_overlap = p_correct = p_overlap_in = p_correct_in = 0
    wrong_entity = wrong_span = 0
    for (text, spans), preds in zip(gold.items(), predicted):
        preds = [p for p in preds if p[3] >= threshold]
        exact = {(s, e): key for s, e, key, _ in preds}
        in_store = {(s, e): linker.index.has_name(text[s:e]) for s, e in spans}
        for (s, e), keys in spans.items():
            g_total += 1
            if in_store[(s, e)]:
                g_in_store += 1
                g_hit += exact.get((s, e)) in keys
        for s, e, key, _ in preds:
            overlapping = [(gs, ge) for gs, ge in spans if gs < e and s < ge]
            if not overlapping:
                continue
            ok = (s, e) in spans and key in spans[(s, e)]
            p_overlap += 1
            p_correct += ok
            if any(in_store[g] for g in overlapping):
                p_overlap_in += 1
                p_correct_in += ok
            if (s, e) in spans:
                wrong_entity += not ok
            else:
                wrong_span += 1
    return {"gold_mentions": g_total, "gold_in_store": g_in_store, "coverage": round(g_in_store / g_total, 4),
            "recall": round(g_hit / max(g_in_store, 1), 4), "recall_all_gold": round(g_hit / g_total, 4),
            "predicted_overlapping_gold": p_overlap, "precision": round(p_correct / max(p_overlap, 1), 4),
            "precision_in_store_gold": round(p_correct_in / max(p_overlap_in, 1), 4),
            "errors_wrong_entity": wrong_entity, "errors_wrong_span": wrong_span}


def run_quality(args: argparse.Namespace, work: Path) -> dict:
    lama = args.data / "lama"
    result: dict = {"data": "all LAMA T-REx facts and evidences" if args.facts_per_relation <= 0 else
                    f"the first {args.facts_per_relation} LAMA T-REx facts of each relation, all evidences",
                    "stores": {}, "runs": {}}
    default = LinkerConfig()
    nothing = DisambiguationConfig(prior_weight=0, label_bonus=0, context_weight=0, coherence_weight=0)
    variants = {
        "default": default,
        "no coherence": replace(default, disambiguation=replace(default.disambiguation, vectors=None)),
        "prior + label": replace(default, disambiguation=replace(nothing, prior_weight=1.0, label_bonus=1.0)),
        "prior only": replace(default, disambiguation=replace(nothing, prior_weight=1.0)),
    }
    for store_name, max_aliases in (("aliases", args.max_aliases), ("labels", 0)):
        store_dir, sentences = trex_store(lama, work, max_aliases, args.facts_per_relation)
        store = open_store(store_dir)
        if store_name == "aliases" and args.transe_minutes > 0 and not (store_dir / "embeddings" / "transe").exists():
            from kept.cli import main as kept_main

            print(f"  training TransE on the {store_name} store ({args.transe_minutes} min at most)", flush=True)
            kept_main(["kg", "embed", str(store_dir), "--max-minutes", str(args.transe_minutes),
                       "--device", "cpu", "--no-progress"])
            store = open_store(store_dir)
        gold = gold_by_text(sentences)
        texts = list(gold)
        result["stores"][store_name] = {"max_aliases": max_aliases, **store.summary(), "sentences": len(texts),
                                        "transe": (store_dir / "embeddings" / "transe").exists(),
                                        "text_mb": round(sum(len(t.encode()) for t in texts) / 1e6, 2)}
        for name, config in variants.items():
            if store_name == "labels" and name != "default":
                continue
            linker = EntityLinker.from_store(store, config, cache=False)
            t0 = time.process_time()
            predicted = link_all(linker, texts)
            cpu = time.process_time() - t0
            run = score_links(linker, gold, predicted) | {"cpu_s": round(cpu, 2)}
            if name == "default":
                run["threshold_sweep"] = {str(t): {k: v for k, v in score_links(linker, gold, predicted, t).items()
                                                   if k in ("recall", "precision", "precision_in_store_gold")}
                                          for t in (0.3, 0.5, 0.7, 0.9)}
            result["runs"][f"{store_name} store, {name}"] = run
            print(f"  {store_name:8} {name:36} P={run['precision']:.4f} R={run['recall']:.4f} "
                  f"(coverage {run['coverage']:.3f}, {cpu:.1f} CPU s)", flush=True)
    return result


# --------------------------------------------------------------------------------------------
# speed
# --------------------------------------------------------------------------------------------
def synthetic_store(lama: Path, work: Path, n_generated: int, seed: int = 0) -> Path:
    """A store of the real T-REx facts plus ``n_generated`` generated entities (built once per work dir)."""
    out = work / f"synthetic_{n_generated}_store"
    if (out / "meta.json").exists():
        return out
    recipe = _recipe()
    labels: dict[str, str] = {}
    facts: list[tuple[str, str, str]] = []
    for path in recipe.relation_files(lama).values():
        with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")) as f:
            for line in f:
                d = json.loads(line)
                labels.setdefault(d["sub_uri"], d["sub_label"])
                labels.setdefault(d["obj_uri"], d["obj_label"])
                facts.append((d["sub_uri"], d["predicate_id"], d["obj_uri"]))
    words, counts = np.unique([w for label in labels.values() for w in label.split()], return_counts=True)
    rng = np.random.default_rng(seed)
    lengths = rng.choice([2, 3, 4], p=[0.5, 0.35, 0.15], size=n_generated)
    drawn = words[rng.choice(len(words), p=counts / counts.sum(), size=int(lengths.sum()))].tolist()
    real = list(labels)
    real_degree = np.unique([x for s, _, o in facts for x in (s, o)], return_counts=True)
    popular = dict(zip(*real_degree))
    weights = np.asarray([popular.get(q, 1) for q in real], dtype=np.float64)
    targets_real = rng.choice(len(real), p=weights / weights.sum(), size=n_generated)
    targets_gen = rng.integers(0, n_generated, size=n_generated)
    relations = sorted({p for _, p, _ in facts})
    rel_pick = rng.integers(0, len(relations), size=(n_generated, 2))
    lit, wd, wdt = recipe.nt_literal, recipe.WD, recipe.WDT
    label_p, alias_p = f"<{recipe.RDFS_LABEL}>", f"<{recipe.SKOS_ALT}>"
    nt = work / f"synthetic_{n_generated}.nt"
    with open(nt, "w", encoding="utf-8") as f:
        for s, p, o in facts:
            f.write(f"<{wd}{s}> <{wdt}{p}> <{wd}{o}> .\n")
        for q, label in labels.items():
            f.write(f"<{wd}{q}> {label_p} {lit(label)} .\n")
        at = 0
        for i in range(n_generated):
            name = drawn[at : at + lengths[i]]
            at += lengths[i]
            q = f"<{wd}Q{900_000_000 + i}>"
            f.write(f"{q} {label_p} {lit(' '.join(name))} .\n")
            if i % 3 == 0:
                f.write(f"{q} {alias_p} {lit(name[-1])} .\n")             # surname-like, very ambiguous
            if i % 5 == 0:
                f.write(f"{q} {alias_p} {lit(name[0] + ' ' + name[-1])} .\n")
            f.write(f"{q} <{wdt}{relations[rel_pick[i, 0]]}> <{wd}{real[targets_real[i]]}> .\n")
            f.write(f"{q} <{wdt}{relations[rel_pick[i, 1]]}> <{wd}Q{900_000_000 + targets_gen[i]}> .\n")
    build_store([(nt, None)], out, BuildOptions(progress=False, overwrite=True))
    nt.unlink()
    return out


_NGRAM_TOKEN = re.compile(r"\w+|[^\w\s]")


def ngram_dictionary(store) -> tuple[dict[str, int], int]:
    """The baseline's dictionary: lower-cased names as space-joined tokens -> a name id; and the
    longest name in tokens."""
    names: dict[str, int] = {}
    longest = 1
    for entity_id, name in store.iter_names():
        tokens = _NGRAM_TOKEN.findall(name.lower())
        if tokens:
            names.setdefault(" ".join(tokens), entity_id)
            longest = max(longest, len(tokens))
    return names, longest


def dictionary_scan(names: dict[str, int], max_tokens: int, text: str) -> int:
    """The plain Python baseline: look up every n-gram of tokens (n <= max_tokens); returns the hits."""
    tokens = _NGRAM_TOKEN.findall(text.lower())
    hits = 0
    for i in range(len(tokens)):
        for n in range(1, min(max_tokens, len(tokens) - i) + 1):
            if " ".join(tokens[i : i + n]) in names:
                hits += 1
    return hits


def wikitext_paragraphs(data: Path) -> list[str]:
    """Paragraphs (non-empty, non-heading lines) of WikiText-2 valid + test."""
    out = []
    for split in ("valid", "test"):
        with gzip.open(data / "corpus" / "en" / "wikitext-2" / f"{split}.txt.gz", "rt", encoding="utf-8") as f:
            out += [line.strip() for line in f if line.strip() and not line.lstrip().startswith("=")]
    return out


def _cpu(fn, *args):
    t0, w0 = time.process_time(), time.perf_counter()
    value = fn(*args)
    return value, time.process_time() - t0, time.perf_counter() - w0


def run_speed(args: argparse.Namespace, work: Path) -> dict:
    import resource

    built = not (work / f"synthetic_{args.synthetic_entities}_store" / "meta.json").exists()
    store_dir, build_cpu, _ = _cpu(synthetic_store, args.data / "lama", work, args.synthetic_entities)
    store = open_store(store_dir)
    (n_names,) = store.db.execute("SELECT (SELECT COUNT(*) FROM entities) + (SELECT COUNT(*) FROM aliases)").fetchone()
    linker, index_cpu, index_wall = _cpu(lambda: EntityLinker.from_store(store, rebuild=True))
    loaded, load_cpu, load_wall = _cpu(lambda: EntityLinker.from_store(store))
    cache = next((store.path / "linker").iterdir())
    paragraphs = wikitext_paragraphs(args.data)
    mb = sum(len(p.encode()) for p in paragraphs) / 1e6
    chunks, size = [[]], 0
    for p in paragraphs:                   # the linker's own batching: ~64k characters per call
        if size + len(p) > 1 << 16:
            chunks.append([])
            size = 0
        chunks[-1].append(p)
        size += len(p) + 1
    from kept.kg.linking.linker import select_leftmost_longest

    def candidates_only():
        return sum(len(select_leftmost_longest(*loaded.index.find("\x00".join(c)))[0]) for c in chunks)

    loaded.link_batch(paragraphs[:200])     # warm-up: tables, token powers
    n_cand, cand_cpu, cand_wall = _cpu(candidates_only)
    linked, link_cpu, link_wall = _cpu(loaded.link_batch, paragraphs)
    n_linked = sum(len(x[0]) for x in linked)
    n_ambiguous = sum(int((x[2] < 1).sum()) for x in linked)
    names, longest = ngram_dictionary(store)
    sample = []
    for p in paragraphs:
        if sum(map(len, sample)) >= args.baseline_chars:
            break
        sample.append(p)
    sample_mb = sum(len(p.encode()) for p in sample) / 1e6
    _, base_cpu, _ = _cpu(lambda: [dictionary_scan(names, longest, p) for p in sample])
    _, base6_cpu, _ = _cpu(lambda: [dictionary_scan(names, min(6, longest), p) for p in sample])
    result = {
        "store": {"entities": store.num_entities, "triples": store.num_triples, "names": n_names,
                  "keys": linker.index.num_keys, "candidates": len(linker.index.cand_entity),
                  "automaton": {w: a.get_stats()["nodes_count"] for w, a in linker.index.automata.items() if a},
                  "build_store_cpu_s": round(build_cpu, 1) if built else "built by an earlier run"},
        "index": {"build_cpu_s": round(index_cpu, 1), "build_wall_s": round(index_wall, 1), "load_cpu_s": round(load_cpu, 1), "load_wall_s": round(load_wall, 1),
                  "build_over_load": round(index_cpu / max(load_cpu, 1e-9), 1),
                  "cache_mb": round(sum(f.stat().st_size for f in cache.iterdir()) / 1e6, 1),
                  "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)},
        "text": {"source": "WikiText-2 valid + test paragraphs", "paragraphs": len(paragraphs), "mb": round(mb, 2),
                 "mentions": n_linked, "ambiguous_mentions": n_ambiguous, "candidate_spans": n_cand},
        "candidates_mb_per_cpu_s": round(mb / cand_cpu, 2),
        "link_mb_per_cpu_s": round(mb / link_cpu, 2),
        "link_mb_per_wall_s": round(mb / link_wall, 2),
        "baseline": {"sample_mb": round(sample_mb, 3), "longest_name_tokens": longest,
                     "dict_scan_mb_per_cpu_s": round(sample_mb / base_cpu, 4),
                     "dict_scan_6_tokens_mb_per_cpu_s": round(sample_mb / base6_cpu, 4)},
    }
    result["link_over_dict_scan"] = round(result["link_mb_per_cpu_s"] / result["baseline"]["dict_scan_mb_per_cpu_s"], 1)
    result["link_over_dict_scan_6_tokens"] = round(
        result["link_mb_per_cpu_s"] / result["baseline"]["dict_scan_6_tokens_mb_per_cpu_s"], 1)
    print(json.dumps(result, indent=2), flush=True)
    return result


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"shared data (default: {DEFAULT_DATA})")
    ap.add_argument("--parts", default="quality,speed", help="comma list of parts (default: quality,speed)")
    ap.add_argument("--workdir", type=Path, help="keep stores here between runs (default: a temp dir, removed)")
    ap.add_argument("--max-aliases", type=int, default=5, help="aliases per T-REx entity (default: 5)")
    ap.add_argument("--transe-minutes", type=float, default=4.0,
                    help="train TransE on the T-REx store for coherence, at most this long (0: no; default: 4)")
    ap.add_argument("--synthetic-entities", type=int, default=1_000_000,
                    help="generated entities of the speed store (default: 1000000)")
    ap.add_argument("--baseline-chars", type=int, default=200_000,
                    help="characters of text the dictionary-scan baseline runs on (default: 200000)")
    ap.add_argument("--facts-per-relation", type=int, default=0,
                    help="quality part: only the first N facts of each T-REx relation (default: 0, all)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke size (seconds): --facts-per-relation 30 --transe-minutes 0 "
                         "--synthetic-entities 5000 --baseline-chars 20000")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results JSON (default: {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    if args.quick:
        args.facts_per_relation, args.transe_minutes = args.facts_per_relation or 30, 0.0
        args.synthetic_entities, args.baseline_chars = min(args.synthetic_entities, 5000), min(args.baseline_chars, 20000)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kept-linking-"))
    work.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    try:
        if "quality" in parts:
            print("quality (LAMA T-REx):", flush=True)
            results["quality"] = run_quality(args, work)
        if "speed" in parts:
            print("speed (>= 1M names):", flush=True)
            results["speed"] = run_speed(args, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"] = {"python": platform.python_version(), "processor": platform.processor() or platform.machine()}
    results["goals"] = GOALS
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
