"""Benchmarks of the KG store build (``kept.kg.build.build_store``) on data made from real dumps.

Three parts, each reported as RATIOS of timings taken in the same run (so a busy,
shared machine slows both sides alike) or as memory figures, never as absolute
timing goals:

a. Wikidata JSON: build throughput over the throughput of only decompressing and
   reading the same ``.json.gz`` (goal: ratio >= 0.5). The input is ~3,000 full
   Wikidata items made by re-keying the 49 real items of the shared sample. Also
   timed, to show where the reader's time goes: the entity lines held in memory,
   only parsed by simdjson, and parsed and walked into records.
b. N-Triples: the fast line-oriented parser over rdflib's streaming N-Triples
   parser on the same file (goal: >= 10x), plus a check that both engines give
   the same records. The file is made by ``bench/ntriples_data.py`` from a
   re-keyed copy of the Wikidata sample.
c. Peak memory of Wikidata builds at two sizes (100k and 1M items; ``--quick``:
   20k and 200k) and at the smaller size with ~5x the claims per item, each build
   in its own spawned process; reports bytes of peak RSS per entity and the
   fitted growth (RSS difference / entity difference).

Usage::

    .venv/bin/python bench/kg_build.py                 # all parts, full sizes
    .venv/bin/python bench/kg_build.py --quick         # smaller part c (20k / 200k items)
    .venv/bin/python bench/kg_build.py --parts a,b     # only some parts

Figures go to ``bench/results/kg_build.json`` (parts not run keep their previous
entry) and a Markdown table is printed. Work files go to a temporary directory
(or ``--workdir``) that is removed at the end.
"""

from __future__ import annotations

import argparse
import copy
import gc
import gzip
import importlib.metadata
import json
import multiprocessing
import os
import platform
import re
import resource
import shutil
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(BENCH))  # ntriples_data

import simdjson  # noqa: E402

from kept.kg.build import BuildOptions, build_store  # noqa: E402
from kept.kg.sources import ReadContext, ReaderOptions, read, wikidata  # noqa: E402
from kept.kg.sources.inputs import InputFile  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE = Path("dumps") / "wikidata_latest-all_first50lines.json.gz"
DEFAULT_OUT = BENCH / "results" / "kg_build.json"
QID_BASE = 10_000_000  # re-keyed items are Q10000000, Q10000001, ... (9 characters, like most real QIDs)
GOALS = {"a": 0.5, "b": 10.0}
MB = 1 << 20


# --------------------------------------------------------------------------------------------
# Re-keyed Wikidata dumps
# --------------------------------------------------------------------------------------------


def load_sample(path: Path) -> list[dict]:
    """The items of the real Wikidata JSON sample (one entity per line)."""
    items = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip().rstrip(",")
            if line and line not in ("[", "]"):
                items.append(json.loads(line))
    return items


def shrink_item(item: dict, languages=("en", "de", "fr"), max_properties: int = 16,
                max_statements: int = 2) -> dict:
    """A smaller copy of an item for the memory part: labels/descriptions/aliases in a few
    languages and the first ``max_properties`` properties with at most ``max_statements``
    statements each, main snaks only (no qualifiers, references or sitelinks)."""
    out = {"type": item["type"], "id": item["id"]}
    for field in ("labels", "descriptions", "aliases"):
        out[field] = {lg: v for lg, v in item.get(field, {}).items() if lg in languages}
    out["claims"] = {
        pid: [{k: st[k] for k in ("mainsnak", "type", "id", "rank") if k in st} for st in statements[:max_statements]]
        for pid, statements in list(item.get("claims", {}).items())[:max_properties]
    }
    return out


def multiply_claims(item: dict, factor: int) -> dict:
    """Each statement repeated ``factor`` times; copy c of an item-valued statement points at
    ``<target>/c`` (re-keyed later to a different item), so it gives a distinct triple."""
    out = copy.deepcopy(item)
    for pid, statements in out["claims"].items():
        grown = []
        for c in range(factor):
            for st in statements:
                st = copy.deepcopy(st)
                st["id"] = f"{st.get('id', item['id'])}-{c}"
                value = st["mainsnak"].get("datavalue", {}).get("value")
                if c and isinstance(value, dict) and value.get("entity-type") == "item" and "id" in value:
                    value["id"] = f"{value['id']}/{c}"
                grown.append(st)
        out["claims"][pid] = grown
    return out


