"""The study's numbers from `kept probe` outputs: mean ± std over seeds, paired differences to the
baseline with bootstrap intervals over facts, the majority-object reference, a report and plots.

Input: one probe folder per knowledge condition (``OUT/probe/<condition>/``, `kept probe` with every
model of that condition, named ``<method>-seed<k>``); methods that read no KG are probed once, under
the condition ``none``. Output: ``results.json`` (see :func:`analyse`), ``report.md``, PNG plots.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from kept.methods import BASELINE
from kept.probe.stats import macro_mean, mean_std, paired_bootstrap

SPLITS = ("seen", "unseen", "all")
METRICS = ("p@1", "p@10", "mrr")


def model_name(method: str, seed: int) -> str:
    return f"{method}-seed{seed}"


def read_predictions(probe_dir: Path) -> dict[tuple[str, str], dict[tuple, dict]]:
    """(model, mode) -> fact key (relation, sub_label, obj_label, sentence) -> its prediction record."""
    out: dict[tuple[str, str], dict[tuple, dict]] = defaultdict(dict)
    with open(probe_dir / "predictions.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out[(r["model"], r["mode"])][(r["relation"], r["sub_label"], r["obj_label"], r["sentence"])] = r
    return out


def in_split(record: dict, split: str) -> bool:
    return split == "all" or record["seen"] == (1 if split == "seen" else 0)


def per_fact(records: list[dict[tuple, dict]], keys: list[tuple], metric: str) -> np.ndarray:
    """float [F]: a metric per fact (P@1 as 0/1, 1/rank for MRR), averaged over the seeds' records."""
    def value(r: dict) -> float:
        return float(r["rank"] <= 1) if metric == "p@1" else 1.0 / r["rank"]
    return np.asarray([np.mean([value(seed[k]) for seed in records]) for k in keys])


def majority_baseline(records: dict[tuple, dict]) -> dict[str, float]:
    """Macro P@1 of always answering the relation's most frequent object (over all its probed facts), per split."""
    by_relation: dict[str, Counter] = defaultdict(Counter)
    for (relation, _, obj, _), _r in records.items():
        by_relation[relation][obj] += 1
    top = {rel: counts.most_common(1)[0][0] for rel, counts in by_relation.items()}
    out = {}
    for split in SPLITS:
        keys = [k for k, r in records.items() if in_split(r, split)]
        if keys:
            hits = np.asarray([float(k[2] == top[k[0]]) for k in keys])
            out[split] = round(100 * macro_mean(hits, np.asarray([k[0] for k in keys])), 2)
    return out


def analyse(probe_dirs: dict[str, Path], runs: dict[str, dict[str, list[int]]], replicates: int = 10_000) -> dict:
    """The study table: ``{"majority", "results"}``.

    probe_dirs: condition -> its probe folder. runs: method -> condition -> the seeds probed there.
    ``results[method][condition][mode][split]``: ``p@1`` / ``p@10`` / ``mrr`` as ``{"mean", "std",
    "runs"}`` of the seeds' macro values (in %), ``facts``, and ``diff_p@1`` / ``diff_mrr``: the paired
    difference to the baseline (``kept.methods.BASELINE``, condition ``none``) in points, with its 95 %
    stratified bootstrap interval over facts (per-fact values averaged over each side's seeds).
    """
    predictions = {c: read_predictions(d) for c, d in probe_dirs.items()}
    metrics = {c: json.loads((d / "metrics.json").read_text())["models"] for c, d in probe_dirs.items()}
    base_seeds = runs[BASELINE]["none"]
    results: dict = {}
    majority: dict = {}
    for method, conditions in runs.items():
        for condition, seeds in conditions.items():
            names = [model_name(method, s) for s in seeds]
            for mode in ("single", "multi"):
                recs = [predictions[condition].get((n, mode)) for n in names]
                if not all(recs):
                    continue
                base = [predictions["none"][(model_name(BASELINE, s), mode)] for s in base_seeds]
                if mode == "multi" and not majority:
                    majority = {"multi": majority_baseline(base[0])}
                cell = results.setdefault(method, {}).setdefault(condition, {}).setdefault(mode, {})
                for split in SPLITS:
                    keys = sorted(k for k in recs[0] if in_split(recs[0][k], split) and all(k in r for r in recs + base))
                    if not keys:
                        continue
                    entry: dict = {"facts": len(keys)}
                    for metric in METRICS:
                        values = []
                        for n in names:
                            m = metrics[condition][n]["modes"][mode]
                            macro = m["macro"] if split == "all" else m.get(split, {}).get("macro")
                            if macro and macro["n"]:
                                values.append(100 * macro[metric])
                        if values:
                            entry[metric] = {k: round(v, 2) if isinstance(v, float) else v
                                             for k, v in mean_std(values).items()}
                    if method != BASELINE:
                        relations = np.asarray([k[0] for k in keys])
                        for metric in ("p@1", "mrr"):
                            diff = paired_bootstrap(per_fact(recs, keys, metric), per_fact(base, keys, metric),
                                                    relations, replicates=replicates)
                            entry[f"diff_{metric}"] = {k: round(100 * v, 2) if k in ("estimate", "low", "high") else v
                                                       for k, v in diff.as_dict().items()}
                    cell[split] = entry
    return {"majority": majority, "results": results}


