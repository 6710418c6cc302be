"""Fixtures of the report tests: the shared stores (built once each) and the page parser."""

from __future__ import annotations

import pytest
from racing_builder import RaceStore, build_race_store
from store_builder import Store, build_store, parse_page


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Store:
    return build_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def race_store(tmp_path_factory) -> RaceStore:
    return build_race_store(tmp_path_factory.mktemp("race-store"))


@pytest.fixture
def parse():
    return parse_page
