"""Connection-abuse defences for a listening socket served by aiohttp.

aiohttp's server has no deadline on a request head or body: a client that
sends half a head, or a body that stalls, holds its connection (and the
body's buffer) for ever. So each connection is accepted by a
`GuardedConnection`, which hands the bytes to aiohttp's `RequestHandler` and
tells its `ListenerGuard` what the connection is doing:

```
 NEW ──bytes──> (still NEW, head under way) ──head done──> HANDLER ──response──> IDLE
  │                                                          │ body deadline      │
  └ head deadline from connect        IDLE ──first byte──> HEAD (head deadline)  └ idle deadline
```

`connection_middleware` (in both apps) marks a request reaching its handler
and finishing. While a handler runs, the body deadline counts only time in
which the body is unfinished and the socket is being read (aiohttp stops
reading while a handler does not consume the body: not the client's fault).
Caps: a connection over the per-address cap is closed before anything is
read; at the total cap the connection that has waited longest without a
request in a handler (idle, or still sending its head) makes room, so a
health check still gets in while idle attackers hold slots. What was closed
for what is logged once a minute per kind with counts (`AbuseLog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from typing import Any, Literal

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler

from node.web.limits import Abuse, AbuseLog, ConnectionLimits, abuse_texts, address_key
from node.web.memory import release_freed_memory

log = logging.getLogger(__name__)
NEW, HEAD, HANDLER, IDLE = "new", "head", "handler", "idle"
#: Why a connection is closed when it is not abuse: a keep-alive client idle too long.
IDLE_TIMEOUT: Literal["idle timeout"] = "idle timeout"
Reason = Abuse | Literal["idle timeout"]


class GuardedConnection(asyncio.Protocol):
    """One accepted connection: admitted or refused, then tracked while aiohttp serves it."""

    def __init__(self, guard: ListenerGuard, server: web.Server) -> None:
        self.guard = guard
        self._server = server
        self.handler: RequestHandler | None = None
        self.transport: asyncio.Transport | None = None
        self.address = ""
        self.state = NEW
        self.since = 0.0  # when the current state began (loop time)
        self.got_bytes = False  # of the request head under way
        self.body: StreamReader | None = None  # of the request in a handler
        self.body_used_s = 0.0  # time the body was due and being read
        self.write_paused_at: float | None = None
        self.closed = False  # by the guard, which has already counted why

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection (or close it at once) and start aiohttp's handler on it."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = address_key(str(peer[0])) if isinstance(peer, tuple) else str(peer)
        if self.guard.admit(self):
            self.handler = self._server()
            self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Note the client's activity, then let aiohttp parse the bytes."""
        if self.handler is not None:
            self.guard.saw_bytes(self)
            self.handler.data_received(data)

    def eof_received(self) -> None:
        """The client finished sending: the transport closes when we have answered."""
        if self.handler is not None:
            self.handler.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the connection and let aiohttp clean up its request."""
        self.guard.forget(self)
        if self.handler is not None:
            self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        """The client is not reading what we send: start its clock, pause aiohttp."""
        self.write_paused_at = self.guard.now()
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        """The client reads again."""
        self.write_paused_at = None
        if self.handler is not None:
            self.handler.resume_writing()


class ListenerGuard:
    """Deadlines and caps for every connection of one listening socket."""

    def __init__(self, name: str, limits: ConnectionLimits, report_every_s: float = 60.0) -> None:
        self.name = name
        self.limits = limits
        self.abuse = AbuseLog(name, abuse_texts(limits), report_every_s)
        self._loop = asyncio.get_running_loop()
        self._connections: set[GuardedConnection] = set()
        self._per_address: Counter[str] = Counter()
        # Connections with no request in a handler, longest-waiting first: evicted in turn.
        self._evictable: dict[GuardedConnection, None] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._gone = False  # whether a connection went away since the last sweep

    def now(self) -> float:
        """The loop's monotonic time."""
        return self._loop.time()

    def admit(self, conn: GuardedConnection) -> bool:
        """Take `conn` in, making room at the total cap; False (and closed) if refused."""
        now = self.now()
        if self._per_address[conn.address] >= self.limits.max_connections_per_address:
            return self._refuse(conn, Abuse.OVER_ADDRESS_CAP, now)
        if len(self._connections) >= self.limits.max_connections:
            if not self._evictable:
                return self._refuse(conn, Abuse.REFUSED_FULL, now)
            oldest = next(iter(self._evictable))
            self.close(oldest, Abuse.EVICTED)
        self._connections.add(conn)
        self._per_address[conn.address] += 1
        self._enter(conn, NEW, now)
        return True

    def _refuse(self, conn: GuardedConnection, kind: Abuse, now: float) -> bool:
        conn.closed = True
        self.abuse.note(kind, conn.address, now)
        assert conn.transport is not None
        conn.transport.abort()
        return False

    def _enter(self, conn: GuardedConnection, state: str, now: float) -> None:
        conn.state, conn.since = state, now
        conn.got_bytes = False
        self._evictable.pop(conn, None)
        if state != HANDLER:
            self._evictable[conn] = None  # at the end: it has waited least

    def saw_bytes(self, conn: GuardedConnection) -> None:
        """Bytes arrived: after an idle period they start a new request head and its deadline."""
        if conn.state == IDLE:
            self._enter(conn, HEAD, self.now())
        conn.got_bytes = True

    def request_started(self, conn: GuardedConnection, body: StreamReader) -> None:
        """A request reached its handler: its body (if unfinished) is now on the clock."""
        conn.body, conn.body_used_s = body, 0.0
        self._enter(conn, HANDLER, self.now())

    def request_finished(self, conn: GuardedConnection) -> None:
        """The handler answered: the connection idles until its next request."""
        conn.body = None
        if conn in self._connections:
            self._enter(conn, IDLE, self.now())

    def forget(self, conn: GuardedConnection) -> None:
        """The connection is gone."""
        if conn in self._connections:
            self._gone = True
            self._connections.discard(conn)
            self._evictable.pop(conn, None)
            self._per_address[conn.address] -= 1
            if self._per_address[conn.address] <= 0:
                del self._per_address[conn.address]

    def close(self, conn: GuardedConnection, why: Reason) -> None:
        """Close `conn`, counting `why` unless it is an idle keep-alive client's timeout."""
        conn.closed = True
        self.forget(conn)
        if conn.transport is None:
            return
        if not isinstance(why, Abuse):
            log.debug("%s: closed an idle keep-alive connection", self.name)
            if not conn.transport.get_write_buffer_size():
                conn.transport.close()  # a polite end: the client may reconnect
                return
            conn.transport.abort()  # close() would wait for a client that does not read
        else:
            self.abuse.note(why, conn.address, self.now())
            conn.transport.abort()  # nothing buffered for an abuser is worth sending

    def overdue(self, conn: GuardedConnection, now: float, elapsed: float) -> Reason | None:
        """Why `conn` must close now, or None to keep it; `elapsed` is since the last check."""
        limits = self.limits
        if conn.write_paused_at is not None and now - conn.write_paused_at > limits.body_timeout_s:
            return Abuse.SEND_TIMEOUT
        if conn.state == IDLE:  # or still sending its answer: then it is not idle
            sending = conn.write_paused_at is not None
            return (
                IDLE_TIMEOUT if not sending and now - conn.since > limits.idle_timeout_s else None
            )
        if conn.state != HANDLER:
            if now - conn.since <= limits.head_timeout_s:
                return None
            silent = conn.state == NEW and not conn.got_bytes
            return Abuse.SILENT if silent else Abuse.HEAD_TIMEOUT
        body, transport = conn.body, conn.transport
        if body is None or body.is_eof() or transport is None or not transport.is_reading():
            return None
        conn.body_used_s += elapsed
        return Abuse.BODY_TIMEOUT if conn.body_used_s > limits.body_timeout_s else None

    def sweep(self, elapsed: float) -> int:
        """Close every overdue connection; `elapsed` is the time since the last sweep."""
        now = self.now()
        closed = 0
        for conn in list(self._connections):
            why = self.overdue(conn, now, elapsed)
            if why is not None:
                self.close(conn, why)
                closed += 1
        for level, line in self.abuse.due(now):
            log.log(level, "%s", line)
        return closed

    async def _sweep_forever(self) -> None:
        every = self.limits.sweep_s
        last = self.now()
        release = False
        while True:
            await asyncio.sleep(every)
            now = self.now()
            try:
                if release:  # a sweep after connections went: their buffers are freed by now
                    release_freed_memory()
                release, self._gone = self._gone, False
                self.sweep(now - last)
            except Exception:
                log.exception("%s: checking connection deadlines failed", self.name)
            last = now

    def start(self, sockets: list[Any]) -> None:
        """Start checking deadlines; count accept errors on `sockets` instead of logging each."""
        self._sweeper = asyncio.create_task(self._sweep_forever(), name=f"guard {self.name}")
        AcceptErrors.install(self._loop).watch(sockets, self)

    async def stop(self) -> None:
        """Stop checking deadlines; log what is still counted."""
        AcceptErrors.install(self._loop).unwatch(self)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for level, line in self.abuse.drain():
            log.log(level, "%s", line)


