"""Probe plots: a readable width whatever the number of relations, labelled rows, no empty panel,
and Chinese labels in a CJK font: an installed one, else the one kept ships (or one clear line for
what it cannot draw)."""

import warnings

import numpy as np
import pytest

from kept.probe import plots
from kept.probe.plots import cjk_font, font_settings, plot_report


def metrics(relations: int = 40, models: int = 5) -> dict:
    """Models × relations; P@1 all zero in `single`; relation P0 has no query; one Chinese label."""
    rng = np.random.default_rng(0)
    out = {}
    for k in range(models):
        modes = {}
        for mode in ("single", "multi"):
            rels = {}
            for i in range(relations):
                n = 0 if i == 0 else 50
                label = "出生地" if i == 1 else f"relation label number {i}"
                rels[f"P{i}"] = {"label": label, "n": n, "p@1": 0.0 if mode == "single" else float(rng.random()),
                                 "p@10": 0.5, "mrr": float(rng.random()) / 10}
            modes[mode] = {"relations": rels, "macro": {"n": 50 * (relations - 1), "p@1": 0.0, "p@10": 0.5, "mrr": 0.05,
                                                        "relations": relations - 1}}
        out[f"model-{k}"] = {"model_dir": "x", "method": "mlm", "modes": modes}
    out["model-0"]["modes"]["empty"] = {"relations": {"P1": {"label": "出生地", "n": 0, "p@1": 0.0, "mrr": 0.0}},
                                        "macro": {"n": 0, "p@1": 0.0, "mrr": 0.0}}
    return out


def test_plots_are_narrow_labelled_and_never_an_empty_axis(tmp_path):
    from PIL import Image

    models = metrics()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")  # the CJK part is below
        paths = plot_report(models, tmp_path)
        figures = {mode: plots._mode_figure(models, mode) for mode in ("single", "multi", "empty")}
    assert {p.name for p in paths} == {"single.png", "multi.png", "empty.png"}
    for path in paths:
        width, height = Image.open(path).size
        assert width < 2000, (path.name, width)
    fig, rows = figures["single"]
    assert rows[2] == "P2 relation label number 2" and rows[-1] == "macro"  # the id and the label
    for mode, (fig, _) in figures.items():
        for ax in fig.axes:
            bars = [p for p in ax.patches if np.isfinite(p.get_width()) and p.get_width() > 0]
            notes = [t.get_text() for t in ax.texts]
            assert bars or any("no query" in t or "= 0" in t for t in notes), (mode, ax.get_xlabel(), notes)
            assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] > 0  # never the -0.04..0.04 of an empty autoscale
    p_at_1 = figures["single"][0].axes[0]
    assert any("= 0" in t.get_text() for t in p_at_1.texts)                       # all zero: said, not blank
    assert any(t.get_text() == "no query" for t in figures["multi"][0].axes[1].texts)  # relation P0 has none
    assert all(t.get_text() == "no query" for ax in figures["empty"][0].axes for t in ax.texts)


def test_without_a_cjk_font_one_line_says_how_to_get_one(monkeypatch, capsys):
    monkeypatch.setattr(plots, "cjk_font", lambda: None)
    assert font_settings(["P19 place of birth"]) == ({}, False)  # no Chinese: nothing to say
    assert font_settings(["P1 出生地"]) == ({}, True)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "KEPT_PLOT_FONT" in err


def test_kept_plot_font_takes_a_font_file(monkeypatch):
    import matplotlib

    dejavu = f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf"
    monkeypatch.setenv("KEPT_PLOT_FONT", dejavu)
    assert cjk_font() == "DejaVu Sans"
    monkeypatch.setenv("KEPT_PLOT_FONT", "No Such Font Family")
    assert cjk_font() is None


@pytest.fixture
def no_installed_cjk_font(monkeypatch):
    """A machine with no CJK font of its own (as CI's and most fresh ones are)."""
    monkeypatch.delenv("KEPT_PLOT_FONT", raising=False)
    monkeypatch.setattr(plots, "CJK_FONTS", ())


def test_the_shipped_font_is_used_when_none_is_installed(no_installed_cjk_font):
    assert plots.BUNDLED_FONT.is_file() and (plots.BUNDLED_FONT.parent / "OFL.txt").is_file()
    assert cjk_font() == "Kept CJK Sans"
    assert font_settings(["类别", "hownet_sememe 义原", "medical_category 类别"]) == (
        {"font.family": ["DejaVu Sans", "Kept CJK Sans"]}, False)


def test_characters_the_shipped_font_lacks_are_named(no_installed_cjk_font, capsys):
    assert plots.uncovered(["出生地", "龘靐"], "Kept CJK Sans") == ["龘", "靐"]      # outside GB 2312
    assert font_settings(["P1 出生地", "龘"])[1] is True
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "龘" in err and "KEPT_PLOT_FONT" in err


@pytest.mark.parametrize("shipped", [True, False], ids=["shipped font", "installed font"])
def test_chinese_labels_have_no_missing_glyphs(tmp_path, monkeypatch, shipped):
    if shipped:
        monkeypatch.delenv("KEPT_PLOT_FONT", raising=False)
        monkeypatch.setattr(plots, "CJK_FONTS", ())
    elif not any(name in {f.name for f in __import__("matplotlib").font_manager.fontManager.ttflist}
                 for name in plots.CJK_FONTS):
        pytest.skip("no CJK font is installed here; the shipped one is tested beside this")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_report(metrics(relations=4, models=2), tmp_path)
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing, (cjk_font(), missing[:3])
