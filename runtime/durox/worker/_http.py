"""A minimal HTTP/1.1 server on asyncio streams, for probes and scrapes.

Three GET endpoints answered by a kubelet and a Prometheus scraper do not justify a web
framework in every worker image. Each request is read with a deadline, answered once and the
connection closed, so a slow or broken client can hold nothing open. Connection handlers are
tracked and cancelled on close, because the event loop does not wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0
MAX_REQUEST_HEAD = 16 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Route = Callable[[], Awaitable[Response]]


class HttpServer:
    """`server = await HttpServer.start(host, port, {"/healthz": handler})`."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, host: str, port: int, routes: dict[str, Route]) -> HttpServer:
        server = cls(routes)
        server._server = await asyncio.start_server(server._serve, host, port)
        return server

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for t in list(self._handlers):
            t.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            response, head_only = await self._respond(reader)
            status = HTTPStatus(response.status)
            head = (
                f"HTTP/1.1 {status.value} {status.phrase}\r\n"
                f"Content-Type: {response.content_type}\r\n"
                f"Content-Length: {len(response.body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode("latin-1")
            writer.write(head if head_only else head + response.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[Response, bool]:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        except TimeoutError:
            return Response(408, b"request timeout\n"), False
        except asyncio.LimitOverrunError:
            return Response(431, b"request head too large\n"), False
        if len(raw) > MAX_REQUEST_HEAD:
            return Response(431, b"request head too large\n"), False
        parts = raw.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return Response(400, b"bad request\n"), False
        method, target, _ = parts
        path = target.split("?", 1)[0]
        route = self.routes.get(path)
        if route is None:
            return Response(404, b"not found\n"), False
        if method not in ("GET", "HEAD"):
            return Response(405, b"method not allowed\n"), False
        try:
            return await route(), method == "HEAD"
        except Exception:
            log.exception("handler for %s failed", path)
            return Response(500, b"internal error\n"), False
