"""Fixtures of the report tests: the shared store (built once) and the page parser."""

from __future__ import annotations

import pytest
from store_builder import Store, build_store, parse_page


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Store:
    return build_store(tmp_path_factory.mktemp("store"))


@pytest.fixture
def parse():
    return parse_page