_MARK = re.compile(r'"@@N(\d+)@@"|@@T(\d+)@@|@@ID@@')


class ItemTemplate:
    """One real item as a ``str.format`` template whose own QID (``{0}``) and item-valued
    targets (``{1}``, ``{2}``, ...) are filled in per copy.

    Re-keyed: the item's ``id``, its statement ids (``Q22$...``) and every
    ``{"entity-type": "item", ...}`` value in main snaks, qualifiers and references
    (``id`` and ``numeric-id``). All other content is kept as is, serialized like the
    Wikidata dumps (compact, non-ASCII escaped).
    """

    def __init__(self, item: dict):
        item = copy.deepcopy(item)
        self.targets: list[str] = []  # original target QIDs, in slot order
        slots: dict[str, int] = {}

        def walk(node):
            if isinstance(node, dict):
                if node.get("entity-type") == "item" and ("id" in node or "numeric-id" in node):
                    orig = node.get("id") or f"Q{node['numeric-id']}"
                    k = slots.get(orig)
                    if k is None:
                        k = slots[orig] = len(self.targets)
                        self.targets.append(orig)
                    if "id" in node:
                        node["id"] = f"@@T{k}@@"
                    if "numeric-id" in node:
                        node["numeric-id"] = f"@@N{k}@@"
                    return
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(item.get("claims", {}))
        item["id"] = "@@ID@@"
        for statements in item.get("claims", {}).values():
            for st in statements:
                if "$" in st.get("id", ""):
                    st["id"] = "@@ID@@" + st["id"][st["id"].index("$"):]
        text = json.dumps(item, separators=(",", ":")).replace("{", "{{").replace("}", "}}")

        def field(m: re.Match) -> str:
            if m.group(1) is not None:
                return f"{{{int(m.group(1)) + 1}}}"
            if m.group(2) is not None:
                return f"Q{{{int(m.group(2)) + 1}}}"
            return "Q{0}"

        self.format = _MARK.sub(field, text).format
        self.offsets = [zlib.crc32(t.encode()) for t in self.targets]

    def render(self, i: int, n: int) -> str:
        """Copy ``i`` of ``n``: QID ``QID_BASE + i``; each original target ``t`` becomes item
        ``(i + 1 + crc32(t) % (n - 1)) % n`` -- never the item itself, a different one per
        copy, so the re-keyed items form one connected graph."""
        span = max(n - 1, 1)
        return self.format(QID_BASE + i, *[QID_BASE + (i + 1 + off % span) % n for off in self.offsets])


def write_rekeyed_dump(templates: list[ItemTemplate], n: int, path: Path, level: int) -> dict:
    """Write ``n`` re-keyed items (copy i from template i % len(templates)) as a Wikidata JSON
    dump (``[``, one item per line with a trailing comma, ``]``), gzip ``level``, streaming."""
    start = time.perf_counter()
    raw_bytes = 0
    with gzip.open(path, "wb", compresslevel=level) as f:
        f.write(b"[\n")
        batch: list[str] = []
        for i in range(n):
            batch.append(templates[i % len(templates)].render(i, n))
            if len(batch) == 2000 or i == n - 1:
                data = (",\n".join(batch) + (",\n" if i < n - 1 else "\n")).encode()
                raw_bytes += len(data)
                f.write(data)
                batch.clear()
        f.write(b"]\n")
    return {"items": n, "json_bytes": raw_bytes + 4, "gz_bytes": path.stat().st_size, "gzip_level": level,
            "seconds": round(time.perf_counter() - start, 2)}


# --------------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best_of(cases: dict[str, tuple[Callable[[], object], Callable[[], None] | None]], repeat: int) -> dict:
    """Time each case ``repeat`` times, interleaved (case1, case2, ..., case1, ...) so load from
    other jobs hits all cases alike; the best wall time counts. A case is ``(run, cleanup)``;
    ``cleanup`` runs after each timing, untimed. CPU time counts this process and the
    helper processes it waited for (kept decompresses in one)."""
    out = {name: {"runs_s": [], "cpu_s": []} for name in cases}
    for _ in range(repeat):
        for name, (run, cleanup) in cases.items():
            gc.collect()
            t0, c0 = time.perf_counter(), cpu_seconds()
            run()
            t1, c1 = time.perf_counter(), cpu_seconds()
            out[name]["runs_s"].append(round(t1 - t0, 4))
            out[name]["cpu_s"].append(round(c1 - c0, 4))
            if cleanup is not None:
                cleanup()
    for r in out.values():
        r["best_s"] = min(r["runs_s"])
    return out


