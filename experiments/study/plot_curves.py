#!/usr/bin/env python
"""Learning curves of the regime search (experiments/study/results/*.json) as one figure: seen and unseen
P@1 (multi mode, macro, %) against steps, one panel per data size, the majority-object baseline dashed.

    .venv/bin/python experiments/study/plot_curves.py --out docs/img/study_curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (panel title, data size tag, [(curve file stem, label, condition)])
PANELS = [
    ("30 facts per relation", "d30", [("mlm-d30-facts", "mlm", "none"), ("kbert-d30-swap", "kbert full (object masking + swaps)", "full"),
                                      ("kbert-d30-swap", "kbert off (object masking + swaps)", "off")]),
    ("75 facts per relation", "d75", [("mlm-d75-facts", "mlm", "none"), ("kbert-d75-facts", "kbert full", "full"),
                                      ("kbert-d75-facts", "kbert off", "off")]),
    ("150 facts per relation", "d150", [("mlm-d150-facts", "mlm", "none"), ("kbert-d150-facts", "kbert full", "full"),
                                        ("kbert-d150-facts", "kbert off", "off")]),
]


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=HERE / "results")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    fig, axes = plt.subplots(2, len(PANELS), figsize=(12, 6.5), sharex=True, sharey=True, dpi=110)
    for col, (title, _, curves) in enumerate(PANELS):
        majority = None
        for stem, label, condition in curves:
            run = json.loads((args.results / f"{stem}.json").read_text())
            majority = run["majority"]
            steps = [pt["step"] for pt in run["curve"]]
            for row, split in enumerate(("seen", "unseen")):
                axes[row, col].plot(steps, [pt[condition][split]["p@1"] for pt in run["curve"]], marker="o", label=label)
        for row, split in enumerate(("seen", "unseen")):
            ax = axes[row, col]
            ax.axhline(majority[split], color="grey", linestyle="--", linewidth=1, label="majority object")
            ax.set_title(f"{title}: {split} facts", fontsize=10)
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("P@1 (%)")
            if row == 1:
                ax.set_xlabel("training steps")
    for ax in axes[0]:
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Regime search: fact masking, 3 layers, hidden 128 (one seed per curve)", fontsize=11)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
