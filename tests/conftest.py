import pytest


@pytest.fixture(scope="session")
def bench_store(tmp_path_factory):
    """One prediction-store folder for every test that runs the tiny benchmark, so its zoo trains once."""
    return tmp_path_factory.mktemp("bench-store")
