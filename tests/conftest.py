"""Shared fixtures: one generated, ingested region reused by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from openlead.data.ingest import ingest
from openlead.data.synthetic import generate

REGION_BENES = 2500
REGION_SEED = 21


@pytest.fixture(scope="session")
def region_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated region (2,500 beneficiaries, claims 2022-2027) ingested into a workspace."""
    root = tmp_path_factory.mktemp("region")
    generate(root / "input", REGION_BENES, REGION_SEED)
    ingest(root / "input", root / "ws")
    return root / "ws"