def _cell(entry: dict | None, metric: str) -> str:
    if not entry or metric not in entry:
        return "–"
    return f"{entry[metric]['mean']:.1f} ± {entry[metric]['std']:.1f}"


def _diff(entry: dict | None, metric: str = "p@1") -> str:
    d = (entry or {}).get(f"diff_{metric}")
    return "–" if d is None else f"{d['estimate']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]"


def markdown(table: dict, mode: str = "multi") -> str:
    """One row per method × condition: P@1 seen / unseen (mean ± std), the paired difference to the baseline."""
    lines = [f"| method | knowledge | P@1 seen | P@1 unseen | Δ P@1 seen vs {BASELINE} [95 % CI] | "
             f"Δ P@1 unseen vs {BASELINE} [95 % CI] | MRR seen | MRR unseen | runs |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for method, conditions in table["results"].items():
        for condition, modes in conditions.items():
            m = modes.get(mode)
            if not m:
                continue
            runs = (m.get("all") or {}).get("p@1", {}).get("runs", "–")
            lines.append(f"| {method} | {condition} | {_cell(m.get('seen'), 'p@1')} | {_cell(m.get('unseen'), 'p@1')} | "
                         f"{_diff(m.get('seen'))} | {_diff(m.get('unseen'))} | {_cell(m.get('seen'), 'mrr')} | "
                         f"{_cell(m.get('unseen'), 'mrr')} | {runs} |")
    maj = table.get("majority", {}).get("multi")
    if maj and mode == "multi":
        lines.append(f"\nMajority object (always the relation's most frequent object), macro P@1: seen "
                     f"{maj.get('seen', float('nan')):.1f}, unseen {maj.get('unseen', float('nan')):.1f}.")
    return "\n".join(lines) + "\n"


def plot(table: dict, out: Path, mode: str = "multi") -> Path:
    """Bars of P@1 (mean ± std over seeds) for seen and unseen facts, one group per method × condition."""
    from matplotlib.figure import Figure

    rows = [(f"{m}\n{c}", modes[mode]) for m, conds in table["results"].items() for c, modes in conds.items()
            if mode in modes]
    fig = Figure(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.2))
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    for j, split in enumerate(("seen", "unseen")):
        means = [r[1].get(split, {}).get("p@1", {}).get("mean", 0.0) for r in rows]
        stds = [r[1].get(split, {}).get("p@1", {}).get("std", 0.0) for r in rows]
        ax.bar(x + (j - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=3, label=f"{split} facts")
    maj = table.get("majority", {}).get(mode, {})
    if "unseen" in maj:
        ax.axhline(maj["unseen"], color="grey", linestyle="--", linewidth=1, label="majority object (unseen)")
    ax.set_xticks(x, [r[0] for r in rows], fontsize=8)
    ax.set_ylabel("P@1 (%)")
    ax.set_title(f"T-REx cloze ({mode}-wordpiece mode): mean ± std over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"study_{mode}.png"
    fig.savefig(path, dpi=110)
    return path
