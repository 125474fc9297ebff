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


@pytest.fixture(scope="session")
def medical_store(tmp_path_factory):
    """The K-BERT Medical KG built once for the session."""
    from kept.kg import open_store
    from kept.kg.build import BuildOptions, build_store

    out = tmp_path_factory.mktemp("stores") / "medical"
    build_store([(need_data("kg", "Medical.spo"), None)], out, BuildOptions(progress=False))
    return open_store(out)
