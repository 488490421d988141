"""The administration API against its own OpenAPI document (schemathesis): every operation,
with generated valid and invalid input, answers as documented (status codes, content types,
response bodies) and never with a server error; schemathesis' own checks include that every
operation refuses a request without its token (``ignored_auth``).

The API runs in a thread of its own (its own event loop and database connection) on loopback,
as the engine serves it; schemathesis calls it over HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from callcenter.config import REPO_ROOT

from .admin_world import CONTRACT_TOKEN, AdminWorld, admin_world

if TYPE_CHECKING:
    from schemathesis.specs.openapi.schemas import OpenApiCase


class _ServedApi:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ready = threading.Event()
        self.world: AdminWorld | None = None
        self.loop = asyncio.new_event_loop()
        self.stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the test
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        self.stop = asyncio.Event()
        async with admin_world(self.tmp) as world:
            self.world = world
            self.ready.set()
            await self.stop.wait()

    def __enter__(self) -> AdminWorld:
        self.thread.start()
        self.ready.wait(60)
        if self.world is None:
            raise RuntimeError(f"the API did not start: {self.error!r}")
        return self.world

    def __exit__(self, *exc: object) -> None:
        assert self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminWorld]:
    with _ServedApi(tmp_path_factory.mktemp("admin-contract")) as world:
        yield world


#: the contract is the committed document (test_admin_api checks the served one is the same)
schema = schemathesis.openapi.from_path(REPO_ROOT / "docs" / "admin-api.openapi.json")


@schema.auth()
class AdminToken:
    """Schemathesis applies the token itself, so it knows a request is authenticated (its
    ``ignored_auth`` check still sends requests without it)."""

    def get(self, case: OpenApiCase, context: schemathesis.AuthContext) -> str:
        return CONTRACT_TOKEN

    def set(self, case: OpenApiCase, data: str,
            context: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {data}"  # as schemathesis' own bearer auth


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: OpenApiCase,
                                               served: AdminWorld) -> None:
    case.call_and_validate(base_url=served.base_url)

