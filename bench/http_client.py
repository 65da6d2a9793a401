"""A lean HTTP/1.1 keep-alive client for the load of the benchmarks.

On this 2-core machine the load generator shares the CPU with the services:
httpx spent about 7.8 ms of CPU per request at 32 connections, more than the
partner process spent answering it (bench/profile.py), so the figures
measured the client. This one writes a request and reads the answer on a
plain asyncio stream, one connection per concurrent worker: no pool, no
redirects, no decoding beyond the status line, the headers and a
Content-Length or chunked body.

A connection idle for longer than `IDLE_REOPEN_S` is reopened before it is
used: uvicorn closes keep-alive connections after 5 s, and a request written
into a connection the server is closing is lost without an answer (the
benchmark's phases leave connections idle while they wait for projections).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: Below uvicorn's keep-alive timeout (`--timeout-keep-alive`, 5 s by default).
IDLE_REOPEN_S = 3.0


class HttpError(Exception):
    """The connection broke or the server answered something unparsable."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive connection; not for concurrent use (one per worker)."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        url = urlsplit(base_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self.headers = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._last_used = 0.0

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()
        self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        body = b"" if json_body is None else json.dumps(json_body).encode()
        fields = {**self.headers, **(headers or {}), "Content-Length": str(len(body))}
        if json_body is not None:
            fields["Content-Type"] = "application/json"
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        if self._writer is not None and time.monotonic() - self._last_used > IDLE_REOPEN_S:
            await self.close()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(head.encode("latin-1") + b"\r\n" + body)
        try:
            return await self._read(self._reader)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            await self.close()
            raise HttpError(f"{method} {path}: {exc!r}") from exc
        finally:
            self._last_used = time.monotonic()

    async def _read(self, reader: asyncio.StreamReader) -> Answer:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            body = b"".join(chunks)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Answer(status, headers, body)


class Pool:
    """Connections handed out one request at a time; a new one is opened
    when all are busy (open-loop load needs as many as requests in flight)."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.headers = headers or {}
        self._idle: list[Connection] = []
        self._all: list[Connection] = []

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if self._idle:
            conn = self._idle.pop()
        else:
            conn = Connection(self.base_url, self.headers)
            self._all.append(conn)
        try:
            return await conn.request(method, path, json_body=json_body, headers=headers)
        finally:
            self._idle.append(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._idle.clear()
        self._all.clear()


class Spread:
    """Requests spread round-robin over several pools (one per API process
    of the same service, as behind a Kubernetes Service)."""

    def __init__(self, pools: list[Pool]) -> None:
        self.pools = pools
        self._next = 0

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        pool = self.pools[self._next % len(self.pools)]
        self._next += 1
        return await pool.request(method, path, json_body=json_body, headers=headers)

    async def close(self) -> None:
        for pool in self.pools:
            await pool.close()
