"""PNG charts of probe metrics: one figure per mode, relations as labelled rows, models side by side.

``plot_report(models, out_dir)`` (``models`` as in :mod:`kept.probe.report`) writes ``<mode>.png``
(P@1 and MRR per relation plus the macro average) and, when the probe split facts by a seen-KG,
``<mode>_seen.png``. The figures are 1,100 px wide whatever the number of relations (they grow in
height instead); a row is labelled with the relation id and its label ("P19 place of birth"); a
panel with no query says so instead of drawing an empty axis, and a panel whose values are all
zero says that too, on a 0-based axis.

Chinese (or other CJK) labels need a font with those glyphs. :func:`cjk_font` takes ``KEPT_PLOT_FONT``
(a font family name or a font file), else an installed one (Noto Sans CJK, Source Han Sans,
WenQuanYi, Droid Sans Fallback, ...), else the font kept ships, "Kept CJK Sans" (``fonts/``: Noto
Sans CJK SC cut to the 7,700 characters of GB 2312, SIL OFL 1.1), so Chinese labels render on a
machine with no CJK font. A character that font lacks (a rare or traditional one) is named in one
line on stderr, with how to install a full font; it shows as a box.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np

#: CJK-capable font families looked for, in order (Linux packages first, then macOS / Windows)
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Noto Sans SC", "Source Han Sans SC",
             "Source Han Sans CN", "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
             "Droid Sans Fallback", "AR PL UMing CN", "AR PL UKai CN", "Noto Serif CJK SC", "PingFang SC",
             "Hiragino Sans GB", "Heiti SC", "Microsoft YaHei", "SimHei", "Arial Unicode MS")
#: the figure width (inches at :data:`DPI`: 1,100 px)
WIDTH, DPI = 10.0, 110
#: the CJK font kept ships (a GB 2312 subset of Noto Sans CJK SC; kg_data/recipes/make_cjk_font.py)
BUNDLED_FONT = Path(__file__).with_name("fonts") / "KeptCJKSans-GB2312.otf"
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
#: the title of each probe mode's chart and report section
MODE_TITLES = {"single": "single-wordpiece objects, ranked over the vocabulary (LAMA)",
                "multi": "all objects, ranked among the relation's distinct objects"}


def cjk_font() -> str | None:
    """The family name of the CJK-capable font the plots use, or None when there is none.

    ``KEPT_PLOT_FONT`` (environment) names the font to use: a family name, or a ``.ttf``/``.otf``/
    ``.ttc`` file (added to matplotlib's font list). Otherwise the first installed of :data:`CJK_FONTS`,
    else the shipped :data:`BUNDLED_FONT` ("Kept CJK Sans").
    """
    from matplotlib import font_manager

    chosen = os.environ.get("KEPT_PLOT_FONT")
    if chosen and Path(chosen).is_file():
        return _add_font(chosen)
    installed = {f.name for f in font_manager.fontManager.ttflist}
    if chosen:
        return chosen if chosen in installed else None
    found = next((name for name in CJK_FONTS if name in installed), None)
    return found or (_add_font(BUNDLED_FONT) if BUNDLED_FONT.is_file() else None)


def _add_font(path: str | Path) -> str:
    """Add a font file to matplotlib's list (once); its family name."""
    from matplotlib import font_manager

    if not any(f.fname == str(path) for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def uncovered(texts: list[str], font: str) -> list[str]:
    """The distinct CJK characters of ``texts`` that the font family ``font`` has no glyph for, in order."""
    from matplotlib import font_manager

    path = font_manager.findfont(font_manager.FontProperties(family=font), fallback_to_default=False)
    charmap = font_manager.get_font(path).get_charmap()
    seen = dict.fromkeys(c for t in texts for c in _CJK.findall(t))
    return [c for c in seen if ord(c) not in charmap]


def font_settings(texts: list[str]) -> tuple[dict, bool]:
    """``(rcParams, missing)`` for labels ``texts``: DejaVu Sans, with a CJK font as fallback when a label
    needs one; ``missing`` True when one is needed and none is found, or it lacks some of the characters
    (then one line on stderr names them and says how to get a full font)."""
    if not any(_CJK.search(t) for t in texts):
        return {}, False
    how = "install one (e.g. apt install fonts-noto-cjk) or set KEPT_PLOT_FONT to a font file"
    font = cjk_font()
    if font is None:
        print(f"kept probe: no CJK font found, Chinese labels in the plots show as boxes; {how}", file=sys.stderr)
        return {}, True
    # a list of families (not "sans-serif" + font.sans-serif): only then does matplotlib fall back glyph by glyph
    settings = {"font.family": ["DejaVu Sans", font]}
    lacking = uncovered(texts, font)
    if lacking:
        print(f"kept probe: the font {font!r} has no glyph for {''.join(lacking[:20])}"
              f"{'...' if len(lacking) > 20 else ''}: they show as boxes in the plots; for a full CJK font {how}",
              file=sys.stderr)
    return settings, bool(lacking)


def _label(relation: str, label: str | None, width: int = 34) -> str:
    text = f"{relation} {label}" if label and label != relation else relation
    return text if len(text) <= width else text[: width - 1] + "…"


def _panel(ax, rows: list[str], names: list[str], values: dict[str, list[float | None]], metric: str) -> None:
    """Horizontal bars: one row per entry of ``rows``, one bar per model; "no query" / "all zero" notes."""
    y = np.arange(len(rows))
    height = 0.8 / max(1, len(names))
    finite = [v for name in names for v in values[name] if v is not None]
    ax.set_yticks(y)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first relation on top
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel(f"{metric.upper()} (%)")
    if not finite:
        ax.set_xticks([])
        ax.text(0.5, 0.5, "no query", transform=ax.transAxes, ha="center", va="center", fontsize=11, color="grey")
        return
    for k, name in enumerate(names):
        heights = [np.nan if v is None else 100 * v for v in values[name]]
        ax.barh(y + (k - (len(names) - 1) / 2) * height, heights, height, label=name)
    top = 100 * max(finite)
    ax.set_xlim(0, top * 1.1 if top > 0 else 1.0)  # never the -0.04..0.04 of an all-zero autoscale
    if top == 0:
        ax.text(0.5, 0.5, f"{metric.upper()} = 0 for every\nrelation and model", transform=ax.transAxes,
                ha="center", va="center", fontsize=11, color="grey")
    for row, name_values in enumerate(zip(*(values[n] for n in names))):
        if all(v is None for v in name_values):
            ax.text(0.01, row, "no query", transform=ax.get_yaxis_transform(), va="center", fontsize=7, color="grey")


def _mode_figure(models: dict, mode: str):
    from matplotlib.figure import Figure

    names = list(models)
    relations = list(dict.fromkeys(r for m in models.values() for r in m["modes"].get(mode, {}).get("relations", {})))
    labels = {}
    for m in models.values():
        for rel, info in m["modes"].get(mode, {}).get("relations", {}).items():
            labels.setdefault(rel, info.get("label"))
    rows = [_label(r, labels.get(r)) for r in relations] + ["macro"]
    fig = Figure(figsize=(WIDTH, 1.3 + len(rows) * (0.1 + 0.09 * len(names))))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric in zip(axes, ("p@1", "mrr")):
        values = {}
        for name in names:
            got = models[name]["modes"].get(mode, {})
            per = [got.get("relations", {}).get(r) for r in relations] + [got.get("macro")]
            values[name] = [None if p is None or not p.get("n") else p.get(metric) for p in per]
        _panel(ax, rows, names, values, metric)
    axes[0].set_yticklabels(rows, fontsize=8)
    for ax in axes:
        ax.tick_params(axis="y", length=0)
    fig.suptitle(f"{mode}: {MODE_TITLES.get(mode, mode)}", fontsize=10)
    handles, legend_labels = next(((h, lab) for h, lab in (a.get_legend_handles_labels() for a in axes) if h),
                                  ([], []))
    if handles:
        fig.legend(handles, legend_labels, loc="lower center", ncol=min(len(names), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))
    return fig, rows


def _seen_figure(models: dict, mode: str, split_models: list[str]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(WIDTH, 3.0 + 1.2 * len(split_models)), 3.8))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(split_models))
    drawn = False
    for k, split in enumerate(("seen", "unseen")):
        values = [((models[n]["modes"][mode].get(split) or {}).get("macro") or {}) for n in split_models]
        heights = [100 * v["p@1"] if v.get("n") else np.nan for v in values]
        drawn = drawn or not all(np.isnan(heights))
        ax.bar(x + (k - 0.5) * 0.4, heights, 0.4, label=f"{split} in KG")
    ax.set_xticks(x)
    ax.set_xticklabels(split_models, fontsize=8)
    ax.set_ylabel("macro P@1 (%)")
    ax.set_ylim(bottom=0)
    if not drawn:
        ax.text(0.5, 0.5, "no query", transform=ax.transAxes, ha="center", va="center", fontsize=11, color="grey")
    ax.set_title(f"{mode}: facts seen in the KG store vs not", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_report(models: dict, out_dir: str | Path) -> list[Path]:
    """PNG charts under ``out_dir`` (module docstring): ``<mode>.png``, and ``<mode>_seen.png`` when split.
    Returns the paths written."""
    import matplotlib

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(models)
    modes = list(dict.fromkeys(mode for m in models.values() for mode in m["modes"]))
    # every label the figures will show, known before they are made: a Text keeps the font it was made with
    texts = names + [_label(rel, info.get("label")) for m in models.values() for got in m["modes"].values()
                     for rel, info in got.get("relations", {}).items()]
    settings, missing = font_settings(texts)
    written = []
    with matplotlib.rc_context(settings), warnings.catch_warnings():
        if missing:  # the one line above said so; matplotlib would add a warning per glyph
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        for mode in modes:
            figures = [(out_dir / f"{mode}.png", _mode_figure(models, mode)[0])]
            split_models = [n for n in names if "seen" in models[n]["modes"].get(mode, {})
                            or "unseen" in models[n]["modes"].get(mode, {})]
            if split_models:
                figures.append((out_dir / f"{mode}_seen.png", _seen_figure(models, mode, split_models)))
            for path, fig in figures:
                tmp = path.with_name(f".{path.name}.tmp")
                fig.savefig(tmp, dpi=DPI, format="png")
                tmp.replace(path)
                written.append(path)
    return written
