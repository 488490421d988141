"""The operations HTTP server: one FastAPI app, served by uvicorn inside the engine's own loop.

``make_app`` builds the app: ``/metrics`` (Prometheus' text format), ``/healthz``, and whatever
routers and mounts the caller adds (the administration API goes under ``/api``).
``OpsServer`` serves it as a task of the engine's loop:

- the engine owns SIGINT and SIGTERM (``engine.run_engine``): uvicorn's own handlers would take
  them over, so ``capture_signals`` is a no-op here;
- the listening socket is bound before uvicorn starts (uvicorn would ``sys.exit`` on a port in
  use): a taken port is a ``ConfigError`` that says which setting to change, and port 0 gives
  any free port, which ``OpsServer.port`` tells;
- uvicorn configures no logging (the engine's applies) and writes no access log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from callcenter.errors import ConfigError
from callcenter.problem import http_code, problem_response

__all__ = ["OpsServer", "make_app"]

log = logging.getLogger(__name__)

#: Prometheus' text format 0.0.4: every scraper reads it (our names need nothing newer)
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: seconds open connections get to finish when the server stops
GRACEFUL_S = 2
#: seconds the server may take to start or stop before it is given up
START_STOP_S = 10.0


def make_app(*, metrics: Callable[[], Awaitable[bytes]] | None = None,
             routers: Sequence[tuple[str, APIRouter]] = (),
             mounts: Mapping[str, ASGIApp] | None = None,
             title: str = "callcenter operations") -> FastAPI:
    """The operations app: ``metrics`` gives the exposition for ``GET /metrics``; each
    ``(prefix, router)`` is included under its prefix; ``mounts`` are whole ASGI apps."""
    app = FastAPI(title=title)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """What no route or mount takes (an unknown path; one a mount's pattern cannot match,
        such as a control character in /api/...) answers in the API's one error shape."""
        return problem_response(exc.status_code, http_code(exc.status_code), str(exc.detail),
                                headers=exc.headers)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response(b"ok\n", media_type="text/plain")

    if metrics is not None:
        scrape = metrics

        @app.get("/metrics", include_in_schema=False)
        async def exposition() -> Response:
            return Response(await scrape(), media_type=METRICS_CONTENT_TYPE)

    for prefix, router in routers:
        app.include_router(router, prefix=prefix)
    for path, sub in (mounts or {}).items():
        app.mount(path, sub)
    return app


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: the engine owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OpsServer:
    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (the one chosen when the settings said 0)."""
        if self._port is None:
            raise RuntimeError("the operations server is not started")
        return self._port

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the operations server is already started")
        sock = await _listen(self.host, self.requested_port)
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off",
                                loop="none", http="h11", ws="none", proxy_headers=False,
                                server_header=False, timeout_graceful_shutdown=GRACEFUL_S)
        server = self._server = _Server(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="ops-http")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_STOP_S
        # uvicorn says "started" by a flag only: look at it until it is up (a few ms)
        while not server.started:
            if self._task.done() or loop.time() > deadline:
                await self.close()
                raise ConfigError(f"ops: the HTTP server on {self.host}:{self._port} did not"
                                  " start")
            await asyncio.sleep(0.01)
        log.info("operations HTTP on %s:%d (/metrics)", self.host, self._port)

    async def close(self) -> None:
        server, task = self._server, self._task
        self._server, self._task = None, None
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), START_STOP_S)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:
            log.exception("the operations HTTP server failed")


async def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (resolved off the loop's thread)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        return socket.create_server(address, family=family, backlog=128)
    except OSError as exc:
        raise ConfigError(f"ops: cannot listen on {host}:{port} ({exc}); set ops.port (0: any"
                          " free port) or ops.enabled = false") from exc