def drain(it: Iterator) -> int:
    n = 0
    for _ in it:
        n += 1
    return n


def flat(records: Iterator) -> Iterator:
    """Records one by one (readers may yield a list of records per source line)."""
    for item in records:
        if type(item) is list:
            yield from item
        else:
            yield item


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------------------------
# Part a: Wikidata JSON build throughput vs decompress-and-read
# --------------------------------------------------------------------------------------------


def part_a(sample: list[dict], work: Path, items: int, repeat: int) -> dict:
    templates = [ItemTemplate(it) for it in sample]
    path = work / "wikidata-a.json.gz"
    dump = write_rekeyed_dump(templates, items, path, level=6)
    print(f"[a] {items} re-keyed full items: {dump['json_bytes'] / MB:.0f} MB JSON, "
          f"{dump['gz_bytes'] / MB:.1f} MB gz", file=sys.stderr)
    stores = work / "stores-a"
    stores.mkdir()
    counter = iter(range(10**9))
    meta = {}

    def gzip_lines():
        with gzip.open(path, "rb") as f:
            for _line in f:
                pass

    def inputfile_lines():
        with InputFile(path) as f:
            for _line in f.lines():
                pass

    def reader():
        drain(read(path, "wikidata-json", ReadContext()))

    def build():
        report = build_store([(path, "wikidata-json")], stores / f"s{next(counter)}", BuildOptions(progress=False))
        meta.update(report.meta["counts"])

    def clean():
        for p in stores.iterdir():
            shutil.rmtree(p)

    # Where the reader's own time goes (not part of the goal): the entity lines held in
    # memory (no decompression), only parsed by simdjson, then parsed and walked into records.
    with gzip.open(path, "rb") as f:
        entity_lines = [s for s in (line.strip(b" \t\r\n,") for line in f) if len(s) > 4]
    parser = simdjson.Parser()
    opts = ReaderOptions()
    sites = tuple(lang + "wiki" for lang in opts.languages)

    def parse_in_memory():
        for s in entity_lines:
            doc = parser.parse(s)
            del doc  # (the parser is reused: no proxy may outlive its line)

    def records_in_memory():
        for s in entity_lines:
            wikidata._line_records(parser, s, opts.languages, sites, opts.properties, opts.ranks)

    la = load()
    t = best_of({"gzip_lines": (gzip_lines, None), "inputfile_lines": (inputfile_lines, None),
                 "reader": (reader, None), "build": (build, clean),
                 "parse_in_memory": (parse_in_memory, None), "records_in_memory": (records_in_memory, None)}, repeat)
    entity_lines.clear()
    raw = dump["json_bytes"]
    for r in t.values():
        r["mb_per_s"] = round(raw / MB / r["best_s"], 1)
        r["items_per_s"] = round(items / r["best_s"])
    ref = t["gzip_lines"]["best_s"]
    return {
        "input": dump, "timings": t, "load_before": la, "load_after": load(),
        "reader_engine": f"pysimdjson {importlib.metadata.version('pysimdjson')} "
                         f"(simdjson implementation: {parser.implementation[0]})",
        "store_counts": {k: meta[k] for k in ("entities", "relations", "triples", "aliases", "attributes")},
        "ratio_build": round(ref / t["build"]["best_s"], 3),
        "ratio_reader": round(ref / t["reader"]["best_s"], 3),
        "ratio_build_vs_inputfile": round(t["inputfile_lines"]["best_s"] / t["build"]["best_s"], 3),
        # CPU time including kept's decompression process: less sensitive to load
        "ratio_build_cpu": round(min(t["gzip_lines"]["cpu_s"]) / min(t["build"]["cpu_s"]), 3),
        "goal": GOALS["a"],
        "met": ref / t["build"]["best_s"] >= GOALS["a"],
    }


