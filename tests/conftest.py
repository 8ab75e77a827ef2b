import pytest


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory):
    """One prediction cache for every test that runs the tiny benchmark, so its zoo trains once."""
    return tmp_path_factory.mktemp("bench-cache")
