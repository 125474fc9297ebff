from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def need_data(*parts: str) -> Path:
    """Path under ../shared/data, skipping the test when the shared data is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def fit_batch(module, batch: dict, steps: int, lr: float) -> list[dict[str, float]]:
    """Overfit a PretrainModule on one batch with AdamW (trainable parameters only);
    the ``module.losses(batch)`` values of every step, as floats."""
    import torch

    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=lr)
    history = []
    for _ in range(steps):
        out = module.losses(batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        history.append({k: v.item() for k, v in out.items()})
    return history


@pytest.fixture(scope="session")
def medical_store(tmp_path_factory):
    """The K-BERT Medical KG built once for the session."""
    from kept.kg import open_store
    from kept.kg.build import BuildOptions, build_store

    out = tmp_path_factory.mktemp("stores") / "medical"
    build_store([(need_data("kg", "Medical.spo"), None)], out, BuildOptions(progress=False))
    return open_store(out)


@pytest.fixture(scope="session")
def trex_sample(tmp_path_factory):
    """The shipped T-REx KG store and its first 600 sentences linked against it: (store dir, corpus dir)."""
    import gzip
    import itertools

    from kept.data.build import CorpusOptions, build_linked_corpus
    from kept.kg.build import BuildOptions, build_store

    root = tmp_path_factory.mktemp("trex_sample")
    build_store([(ROOT / "kg_data" / "trex" / "trex_facts.nt.gz", None)], root / "store", BuildOptions(progress=False))
    with gzip.open(ROOT / "kg_data" / "trex" / "sentences.jsonl.gz", "rt") as f:
        (root / "sentences.jsonl").write_text("".join(itertools.islice(f, 600)))
    build_linked_corpus(root / "sentences.jsonl", root / "corpus", ROOT / "kg_data" / "vocab" / "bert-base-uncased-vocab.txt",
                        root / "store", CorpusOptions(phrases=None), workers=0, progress=False)
    return root / "store", root / "corpus"