# --------------------------------------------------------------------------------------------
# Part b: fast N-Triples path vs rdflib's streaming N-Triples parser
# --------------------------------------------------------------------------------------------


def _without_bnodes(records) -> set:
    return {r for r in records if not any(isinstance(x, str) and x.startswith("_:") for x in r)}


def part_b(sample: list[dict], work: Path, copies: int, repeat: int, items: int = 0) -> dict:
    from ntriples_data import wikidata_json_to_ntriples

    from kept.kg.sources.ntriples import ntriples_lines, parse_ntriples_line
    from kept.kg.sources.rdf import iter_fast_ntriples, iter_rdflib_ntriples, read_ntriples

    json_path = work / "wikidata-b.json.gz"
    n_items = items or copies * len(sample)
    write_rekeyed_dump([ItemTemplate(it) for it in sample], n_items, json_path, level=6)
    path = work / "wikidata-b.nt"
    lines = wikidata_json_to_ntriples(json_path, path)
    print(f"[b] N-Triples from {n_items} re-keyed items: {lines} lines, {path.stat().st_size / MB:.0f} MB",
          file=sys.stderr)
    fast = ReaderOptions(ntriples_engine="fast")
    slow = ReaderOptions(ntriples_engine="rdflib")

    def bare_parser():
        ctx = ReadContext()
        with InputFile(path) as f:
            for line in ntriples_lines(f, ctx):
                parse_ntriples_line(line)

    # Same records from both engines (bnodes aside: both keep labels, so they should match anyway).
    rec_fast = list(flat(read_ntriples(path, ReadContext(options=fast))))
    rec_slow = list(flat(read_ntriples(path, ReadContext(options=slow))))
    set_fast, set_slow = set(rec_fast), set(rec_slow)
    same = _without_bnodes(set_fast) == _without_bnodes(set_slow)
    check = {"records_fast": len(rec_fast), "records_rdflib": len(rec_slow), "distinct_fast": len(set_fast),
             "distinct_rdflib": len(set_slow), "same_records_without_bnodes": same,
             "same_records_with_bnodes": set_fast == set_slow,
             "only_fast": len(set_fast - set_slow), "only_rdflib": len(set_slow - set_fast)}
    del rec_fast, rec_slow, set_fast, set_slow
    assert same, f"the N-Triples engines disagree: {check}"

    stores = work / "stores-b"
    stores.mkdir()
    counter = iter(range(10**9))
    counts = {}

    def build(options):
        def run():
            report = build_store([(path, "ntriples")], stores / f"s{next(counter)}",
                                 BuildOptions(reader=options, progress=False))
            counts.update(report.meta["counts"])
        return run

    def clean():
        for p in stores.iterdir():
            shutil.rmtree(p)

    la = load()
    t = best_of({
        "rdflib_terms": (lambda: drain(iter_rdflib_ntriples(path, ReadContext())), None),
        "fast_terms": (lambda: drain(iter_fast_ntriples(path, ReadContext())), None),
        "bare_parse_ntriples_line": (bare_parser, None),
        "read_ntriples_rdflib": (lambda: drain(read_ntriples(path, ReadContext(options=slow))), None),
        "read_ntriples_fast": (lambda: drain(read_ntriples(path, ReadContext(options=fast))), None),
        "build_rdflib": (build(slow), clean),
        "build_fast": (build(fast), clean),
    }, repeat)
    for r in t.values():
        r["lines_per_s"] = round(lines / r["best_s"])
    rd = t["rdflib_terms"]["best_s"]
    ratios = {
        # what the brief asks: rdflib's streaming parser over the fast reader / the bare parser loop
        "rdflib_terms/read_ntriples_fast": round(rd / t["read_ntriples_fast"]["best_s"], 2),
        "rdflib_terms/bare_parse_ntriples_line": round(rd / t["bare_parse_ntriples_line"]["best_s"], 2),
        # like for like
        "rdflib_terms/fast_terms": round(rd / t["fast_terms"]["best_s"], 2),
        "read_ntriples: rdflib/fast": round(t["read_ntriples_rdflib"]["best_s"] / t["read_ntriples_fast"]["best_s"], 2),
        "build: rdflib/fast": round(t["build_rdflib"]["best_s"] / t["build_fast"]["best_s"], 2),
    }
    return {
        "input": {"json_items": n_items, "lines": lines, "bytes": path.stat().st_size},
        "equivalence": check, "timings": t, "ratios": ratios, "load_before": la, "load_after": load(),
        "store_counts": {k: counts[k] for k in ("entities", "relations", "triples", "aliases", "attributes")},
        "goal": GOALS["b"],
        "met": ratios["rdflib_terms/read_ntriples_fast"] >= GOALS["b"],
    }


