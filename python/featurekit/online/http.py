"""A small HTTP/1.1 server for `featurekit serve`: one event loop, keep-alive, bounded.

Why not http.server: it runs a thread per connection with no timeouts and no cap (1,100
idle connections starved every new request; a body never sent held its thread forever),
parses headers through the email package (most of a batch request's time) and answers
methods it does not know with an HTML 501. A lookup takes microseconds and holds the GIL,
so threads buy nothing: here one loop serves every connection, requests on a connection
in order.

Limits: at most `max_connections` open (never more than the open-files limit allows: the
least recently used idle connection is closed to make room, else the newcomer gets a 503);
a request's line and headers, and then its body, must each arrive within
`client_timeout` seconds (else 408 and close); an idle keep-alive connection is closed
after `idle_timeout` seconds. Only Content-Length bodies (no chunked uploads), at most
`max_body` bytes; two Content-Length headers are a 400.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
import socket
import time
from typing import Callable, NamedTuple

log = logging.getLogger("featurekit.online")

REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 411: "Length Required", 413: "Content Too Large", 422: "Unprocessable Content",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "HTTP Version Not Supported",
}
MAX_HEAD = 16 << 10  # request line and headers
RESERVED_FILES = 256  # open files kept for all but client connections (a mapped snapshot holds one a file)
SWEEP_SECONDS = 0.25  # how often deadlines are checked
IN_FLIGHT = 32  # connections being accepted or closed past max_connections (within RESERVED_FILES)


class Limits(NamedTuple):
    max_connections: int = 1000
    client_timeout: float = 10.0  # for a request's head, then for its body
    idle_timeout: float = 30.0  # between requests on a keep-alive connection
    max_body: int = 1 << 20


DEFAULT_LIMITS = Limits()


class Request(NamedTuple):
    method: str
    path: str  # without the query string
    headers: dict[str, str]  # lower-case names
    body: bytes


class Response(NamedTuple):
    status: int
    content_type: str
    body: bytes
    headers: tuple = ()  # more (name, value) pairs


def json_error(status: int, message: str) -> Response:
    return Response(status, "application/json", json.dumps({"error": message}).encode())


class _ProtocolError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def serve(sock: socket.socket, app: Callable[[Request], Response], limits: Limits = DEFAULT_LIMITS, on_stop=None) -> None:
    """Serves `app` on the listening socket until SIGTERM or SIGINT; then calls on_stop."""
    asyncio.run(_Server(sock, app, limits).run(on_stop))


def connection_cap(wanted: int) -> int:
    """`wanted`, or fewer when the open-files limit (raised to its hard limit) is lower:
    accepting past it fails in a loop that starves every request."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return max(1, min(wanted, soft - min(RESERVED_FILES, soft // 4))) if soft != resource.RLIM_INFINITY else wanted


class _Server:
    """Accepts connections itself, one at a time: asyncio's own accept takes a burst of up
    to the backlog at once, past any cap, into the open-files limit."""

    def __init__(self, sock, app, limits: Limits):
        self.sock, self.app = sock, app
        self.limits = limits._replace(max_connections=connection_cap(limits.max_connections))
        self.connections: dict[_Connection, None] = {}  # in order of last activity
        self.pending = 0  # accepted, or closed, and not yet through asyncio: each holds a file
        self.accepting = False
        self.loop = None

    async def run(self, on_stop) -> None:
        self.loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, stopped.set)
        self.sock.setblocking(False)
        self.resume_accepting()
        sweeper = self.loop.create_task(self._sweep())
        try:
            await stopped.wait()
        finally:
            sweeper.cancel()
            self.pause_accepting()
            self.sock.close()
            for connection in list(self.connections):
                connection.close()
            if on_stop is not None:
                on_stop()

    def pause_accepting(self) -> None:
        if self.accepting:
            self.loop.remove_reader(self.sock.fileno())
            self.accepting = False

    def resume_accepting(self) -> None:
        if not self.accepting and self.sock.fileno() >= 0:
            self.loop.add_reader(self.sock.fileno(), self._accept)
            self.accepting = True

    def _accept(self) -> None:
        for _ in range(64):  # then the loop answers requests again
            if len(self.connections) + self.pending >= self.limits.max_connections + IN_FLIGHT:
                self.pause_accepting()  # until a connection is gone (released)
                return
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of files or memory after all: wait a little
                log.warning("cannot accept a connection: %s", e)
                self.pause_accepting()
                self.loop.call_later(0.1, self.resume_accepting)
                return
            self.pending += 1
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.loop.create_task(self.loop.connect_accepted_socket(lambda: _Connection(self), sock))

    def admit(self, connection: "_Connection") -> bool:
        """Whether a new connection may stay (else it is answered 503 and closed): at the
        cap, the least recently active idle connection is closed for it."""
        self.pending -= 1
        if len(self.connections) >= self.limits.max_connections:
            idle = next((c for c in self.connections if c.state == "idle"), None)
            if idle is None:
                return False
            idle.close()
        self.connections[connection] = None
        return True

    def released(self, connection: "_Connection", counted: bool) -> None:
        """A connection's file is closed."""
        self.connections.pop(connection, None)
        if counted:
            self.pending -= 1
        self.resume_accepting()

    def touch(self, connection: "_Connection") -> None:
        self.connections.pop(connection, None)
        self.connections[connection] = None

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = time.monotonic()
            for connection in [c for c in self.connections if c.deadline < now]:
                connection.timed_out()


