"""Fixtures shared by the unit tests."""

from tests.unit.acd_world import acd_world  # noqa: F401 (the ACD without Asterisk)
from tests.unit.strategy_world import shipped  # noqa: F401 (the shipped strategies by id)
