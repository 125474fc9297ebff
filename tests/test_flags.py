"""One vocabulary of flags (kept/flags.py, README "Flags used by every command"): every alias maps to its
canonical flag, old spellings still work and print one deprecation line, devices default to auto, every
long command takes --no-progress."""

import argparse
import os
import sys
from pathlib import Path

import pytest

from kept import flags
from kept.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_notices(monkeypatch):
    monkeypatch.setattr(flags, "_warned", set())  # each test sees the notices its own parse prints


def _probe_parser() -> argparse.ArgumentParser:
    from kept.probe.cli import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    return p


def _finetune_parser() -> argparse.ArgumentParser:
    from kept.train.finetune import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    return p


PROBE = ["--model", "m", "--data", "d", "--out", "o"]
FINETUNE = ["--data", "d", "--out", "o"]

# (parser factory, fixed arguments, old spelling, canonical spelling)
ALIASES = [
    (_probe_parser, PROBE, ["--kg", "S"], ["--store", "S"]),
    (_probe_parser, PROBE, ["--seen-kg", "S"], ["--seen-store", "S"]),
    (_finetune_parser, FINETUNE, ["--kg", "S"], ["--store", "S"]),
    (_finetune_parser, FINETUNE, ["--max-entities", "3"], ["--max-branches", "3"]),
    (_finetune_parser, FINETUNE, ["--num-workers", "2"], ["--workers", "2"]),
    (_finetune_parser, FINETUNE, ["--accelerator", "cpu"], ["--device", "cpu"]),
    (lambda: build_parser(), ["kg", "embed", "S"], ["--accelerator", "cpu"], ["--device", "cpu"]),
]


@pytest.mark.parametrize("make, fixed, old, new", ALIASES, ids=[f"{a[2][0]}->{a[3][0]}" for a in ALIASES])
def test_old_spelling_sets_the_canonical_flag_and_warns(make, fixed, old, new, capsys):
    canonical = vars(make().parse_args(fixed + new))
    assert capsys.readouterr().err == ""
    aliased = vars(make().parse_args(fixed + old))
    err = capsys.readouterr().err
    assert aliased == canonical
    assert err == f"kept: {old[0]} is deprecated; use {new[0]} (same meaning)\n"


def test_old_spellings_are_hidden_from_help(capsys):
    for make in (_probe_parser, _finetune_parser):
        text = make().format_help()
        assert "--store" in text and "--kg" not in text and "--num-workers" not in text and "--accelerator" not in text


def test_kept_link_store_positional_still_works_and_warns(medical_store, capsys):
    text = "感冒 是 一种 病"
    assert main(["link", "--store", str(medical_store.path), "--text", text, "--no-progress"]) == 0
    new = capsys.readouterr()
    assert "deprecated" not in new.err
    assert main(["link", str(medical_store.path), "--text", text, "--no-progress"]) == 0
    old = capsys.readouterr()
    assert old.out == new.out
    assert "kept: kept link STORE is deprecated; use kept link --store STORE (same meaning)" in old.err
    assert main(["link", "--text", text]) == 2
    assert "required: --store" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["kg", "embed", "S"],
    ["finetune", *FINETUNE],
])
def test_lightning_commands_default_to_device_auto(argv):
    if argv[0] == "finetune":
        args = _finetune_parser().parse_args(argv[1:])
        assert args.accelerator == "auto"
    else:
        assert build_parser().parse_args(argv).accelerator == "auto"


def test_probe_device_defaults_to_auto_and_auto_is_cuda_only_when_available(monkeypatch):
    import torch

    assert _probe_parser().parse_args(PROBE).device == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert flags.resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert flags.resolve_device("auto") == "cuda"
    assert flags.resolve_device("cuda:1") == "cuda:1" and flags.resolve_device("cpu") == "cpu"


@pytest.mark.parametrize("argv", [
    ["kg", "build", "x.nt", "--out", "s"],
    ["kg", "embed", "S"],
    ["link", "--store", "S", "--text", "t"],
    ["data", "build", "x.txt", "--out", "c", "--vocab", "v"],
    ["demo"],
])
def test_every_long_command_takes_no_progress(argv):
    assert build_parser().parse_args(argv + ["--no-progress"]).no_progress is True
    assert build_parser().parse_args(argv).no_progress is False


def test_probe_and_finetune_take_no_progress():
    assert _probe_parser().parse_args(PROBE + ["--no-progress"]).no_progress
    assert _finetune_parser().parse_args(FINETUNE + ["--no-progress"]).no_progress


def test_no_progress_silences_hugging_face(monkeypatch):
    from transformers.utils import logging as hf_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    hf_logging.enable_progress_bar()
    flags.quiet_progress(False)
    assert hf_logging.is_progress_bar_enabled() and "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
    try:
        flags.quiet_progress()
        assert not hf_logging.is_progress_bar_enabled()
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    finally:
        hf_logging.enable_progress_bar()


def test_pretrain_aliases_become_lightningcli_keys(capsys):
    from kept.methods import METHODS
    from kept.train.cli import alias_args

    argv = ["--store", "S", "--lang=zh", "--workers", "2", "--max-branches", "3", "--device", "cpu", "--no-progress",
            "--trainer.max_steps", "1"]
    assert alias_args(argv, METHODS["kbert"]) == [
        "--data.init_args.store", "S", "--data.init_args.language", "zh", "--data.init_args.num_workers", "2",
        "--data.init_args.max_entities", "3", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
        "--trainer.max_steps", "1"]
    assert capsys.readouterr().err == ""
    assert alias_args(["--model.entity_store", "S"], METHODS["ernie-t"]) == ["--data.init_args.store", "S"]
    assert capsys.readouterr().err == "kept: --model.entity_store is deprecated; use --store (same meaning)\n"
    with pytest.raises(SystemExit, match="method mlm does not take it"):
        alias_args(["--store", "S"], METHODS["mlm"])
    with pytest.raises(SystemExit, match="choose one of auto, cpu"):
        alias_args(["--device", "tpu9"], METHODS["mlm"])
    assert alias_args(["--", "--store", "x"]) == ["--", "--store", "x"]


def test_pretrain_aliases_reach_the_resolved_config(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "--store", "S", "--method", "kbert", "--lang", "zh", "--device", "cpu", "--no-progress",
              "--data.corpus", "c", "--data.vocab", "v", "--print_config"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for line in ("    store: S", "    language: zh", "  accelerator: cpu", "  enable_progress_bar: false",
                 "method: kbert"):
        assert line + "\n" in out, line


def test_readme_has_the_one_flags_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count("Flags used by every command") == 1
    assert flags.flags_table() in readme, "README's flag table differs from kept.flags.flags_table(); paste it:\n" + \
        flags.flags_table()


def test_flags_module_stays_light():
    import subprocess

    code = "import sys, kept.flags; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