class _Connection(asyncio.Protocol):
    """One client connection: reads requests, answers them in order."""

    def __init__(self, server: _Server):
        self.server, self.limits = server, server.limits
        self.buffer = bytearray()
        self.head: tuple | None = None  # (method, path, headers, body length, keep alive) once parsed
        self.state = "idle"  # idle -> head -> body -> idle, or closed
        self.deadline = time.monotonic() + self.limits.idle_timeout
        self.paused = False  # the client is not reading its responses
        self.transport = None
        self.peer = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        if not self.server.admit(self):
            self._write(json_error(503, "too many connections; retry shortly"), keep_alive=False)
            self.close()

    def connection_lost(self, exc) -> None:
        if exc is not None and self.state != "closed":
            log.info("client %s went away: %s", _address(self.peer), exc)
        closing, self.state = self.state == "closed", "closed"
        self.server.released(self, counted=closing)

    def data_received(self, data: bytes) -> None:
        if self.state == "idle":
            self.state, self.deadline = "head", time.monotonic() + self.limits.client_timeout
        self.buffer += data
        self._process()

    def pause_writing(self) -> None:
        self.paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.state != "closed":
            self.transport.resume_reading()
            self._process()

    def timed_out(self) -> None:
        if self.state in ("head", "body"):
            self._write(json_error(408, f"the request did not arrive within {self.limits.client_timeout:g} s"), keep_alive=False)
        self.close()

    def close(self) -> None:
        """Closes the connection; its file is released a moment later (connection_lost)."""
        if self.state != "closed":
            self.state = "closed"
            self.server.connections.pop(self, None)
            self.server.pending += 1
            self.transport.close()

    def _process(self) -> None:
        while self.state != "closed" and not self.paused:
            if self.head is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > MAX_HEAD:
                        self._fail(431, f"request line and headers are over {MAX_HEAD} bytes")
                    return
                try:
                    self.head = _parse_head(bytes(self.buffer[:end]), self.limits.max_body)
                except _ProtocolError as e:
                    self._fail(e.status, str(e))
                    return
                del self.buffer[: end + 4]
                self.state, self.deadline = "body", time.monotonic() + self.limits.client_timeout
                if self.head[2].get("expect", "").lower() == "100-continue" and len(self.buffer) < self.head[3]:
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            method, path, headers, length, keep_alive = self.head
            if len(self.buffer) < length:
                return
            body = bytes(self.buffer[:length])
            del self.buffer[:length]
            self.head = None
            try:
                response = self.server.app(Request(method, path, headers, body))
            except Exception as e:  # the app answers its own errors; this is a bug in it
                log.exception("internal error answering %s %s", method, path)
                response = json_error(500, f"internal error: {type(e).__name__}")
            self._write(response, keep_alive, head_only=method == "HEAD")
            if not keep_alive:
                self.close()
                return
            self.server.touch(self)
            self.state = "head" if self.buffer else "idle"
            self.deadline = time.monotonic() + (self.limits.client_timeout if self.buffer else self.limits.idle_timeout)

    def _fail(self, status: int, message: str) -> None:
        """A request that cannot be read: answer and close (what follows is not a request)."""
        self._write(json_error(status, message), keep_alive=False)
        self.close()

    def _write(self, response: Response, keep_alive: bool, head_only: bool = False) -> None:
        if self.transport.is_closing():
            return
        lines = [
            f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Error')}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in response.headers]
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.transport.write(head if head_only else head + response.body)


def _parse_head(head: bytes, max_body: int) -> tuple:
    """(method, path, headers, body length, keep alive) of a request's line and headers."""
    try:
        text = head.decode("latin-1")
        line, *fields = text.split("\r\n")
        method, target, version = line.split(" ")
    except ValueError:
        raise _ProtocolError(400, "malformed request line") from None
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _ProtocolError(505, f"{version[:20]} is not supported; use HTTP/1.1")
    headers: dict[str, str] = {}
    lengths = []
    for field in fields:
        name, sep, value = field.partition(":")
        if not sep or not name or name != name.strip():
            raise _ProtocolError(400, f"malformed header line {field[:40]!r}")
        name, value = name.lower(), value.strip()
        if name == "content-length":
            lengths.append(value)
        headers[name] = value
    if "transfer-encoding" in headers:
        raise _ProtocolError(411, "send the body with a Content-Length header (chunked bodies are not supported)")
    if len(lengths) > 1:
        raise _ProtocolError(400, "more than one Content-Length header")
    if lengths and not lengths[0].isdigit():
        raise _ProtocolError(400, f"Content-Length {lengths[0][:20]!r} is not a number of bytes")
    length = int(lengths[0]) if lengths else 0
    if not lengths and method == "POST":
        raise _ProtocolError(411, "send a Content-Length header")
    if length > max_body:
        raise _ProtocolError(413, f"body of {length} bytes is over the limit of {max_body}")
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return method, target.split("?", 1)[0], headers, length, keep_alive


def _address(peer) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