# --------------------------------------------------------------------------------------------
# Part c: peak memory of Wikidata builds, one spawned process per build
# --------------------------------------------------------------------------------------------


def _status() -> dict[str, int]:
    """``VmHWM``, ``VmRSS``, ``RssAnon`` and ``RssFile`` of this process in bytes (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) * 1024
    return out


class _AnonSampler(threading.Thread):
    """Samples ``RssAnon`` every few ms: the peak of anonymous memory (heap, NumPy arrays),
    which VmHWM mixes with file-backed pages (the memory-mapped store arrays being written,
    which the kernel can drop)."""

    def __init__(self, interval: float = 0.005):
        super().__init__(daemon=True)
        self.interval, self.peak, self.phase_peak = interval, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def sample(self) -> int:
        anon = _status()["RssAnon"]
        self.peak = max(self.peak, anon)
        self.phase_peak = max(self.phase_peak, anon)
        return anon

    def take_phase_peak(self) -> int:
        """Peak since the previous call (the phase that just ended)."""
        peak, self.phase_peak = max(self.phase_peak, self.sample()), 0
        return peak


def _child_build(path: str, out: str, queue) -> None:
    """Build ``path`` into ``out`` in this (fresh) process; put counts, seconds and memory on
    ``queue``: the peak RSS (VmHWM of this process's address space; ``ru_maxrss`` would also
    count the parent's peak, as spawn starts the child with vfork+exec), the sampled peak of
    anonymous memory, and both at the end of each phase. Phases are observed by wrapping
    ``kept.kg.store_writer`` functions (kept itself is not changed)."""
    try:
        import resource

        from kept.kg import store_writer

        sampler = _AnonSampler()
        phases: dict[str, dict] = {}

        def mark(name: str, **extra) -> None:
            st = _status()
            phases[name] = {"peak_rss": st["VmHWM"], "rss": st["VmRSS"], "rss_anon": st["RssAnon"],
                            "rss_file": st["RssFile"], "peak_anon_in_phase": sampler.take_phase_peak(),
                            "seconds": round(time.perf_counter() - t0, 2), **extra}

        def wrap(fn, before, after):
            def wrapped(*args, **kwargs):
                if before:
                    mark(before, **({"entities_in_dict": len(args[1].entity_ids), "spill_chunks": len(args[1].chunks)}
                                    if before == "ingest" else {}))
                result = fn(*args, **kwargs)
                if after:
                    mark(after)
                return result
            return wrapped

        # phase names: the phase that ENDS at the mark
        store_writer.write_store = wrap(store_writer.write_store, "ingest", "write_names")
        store_writer._sort_dedup = wrap(store_writer._sort_dedup, None, "sort_dedup")
        store_writer._write_names = wrap(store_writer._write_names, "remap_csr", None)
        t0 = time.perf_counter()
        sampler.start()
        mark("start")
        report = build_store([(path, "wikidata-json")], out, BuildOptions(progress=False))
        seconds = time.perf_counter() - t0
        sampler.done.set()
        sampler.join()
        queue.put({"seconds": round(seconds, 2), "counts": report.meta["counts"], "peak_rss": _status()["VmHWM"],
                   "peak_anon": sampler.peak,
                   "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "phases": phases})
    except BaseException as exc:  # report, never hang the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def measure_build(path: Path, out: Path) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_build, args=(str(path), str(out), queue))
    proc.start()
    result = queue.get()
    proc.join()
    if "error" in result:
        raise RuntimeError(f"build of {path} failed in the child: {result['error']}")
    shutil.rmtree(out, ignore_errors=True)
    return result


def part_c(sample: list[dict], work: Path, sizes: tuple[int, int], claims_factor: int) -> dict:
    """Points: SMALL and LARGE items; SMALL items with ``claims_factor`` x the claims; SMALL items
    with LARGE/SMALL x the claims, i.e. about as many triples as the LARGE point but 1/10 of its
    entities, so that pair isolates the cost of entities at an equal number of triples."""
    small, large = sizes
    matched = max(2, round(large / small))
    shrunk = [shrink_item(it) for it in sample]
    plain = [ItemTemplate(it) for it in shrunk]
    points = [("small", f"{small:,} items", small, 1), ("large", f"{large:,} items", large, 1),
              ("dense", f"{small:,} items, {claims_factor}x claims", small, claims_factor)]
    if matched != claims_factor:
        points.append(("matched", f"{small:,} items, {matched}x claims", small, matched))

    # Baseline: a build of the 49-item sample (interpreter, imports, SQLite, NumPy).
    baseline = measure_build(DATA / SAMPLE, work / "store-baseline")
    results = {}
    for key, label, n, factor in points:
        templates = plain if factor == 1 else [ItemTemplate(multiply_claims(it, factor)) for it in shrunk]
        path = work / f"wikidata-c-{n}-{factor}.json.gz"
        la = load()
        dump = write_rekeyed_dump(templates, n, path, level=1)
        print(f"[c] {label}: {dump['json_bytes'] / MB:.0f} MB JSON written in {dump['seconds']:.0f} s; building",
              file=sys.stderr)
        r = measure_build(path, work / "store-c")
        path.unlink()
        counts = r["counts"]
        results[key] = {
            "label": label, "items": n, "claims_factor": factor, "input": dump,
            "entities": counts["entities"], "triples": counts["triples"], "triples_read": counts["triples_read"],
            "seconds": r["seconds"], "peak_rss": r["peak_rss"], "peak_anon": r["peak_anon"],
            "ru_maxrss": r["ru_maxrss"],
            "peak_rss_per_entity": round(r["peak_rss"] / counts["entities"], 1),
            "above_baseline_per_entity": round((r["peak_rss"] - baseline["peak_rss"]) / counts["entities"], 1),
            "phases": r["phases"], "load_before": la, "load_after": load(),
        }
        print(f"[c] {label}: {counts['entities']:,} entities, {counts['triples']:,} triples, "
              f"peak RSS {r['peak_rss'] / MB:.0f} MB (anonymous {r['peak_anon'] / MB:.0f} MB), {r['seconds']:.0f} s",
              file=sys.stderr)

    def slope(x: str, y: str, measure: str = "peak_rss") -> float:
        return round((results[y][measure] - results[x][measure]) / (results[y]["entities"] - results[x]["entities"]), 1)

    s, d = results["small"], results["dense"]
    out = {
        "sizes": list(sizes), "claims_factor": claims_factor,
        "item_shape": "labels/descriptions/aliases in en, de, fr; first 16 properties, <= 2 statements each, "
                      "main snaks only (no qualifiers, references, sitelinks)",
        "chunk_triples": BuildOptions().chunk_triples,
        "baseline": {"what": "build of the 49-item real sample", "peak_rss": baseline["peak_rss"],
                     "peak_anon": baseline["peak_anon"], "seconds": baseline["seconds"]},
        "points": list(results.values()),
        # what the brief asks: between the two plain sizes (triples grow with the entities here)
        "fitted_bytes_per_entity": slope("small", "large"),
        "fitted_anon_bytes_per_entity": slope("small", "large", "peak_anon"),
        "dense_vs_small": {
            "triples_ratio": round(d["triples"] / s["triples"], 2),
            "peak_rss_ratio": round(d["peak_rss"] / s["peak_rss"], 3),
            "peak_rss_difference": d["peak_rss"] - s["peak_rss"],
        },
    }
    if "matched" in results:
        m = results["matched"]
        out["matched_vs_large"] = {
            "triples_ratio": round(results["large"]["triples"] / m["triples"], 3),
            "bytes_per_entity": slope("matched", "large"),
            "anon_bytes_per_entity": slope("matched", "large", "peak_anon"),
        }
        out["dense_vs_matched"] = {
            "triples_ratio": round(m["triples"] / d["triples"], 2),
            "peak_rss_ratio": round(m["peak_rss"] / d["peak_rss"], 3),
        }
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _s(x: float) -> str:
    return f"{x:.2f} s"


def markdown(results: dict) -> str:
    rows = ["| part | measure | value | goal | met |", "|---|---|---|---|---|"]
    a = results["parts"].get("a")
    if a:
        t, inp = a["timings"], a["input"]
        rows += [
            f"| a | input: {inp['items']:,} re-keyed full Wikidata items | {inp['json_bytes'] / MB:.0f} MB JSON, "
            f"{inp['gz_bytes'] / MB:.1f} MB gz (level 6) | | |",
            f"| a | reference: `for line in gzip.open(path, 'rb')` | {_s(t['gzip_lines']['best_s'])} "
            f"({t['gzip_lines']['mb_per_s']} MB/s) | | |",
            f"| a | `InputFile(path).lines()` | {_s(t['inputfile_lines']['best_s'])} | | |",
            f"| a | reader only (`read(path, 'wikidata-json')`) | {_s(t['reader']['best_s'])} "
            f"({t['reader']['items_per_s']:,} items/s) | | |",
            f"| a | full `build_store` | {_s(t['build']['best_s'])} ({t['build']['items_per_s']:,} items/s) | | |",
            f"| a | **build throughput / read throughput** | **{a['ratio_build']:.2f}** | >= {a['goal']} | "
            f"{'yes' if a['met'] else 'no'} |",
            f"| a | reader throughput / read throughput | {a['ratio_reader']:.2f} | | |",
            f"| a | build / read in CPU time (best of 3; kept's decompression process counted) | "
            f"{min(t['gzip_lines']['cpu_s']) / min(t['build']['cpu_s']):.2f} | | |",
        ]
        if "records_in_memory" in t:  # (runs before the reader breakdown was measured lack these)
            rows += [
                f"| a | reader's own work, lines in memory: simdjson parse only ({a['reader_engine']}) | "
                f"{_s(t['parse_in_memory']['best_s'])} ({t['parse_in_memory']['mb_per_s']} MB/s) | | |",
                f"| a | reader's own work, lines in memory: parse + walk into records | "
                f"{_s(t['records_in_memory']['best_s'])} ({t['records_in_memory']['mb_per_s']} MB/s) | | |",
            ]
    b = results["parts"].get("b")
    if b:
        t, r = b["timings"], b["ratios"]
        rows += [
            f"| b | input: N-Triples from {b['input']['json_items']} re-keyed items | {b['input']['lines']:,} lines, "
            f"{b['input']['bytes'] / MB:.0f} MB | | |",
        ]
        for name in ("rdflib_terms", "fast_terms", "bare_parse_ntriples_line", "read_ntriples_rdflib",
                     "read_ntriples_fast", "build_rdflib", "build_fast"):
            rows.append(f"| b | {name} | {_s(t[name]['best_s'])} ({t[name]['lines_per_s']:,} lines/s) | | |")
        rows.append(f"| b | **rdflib streaming parser / fast `read_ntriples`** | "
                    f"**{r['rdflib_terms/read_ntriples_fast']:.1f}x** | >= {b['goal']:.0f}x | "
                    f"{'yes' if b['met'] else 'no'} |")
        for key in ("rdflib_terms/bare_parse_ntriples_line", "rdflib_terms/fast_terms", "read_ntriples: rdflib/fast",
                    "build: rdflib/fast"):
            rows.append(f"| b | {key} | {r[key]:.1f}x | | |")
        eq = b["equivalence"]
        rows.append(f"| b | same records from both engines | {eq['same_records_without_bnodes']} "
                    f"({eq['distinct_fast']:,} distinct records) | True | "
                    f"{'yes' if eq['same_records_without_bnodes'] else 'no'} |")
    c = results["parts"].get("c")
    if c:
        rows.append(f"| c | baseline (49-item build) peak RSS | {c['baseline']['peak_rss'] / MB:.0f} MB | | |")
        for p in c["points"]:
            rows.append(
                f"| c | {p['label']} ({p['input']['json_bytes'] / MB:,.0f} MB JSON) | {p['entities']:,} entities, "
                f"{p['triples']:,} triples, {p['seconds']:.0f} s; peak RSS {p['peak_rss'] / MB:.0f} MB "
                f"({p['peak_rss_per_entity']:,.0f} B/entity), peak anonymous {p['peak_anon'] / MB:.0f} MB | | |")
        rows.append(f"| c | **fitted growth {c['sizes'][0]:,} -> {c['sizes'][1]:,} items: peak RSS difference / "
                    f"entity difference** | **{c['fitted_bytes_per_entity']:,.0f} B/entity** "
                    f"(anonymous: {c['fitted_anon_bytes_per_entity']:,.0f}) | | |")
        if "matched_vs_large" in c:
            mv = c["matched_vs_large"]
            rows.append(f"| c | **same triples ({mv['triples_ratio']:.2f}x), 10x entities: peak RSS difference / "
                        f"entity difference** | **{mv['bytes_per_entity']:,.0f} B/entity** "
                        f"(anonymous: {mv['anon_bytes_per_entity']:,.0f}) | | |")
        dv = c["dense_vs_small"]
        rows.append(f"| c | {c['claims_factor']}x claims vs 1x, same entities: triples ratio / peak RSS ratio | "
                    f"{dv['triples_ratio']:.2f}x / {dv['peak_rss_ratio']:.2f}x | | |")
        if "dense_vs_matched" in c:
            dm = c["dense_vs_matched"]
            rows.append(f"| c | more claims again, same entities: triples ratio / peak RSS ratio | "
                        f"{dm['triples_ratio']:.2f}x / {dm['peak_rss_ratio']:.2f}x | | |")
    return "\n".join(rows)


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "processor": platform.processor() or platform.machine()}


def main(argv: list[str] | None = None) -> int:
    global DATA
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Parts: a = Wikidata JSON build vs decompress-and-read; b = fast N-Triples "
                                        "vs rdflib; c = peak memory per entity of Wikidata builds.")
    ap.add_argument("--parts", default="a,b,c", help="comma-separated parts to run (default: a,b,c)")
    ap.add_argument("--quick", action="store_true", help="part c at 20k and 200k items instead of 100k and 1M")
    ap.add_argument("--sizes", default=None, help="part c sizes SMALL,LARGE in items (overrides --quick)")
    ap.add_argument("--claims-factor", type=int, default=5, help="part c: claims multiplier of the third point")
    ap.add_argument("--items-a", type=int, default=3000, help="part a: re-keyed full items (default: 3000)")
    ap.add_argument("--copies-b", type=int, default=3,
                    help="part b: copies of the 49-item sample converted to N-Triples (default: 3, ~290k lines)")
    ap.add_argument("--items-b", type=int, default=0,
                    help="part b: re-keyed items (overrides --copies-b; default: 0, copies x the sample)")
    ap.add_argument("--repeat", type=int, default=3, help="timings per case in parts a and b; best counts")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"shared data root (default: {DEFAULT_DATA})")
    ap.add_argument("--workdir", type=Path, default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results JSON (default: {DEFAULT_OUT})")
    ap.add_argument("--table", action="store_true", help="only print the Markdown table of the results JSON")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown(json.loads(args.out.read_text())))
        return 0

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not set(parts) <= {"a", "b", "c"}:
        ap.error("--parts takes a comma-separated subset of a,b,c")
    sizes = tuple(int(x) for x in args.sizes.split(",")) if args.sizes else \
        ((20_000, 200_000) if args.quick else (100_000, 1_000_000))
    DATA = args.data
    sample = load_sample(DATA / SAMPLE)

    results = {"parts": {}}
    if args.out.exists():
        results = json.loads(args.out.read_text())  # keep the other parts' previous figures
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kg_build_bench-", dir=args.workdir))
    started = time.time()
    try:
        for part in parts:
            t0 = time.perf_counter()
            if part == "a":
                res = part_a(sample, work, args.items_a, args.repeat)
            elif part == "b":
                res = part_b(sample, work, args.copies_b, args.repeat, args.items_b)
            else:
                res = part_c(sample, work, sizes, args.claims_factor)
            res["run"] = {"command": " ".join(["python bench/kg_build.py", *(sys.argv[1:] if argv is None else argv)]),
                          "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
                          "part_seconds": round(time.perf_counter() - t0, 1), "machine": machine()}
            results["parts"][part] = res
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(markdown(results))
    return 0


DATA = DEFAULT_DATA

if __name__ == "__main__":
    sys.exit(main())
