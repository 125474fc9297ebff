"""Every shell command and Python snippet in README.md and docs/*.md runs as written, in order.

How it runs: the ```bash and ```python blocks of README.md, then of docs/*.md (alphabetically),
one after the other in one temporary copy of the repository, as on a fresh clone after
``make install``: ``.venv/bin/kept`` and ``.venv/bin/python`` there are wrappers for this
interpreter with the copy on ``PYTHONPATH``, and ``../shared`` links to the project's shared data
folder when there is one. A block may use what an earlier one made (``make demo``'s ``runs/demo``,
the README's ``stores/...``). A bash block runs under ``set -eo pipefail``, a Python block with
the interpreter; a failing block fails the test with its output.

Small sizes: :data:`SHRINK` appends flags to the commands that train or probe (the last
occurrence of a flag wins, in argparse and LightningCLI alike), e.g. ``--trainer.max_steps 2``;
``make demo`` gets ``DEMO_ARGS`` (a Makefile variable). What the docs print is unchanged.

Not run: :data:`SKIP`, the commands left out, each with its reason
(:func:`test_every_skipped_command_is_still_in_the_docs` keeps the list from rotting), and the
commands that read ``../shared/data`` where that folder does not exist. Fenced blocks that are not
commands are tagged ```text; an untagged block fails :func:`test_every_block_says_what_it_is`, so no
command hides from this test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEMO_ARGS = "--steps 2 --transe-epochs 1 --workers 0"

#: (command pattern, flags appended): training and probing at small sizes
SHRINK: list[tuple[str, str]] = [
    (r"make demo\b", f'DEMO_ARGS="{DEMO_ARGS}"'),
    (r"kept demo\b", DEMO_ARGS),
    (r"kept kg embed\b", "--epochs 1"),
    (r"kept pretrain\b", "--trainer.max_steps 2 --trainer.val_check_interval 1 --trainer.limit_val_batches 1"),
    (r"(kept finetune|\.venv/bin/python -m kept\.train\.finetune)\b",
     "--max-steps 2 --val-every 2 --epochs 1 --limit-train 64 --limit-eval 32"),
    (r"kept probe\b", "--max-facts 3"),
]

BENCH = "a benchmark (minutes of CPU); tests/test_bench_smoke.py runs it at a tiny size"
FB15K = "the benchmark's FB15k-237 run: docs/transe.md's commands, which run, at its full recipe (5 min)"
STUDY = "the knowledge study: hours of CPU (docs/results.md reports its runs)"
#: (file, the command's start) -> why it is not run
SKIP: dict[tuple[str, str], str] = {
    ("README.md", "make test"): "the test suite this test is part of",
    ("docs/benchmarks.md", "make bench-env"): "installs PyKEEN into bench/.venv-pykeen from the package index",
    ("docs/benchmarks.md", ".venv/bin/python bench/transe.py"): "needs bench/.venv-pykeen (PyKEEN); 10-14 min",
    ("docs/benchmarks.md", "make demo"): "README.md's first block ran it already",
    ("docs/benchmarks.md", "kept kg build ../shared/data/kge/FB15k-237 --out runs/fb237"): FB15K,
    ("docs/benchmarks.md", "kept kg embed runs/fb237 --export-openke"): FB15K,
    ("docs/benchmarks.md", ".venv/bin/python bench/kg_build.py\n"): BENCH,
    ("docs/benchmarks.md", ".venv/bin/python bench/kg_build.py --parts a"): BENCH,
    ("docs/benchmarks.md", ".venv/bin/python bench/store_open.py"): BENCH,
    ("docs/benchmarks.md", ".venv/bin/python bench/linking.py"): BENCH,
    ("docs/benchmarks.md", ".venv/bin/python bench/data_path.py"): BENCH,
    ("docs/benchmarks.md", ".venv/bin/python bench/transe_scale.py"): BENCH,
    ("docs/benchmarks.md", ".venv/bin/python bench/kbert_tree.py"): BENCH,
    ("docs/benchmarks.md", ".venv/bin/python bench/probe.py"): BENCH,
    ("docs/benchmarks.md", ".venv/bin/python bench/fusion_step.py"): BENCH,
    ("docs/kbert.md", ".venv/bin/python bench/kbert_tree.py"): BENCH,
    ("docs/results.md", ".venv/bin/python experiments/compare_methods/run.py\n"): STUDY,
    ("docs/results.md", ".venv/bin/python experiments/compare_methods/run.py --budget"): STUDY + "; a GPU",
    ("docs/results.md", "PYTHONPATH=. .venv/bin/python experiments/study/"): STUDY,
    ("docs/results_zh.md", ".venv/bin/python experiments/kbert_zh/run.py --out runs/kbert_zh --seeds"):
        "the Chinese K-BERT evaluation: hours of CPU (tests/test_kbert_zh_experiment.py runs it at a tiny size)",
    ("docs/results_zh.md", ".venv/bin/python experiments/kbert_zh/run.py --out runs/kbert_zh --report-only"):
        "the table of that evaluation's finished runs",
}


@dataclass
class Block:
    path: str      # relative to the repository root
    line: int      # of the opening fence
    lang: str
    text: str

    def commands(self) -> list[str]:
        """The logical shell commands (continuation lines joined, blank and comment lines dropped)."""
        out, current = [], ""
        for line in self.text.splitlines():
            current += line
            if current.endswith("\\"):
                current = current[:-1] + " "
                continue
            if current.strip() and not current.lstrip().startswith("#"):
                out.append(current.strip())
            current = ""
        return out


def blocks() -> list[Block]:
    """Every fenced block of README.md and docs/*.md, in reading order."""
    found = []
    for path in DOCS:
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith("```"):
                start, lang = i, lines[i][3:].strip()
                i += 1
                while not lines[i].startswith("```"):
                    i += 1
                found.append(Block(str(path.relative_to(ROOT)), start + 1, lang, "\n".join(lines[start + 1:i]) + "\n"))
            i += 1
    return found


def _code_and_comment(command: str) -> tuple[str, str]:
    """Split a shell line at its trailing comment (a ``#`` outside quotes after a space)."""
    quote = None
    for i, c in enumerate(command):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip(), command[i:]
    return command, ""


def skip_reason(block: Block, command: str) -> str | None:
    for (path, start), reason in SKIP.items():
        if path == block.path and (_code_and_comment(command)[0] + "\n").startswith(start):
            return reason
    if "../shared/data" in command and not (SHARED / "data").is_dir():
        return "needs ../shared/data"
    return None


def runnable(block: Block) -> tuple[str, list[str]]:
    """The bash script of a block (skipped commands left out, SHRINK flags appended) and the skip notes."""
    lines, notes = ["set -eo pipefail"], []
    for command in block.commands():
        reason = skip_reason(block, command)
        if reason:
            notes.append(f"skipped `{command[:60]}`: {reason}")
            continue
        code, _ = _code_and_comment(command)
        for pattern, extra in SHRINK:
            if re.match(pattern, code):
                code = f"{code} {extra}"
                break
        lines.append(code)
    return "\n".join(lines) + "\n", notes


def _copy_repository(dest: Path) -> None:
    """The repository's files as a fresh clone has them (tracked and not-ignored files), into ``dest``."""
    try:
        listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                 capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but outputs and caches
        shutil.copytree(ROOT, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "runs", "stores", "corpora", "models", "__pycache__", ".pytest_cache"))
        return
    for name in filter(None, listing):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _workspace(tmp: Path) -> tuple[Path, dict]:
    repo = tmp / "kept"
    _copy_repository(repo)
    if SHARED.is_dir():
        (tmp / "shared").symlink_to(SHARED, target_is_directory=True)
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "kept").write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "import sys; from kept.cli import main; '
                                  f'sys.exit(main())" "$@"\n')
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    (repo / ".venv" / ".installed").touch()  # `make install` is done: newer than pyproject.toml
    env = {**os.environ, "PYTHONPATH": str(repo), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "MPLBACKEND": "Agg",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return repo, env


def test_every_block_says_what_it_is():
    untagged = [f"{b.path}:{b.line}" for b in blocks() if not b.lang]
    assert not untagged, f"fenced blocks without a language (```bash, ```python or ```text): {untagged}"


def test_every_skipped_command_is_still_in_the_docs():
    by_file: dict[str, list[str]] = {}
    for b in blocks():
        if b.lang == "bash":
            by_file.setdefault(b.path, []).extend(_code_and_comment(c)[0] + "\n" for c in b.commands())
    for (path, start), reason in SKIP.items():
        matches = [c for c in by_file.get(path, []) if c.startswith(start)]
        assert matches, f"SKIP names `{start.strip()}` in {path} ({reason}), which is no longer there: drop it"
        if path != "docs/results.md":  # the study's four scripts share one entry
            assert len(matches) == 1, f"SKIP `{start.strip()}` matches {len(matches)} commands in {path}"


def test_shrink_keeps_the_command_and_its_flags():
    block = Block("README.md", 1, "bash", "kept probe --model a \\\n    --out 'x # y'   # a comment\nmake test\n")
    script, notes = runnable(block)
    assert "kept probe --model a      --out 'x # y' --max-facts 3\n" in script
    assert "make test" not in script and notes == ["skipped `make test`: the test suite this test is part of"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # not yet timed on idle cores; the tiny demo alone took 77 s on a shared 2-core machine
def test_docs_commands_run_as_written(tmp_path):
    repo, env = _workspace(tmp_path)
    timings = []
    for block in blocks():
        if block.lang not in ("bash", "python"):
            continue
        where = f"{block.path}:{block.line}"
        if block.lang == "bash":
            script, notes = runnable(block)
            argv = ["bash", "-c", script]
        else:
            script, notes, argv = block.text, [], [sys.executable, "-c", block.text]
        start = time.perf_counter()
        res = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        timings.append((where, time.perf_counter() - start, notes))
        assert res.returncode == 0, (f"{where}: the {block.lang} block failed (exit {res.returncode}):\n{script}\n"
                                     f"--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-5000:]}")
    for where, seconds, notes in timings:
        print(f"{seconds:7.1f} s  {where}" + "".join(f"\n           {n}" for n in notes))
