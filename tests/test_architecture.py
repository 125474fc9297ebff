"""The house plan (docs/architecture.md): no import cycles, imports flowing one way, modules
under 400 lines, and no dispatch on a method's name outside the registry (kept/methods.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from kept.methods import METHODS, get_method, methods_table, resolve

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kept"

#: the one-way order of docs/architecture.md, lowest first; a module belongs to the longest prefix
#: that names it, and may import only from its own layer or lower ones
LAYERS = [
    ["kept", "kept.runtime", "kept.progress", "kept.flags", "kept._lazy", "kept.data.examples"],  # root, process settings, bars, flags, the record
    ["kept.kg.sources"],                                             # readers, one per format
    ["kept.kg"],                                                     # store, build, graph adapters
    ["kept.kg.transe", "kept.kg.linking"],                           # TransE, entity linking
    ["kept.data.loading", "kept.data.tokenizer"],                    # resumable loading, tokenizers
    ["kept.masking"],                                                # units, Baidu-ERNIE masking
    ["kept.data"],                                                   # linked examples, corpus building
    ["kept.train.base", "kept.train.mlm", "kept.train.data"],        # the shared LightningModule / DataModule
    ["kept.fusion"],                                                 # K-BERT, ERNIE-T, UKTP
    ["kept.methods"],                                                # the registry
    ["kept.train"],                                                  # `kept pretrain`, fine-tuning
    ["kept.probe"],                                                  # cloze probing
    ["kept.kg.cli", "kept.kg.transe.cli", "kept.kg.linking.cli", "kept.data.cli", "kept.demo_common", "kept.demo",
     "kept.demo_zh",
     "kept.cli"],
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """kept modules that ``path`` imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, set(mods)) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None (iterative DFS)."""
    state: dict[str, int] = {}
    for start in sorted(graph):
        if start in state:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path, state[start] = [start], 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def layer_of(module: str) -> int:
    best, layer = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), i
    assert layer is not None, f"{module} is in no layer of LAYERS"
    return layer


def test_find_cycle_finds_a_cycle_and_none_in_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_flow_one_way():
    upward = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
              for m, deps in import_graph().items() for d in deps if layer_of(d) > layer_of(m)]
    assert not upward, "imports against the one-way order of docs/architecture.md:\n" + "\n".join(sorted(upward))


def test_modules_stay_under_400_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"


def own_package(method_name: str) -> str:
    """The package of a method's LightningModule: where its name may be spelled out."""
    return get_method(method_name).module.rsplit(".", 2)[0]


def method_name_comparisons(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every comparison (==, !=, in, not in) against a registered method's name."""
    names = set(METHODS)
    hits = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Compare):
            continue
        for operand in [node.left, *node.comparators]:
            values = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            hits += [(node.lineno, v.value) for v in values
                     if isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value in names]
    return hits


def test_method_comparison_finder_sees_the_dispatch_it_forbids(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('if method in ("kbert", "uktp"):\n    pass\nif m == "mlm" or m != "ernie-t":\n    pass\n')
    assert sorted(name for _, name in method_name_comparisons(bad)) == ["ernie-t", "kbert", "mlm", "uktp"]


def test_no_dispatch_on_method_names_outside_the_registry():
    bench = [p for p in (ROOT / "bench").rglob("*.py")  # not bench/.venv-pykeen (make bench-env)
             if not any(part.startswith(".venv") for part in p.relative_to(ROOT / "bench").parts)]
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "experiments").rglob("*.py"), *bench]
    own = {own_package(name) for name in METHODS}
    offences = []
    for path in files:
        mod = module_name(path) if path.is_relative_to(PACKAGE) else ""
        if mod == "kept.methods" or any(mod == p or mod.startswith(p + ".") for p in own):
            continue
        offences += [f"{path.relative_to(ROOT)}:{line}: compares with {name!r}"
                     for line, name in method_name_comparisons(path)]
    assert not offences, "dispatch on a method's name outside kept/methods.py:\n" + "\n".join(offences)


@pytest.mark.parametrize("name", list(METHODS))
def test_registry_entries_resolve_and_match_their_configs(name):
    m = METHODS[name]
    config = yaml.safe_load(m.config.read_text())
    assert config["model"]["class_path"] == m.module and config["data"]["class_path"] == m.datamodule
    for path in (m.module, m.datamodule, m.scorer, m.loader, m.benchmark_batch):
        assert callable(resolve(path)), path
    assert set(m.needs) <= {"store", "entity_vectors", "linked_corpus"}
    assert (m.store_arg is not None) == ("store" in m.needs)
    assert m.knowledge_at_probe == (m.scorer != "kept.probe.scorers.MaskedLMScorer")


def test_pretrain_args_follow_the_registry(tmp_path):
    for m in METHODS.values():
        args = m.pretrain_args(store=tmp_path, steps=30)
        assert (m.store_arg in args) == (m.store_arg is not None)
        assert ("--trainer.callbacks.init_args.boundaries" in args) == m.staged_masking
    with pytest.raises(ValueError, match="needs a KG store"):
        next(m for m in METHODS.values() if m.store_arg).pretrain_args(store=None)
    with pytest.raises(ValueError, match="unknown method 'nope'; choose one of mlm"):
        get_method("nope")


def test_architecture_doc_quotes_the_registry_table():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert methods_table() in doc, "docs/architecture.md's method table differs from kept.methods.methods_table()"


def test_every_name_on_the_api_page_imports_from_its_package():
    import importlib
    import re

    doc = (ROOT / "docs" / "api.md").read_text(encoding="utf-8").split("## Modules that moved")[0]
    missing, rows = [], 0
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`kept"):
            continue
        rows += 1
        package = importlib.import_module(cells[0].strip("`"))
        missing += [f"{cells[0]}.{name}" for name in re.findall(r"`([A-Za-z_]\w*)`", cells[1])
                    if not hasattr(package, name)]
    assert rows >= 15 and not missing, f"docs/api.md lists names that do not import: {missing}"
