"""Probe reports: a Markdown table and PNG bar charts (:mod:`kept.probe.plots`) of the metrics of one or more models.

``metrics`` below is the ``"models"`` part of ``metrics.json``: model name ->
``{"model_dir", "method", "modes": {mode: {"relations", "macro", "micro", ["seen", "unseen"]}}}``
(:func:`kept.probe.probe.probe_relations` makes the per-mode part). Plots use the Agg
backend through ``matplotlib.figure.Figure`` (no pyplot state, no display needed).
"""

from __future__ import annotations

from kept.probe.plots import MODE_TITLES, plot_report


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _modes(models: dict) -> list[str]:
    return list(dict.fromkeys(mode for m in models.values() for mode in m["modes"]))


def _relations(models: dict, mode: str) -> list[str]:
    return list(dict.fromkeys(r for m in models.values() for r in m["modes"].get(mode, {}).get("relations", {})))


def markdown_report(models: dict, title: str = "Cloze probe") -> str:
    """Markdown: per mode, one row per relation and a macro-average row, one column group per model
    (P@1 / P@10 / MRR in %, and the number of queries); then seen vs unseen macro averages."""
    names = list(models)
    lines = [f"# {title}", ""]
    for name, info in models.items():
        knowledge = info.get("knowledge")
        knowledge = f"; knowledge at probe time: **{knowledge}**" if knowledge and knowledge != "none" else \
            ("; reads no KG at probe time" if knowledge == "none" else "")
        lines.append(f"- **{name}**: `{info.get('model_dir', '')}` (method: {info.get('method') or 'plain BERT'}"
                     f"{knowledge})")
    lines.append("")
    lines.append("P@1, P@10 and MRR in %; n = queries. Rank = candidates scoring >= the gold (ties count "
                 "against the gold); macro = mean over relations.")
    for mode in _modes(models):
        lines += ["", f"## {mode}: {MODE_TITLES.get(mode, mode)}", ""]
        header = "| relation | " + " | ".join(f"{n} P@1 | {n} P@10 | {n} MRR | {n} n" for n in names) + " |"
        lines += [header, "|---|" + "---|" * (4 * len(names))]
        for rel in _relations(models, mode):
            info = next(m["modes"][mode]["relations"][rel] for m in models.values()
                        if rel in m["modes"].get(mode, {}).get("relations", {}))
            label = info.get("label") or ""
            if "candidates" in info:  # multi mode: a relation with few candidates is easy
                label += f" ({info['candidates']} candidates)"
            cells = []
            for name in names:
                r = models[name]["modes"].get(mode, {}).get("relations", {}).get(rel)
                cells += [_fmt(r["p@1"]), _fmt(r["p@10"]), _fmt(r["mrr"]), str(r["n"])] if r else ["–"] * 4
            lines.append(f"| {rel} {label} | ".replace("  |", " |") + " | ".join(cells) + " |")
        cells = []
        for name in names:
            macro = models[name]["modes"].get(mode, {}).get("macro")
            cells += ([f"**{_fmt(macro['p@1'])}**", f"**{_fmt(macro['p@10'])}**", f"**{_fmt(macro['mrr'])}**",
                       str(macro["n"])] if macro else ["–"] * 4)
        lines.append("| **macro** | " + " | ".join(cells) + " |")
        if any("seen" in m["modes"].get(mode, {}) or "unseen" in m["modes"].get(mode, {}) for m in models.values()):
            lines += ["", f"Seen in the KG store vs not ({mode}, macro over relations):", "",
                      "| model | split | relations | n | P@1 | P@10 | MRR |", "|---|---|---|---|---|---|---|"]
            for name in names:
                for split in ("seen", "unseen"):
                    macro = models[name]["modes"].get(mode, {}).get(split, {}).get("macro")
                    if macro:
                        lines.append(f"| {name} | {split} | {macro['relations']} | {macro['n']} | {_fmt(macro['p@1'])}"
                                     f" | {_fmt(macro['p@10'])} | {_fmt(macro['mrr'])} |")
    return "\n".join(lines) + "\n"


__all__ = ["MODE_TITLES", "markdown_report", "plot_report"]