class AcceptErrors:
    """The loop's exception handler, counting `accept()` failures on guarded sockets.

    Out of file descriptors, asyncio logs one line per failed accept, up to a
    hundred per loop turn: hundreds of megabytes of log in a minute.
    """

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, previous: Any) -> None:
        self._previous = previous
        self._guards: dict[int, ListenerGuard] = {}

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> AcceptErrors:
        """The loop's `AcceptErrors`, installed in front of its handler if not yet there."""
        handler = loop.get_exception_handler()
        if not isinstance(handler, AcceptErrors):
            handler = cls(handler)
            loop.set_exception_handler(handler)
        return handler

    def watch(self, sockets: list[Any], guard: ListenerGuard) -> None:
        """Count accept errors on `sockets` in `guard`'s abuse log."""
        for sock in sockets:
            self._guards[sock.fileno()] = guard

    def unwatch(self, guard: ListenerGuard) -> None:
        """Stop counting for `guard` (its sockets are closing)."""
        self._guards = {fd: g for fd, g in self._guards.items() if g is not guard}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Count an accept error on a watched socket; pass anything else on."""
        sock = context.get("socket")
        guard = self._guards.get(sock.fileno()) if sock is not None else None
        if guard is not None and context.get("message") == self.MESSAGE:
            guard.abuse.note(Abuse.ACCEPT_ERROR, None, loop.time())
        elif self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)


@web.middleware
async def connection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the guard a request is in its handler; end a request whose client left quietly.

    A client that closes its connection in the middle of a body makes the
    handler's read fail: that is counted (or logged at debug level when the
    app is not guarded), never logged with a traceback.
    """
    transport = request.transport
    if transport is None or transport.is_closing():
        # Closed between its head and its handler (evicted, timed out, or reset by the
        # client): aiohttp would run the handler anyway, and its first read fail loudly.
        log.debug("the client left before %s %s reached its handler", request.method, request.path)
        return web.Response(status=400, text="the client closed the connection")
    protocol = transport.get_protocol()
    conn = protocol if isinstance(protocol, GuardedConnection) else None
    if conn is not None:
        conn.guard.request_started(conn, request.content)
    try:
        return await handler(request)
    except ConnectionResetError as e:
        if request.transport is not None and not request.transport.is_closing():
            raise  # not this client's connection (e.g. a peer's, in a lookup)
        # The body's reader keeps this exception, and its traceback the handler's frames
        # with what they read: a cycle that would hold the buffers until a full collection.
        e.__traceback__ = None
        _client_left(request, conn)
        return web.Response(status=400, text="the client closed the connection")
    finally:
        if conn is not None:
            conn.guard.request_finished(conn)


