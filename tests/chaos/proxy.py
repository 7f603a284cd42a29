"""A small TCP proxy on loopback that the nemesis can slow down or cut.

``Proxy(target_port)`` listens on a free port of 127.0.0.1 and copies bytes both ways to
``127.0.0.1:target_port``. It runs its own asyncio loop in a daemon thread, so a synchronous test
and an asynchronous workload can both sit behind it. Modes:

- ``pass``: copy at once;
- ``delay(seconds)``: hold every chunk for ``seconds`` before passing it on (a slow link: a client
  with a shorter timeout sees a timeout, an operation whose outcome is *unknown*);
- ``cut()``: close every open connection and refuse new ones (a partition) until ``heal()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

from qilian.kit.anvil import free_port

CHUNK = 65536


@dataclass
class ProxyStats:
    connections: int = 0
    refused: int = 0
    cut: int = 0  # connections closed by a cut


@dataclass
class Proxy:
    target_port: int
    port: int = field(default_factory=free_port)
    delay: float = 0.0
    stats: ProxyStats = field(default_factory=ProxyStats)
    _refusing: bool = False
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # control (thread-safe) -----------------------------------------------------------------

    def start(self) -> Proxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port)
            )
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def set_delay(self, seconds: float) -> None:
        self.delay = seconds

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._refusing = True
        self._call(self._close_all)

    def heal(self) -> None:
        self._refusing = False
        self.delay = 0.0

    def stop(self) -> None:
        if self._loop is None:
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def _call(self, coro_fn: object) -> None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro_fn(), self._loop)  # type: ignore[operator]
        future.result(10)

    # the loop's side -----------------------------------------------------------------------

    async def _close_all(self) -> None:
        for writer in list(self._open):
            self.stats.cut += 1
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._open.clear()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._close_all()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._refusing:
            self.stats.refused += 1
            client_w.transport.abort()
            return
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            self.stats.refused += 1
            client_w.transport.abort()
            return
        self.stats.connections += 1
        self._open.update((client_w, upstream_w))
        try:
            await asyncio.gather(self._pipe(client_r, upstream_w), self._pipe(upstream_r, client_w))
        finally:
            for writer in (client_w, upstream_w):
                self._open.discard(writer)
                with contextlib.suppress(Exception):
                    writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                if self.delay > 0:
                    await asyncio.sleep(self.delay)
                if self._refusing:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()
