"""Shared fixtures for the data tests: the Hub-schema fixture files and a private embedded-corpus cache."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``fixtures/<registry name>/<split>.jsonl|.parquet``: rows in the real Hub schemas."""
    return FIXTURES


@pytest.fixture(autouse=True, scope="session")
def embedded_cache(tmp_path_factory):
    """Generate the embedded corpus into a temporary cache, not the user's ~/.cache."""
    path = tmp_path_factory.mktemp("modern_llm_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODERN_LLM_CACHE", str(path))
        yield path