def _client_left(request: web.Request, conn: GuardedConnection | None) -> None:
    mid_body = not request.content.is_eof()
    if conn is not None and mid_body and not conn.closed:
        conn.guard.abuse.note(Abuse.ABORTED_BODY, conn.address, conn.guard.now())
    else:
        log.debug("the client left during %s %s", request.method, request.path)


#: Connections accepted per turn of the event loop. asyncio takes this from the
#: listen backlog; a flood accepted 1,024 at a time would evict a health check
#: before its head, a turn later, is read. So it is kept small ...
ACCEPT_BATCH = 64
#: ... and the kernel's queue of connections not yet accepted set apart, larger.
LISTEN_BACKLOG = 1024


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are accepted through a `ListenerGuard`."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ListenerGuard) -> None:
        super().__init__(runner, backlog=ACCEPT_BATCH)
        self._guard, self._host, self._port = guard, host, port

    @property
    def name(self) -> str:
        """The site's URL."""
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Listen, and start the guard's deadline checks."""
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: GuardedConnection(self._guard, server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
        )
        for listening in self._server.sockets:
            # listen() again on the same socket (through a duplicate descriptor)
            # only lengthens the kernel's queue; asyncio's batch stays as it was.
            with socket.fromfd(listening.fileno(), listening.family, listening.type) as dup:
                dup.listen(LISTEN_BACKLOG)
        self._guard.start(list(self._server.sockets))

    async def stop(self) -> None:
        """Stop listening and checking deadlines (the runner then closes the connections)."""
        await self._guard.stop()
        await super().stop()


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    limits: ConnectionLimits,
    name: str,
    report_every_s: float = 60.0,
) -> web.AppRunner:
    """Serve `app` on HOST:PORT with the connection defences; `runner.cleanup()` stops it.

    Raises:
        OSError: the address cannot be served (the runner is cleaned up first).
    """
    # aiohttp's own keep-alive timer is a backstop behind the guard's deadlines.
    backstop = limits.idle_timeout_s + limits.head_timeout_s
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=backstop)
    await runner.setup()
    guard = ListenerGuard(name, limits, report_every_s)
    try:
        await GuardedSite(runner, host, port, guard).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
