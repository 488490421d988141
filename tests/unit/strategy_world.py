"""What the strategy tests share: the site a strategy is checked against (the sandbox's team
and hotline numbers) and the shipped strategies by id (the ``shipped`` fixture)."""

from __future__ import annotations

import pytest

from callcenter.config import REPO_ROOT
from callcenter.dialer.rules import SANDBOX_NUMBERS
from callcenter.strategies.load import Site, load_strategies
from callcenter.strategies.model import Strategy

SITE = Site(frozenset({"general"}), SANDBOX_NUMBERS)


@pytest.fixture(scope="module")
def shipped() -> dict[str, Strategy]:
    """The shipped strategies (``strategies/*.yaml``) by id, checked against ``SITE``."""
    return {s.id: s for s in load_strategies(REPO_ROOT / "strategies", site=SITE)}
