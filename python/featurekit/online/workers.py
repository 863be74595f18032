"""The sockets and processes of `featurekit serve`: listen() makes the server's socket, and
with `--workers N`, serve_workers runs N processes forked from the server's, each running
the HTTP server (http.py) on its own listening socket at the one address (SO_REUSEPORT), so
that the kernel spreads connections over them and throughput grows with cores. The
snapshot they serve is mapped, so its pages are shared (layout.py)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from typing import Callable

from .http import DEFAULT_LIMITS, Limits, serve

log = logging.getLogger("featurekit.online")


def serve_workers(sock: socket.socket, make_app: Callable[[], tuple], workers: int, limits: Limits = DEFAULT_LIMITS,
                  ready: Callable[[], None] | None = None) -> None:
    """Serves in `workers` processes forked from this one: throughput grows with cores. Each
    worker accepts on its own listening socket at `sock`'s address (SO_REUSEPORT; `sock`
    only holds the address, see listen): the kernel spreads connections over them evenly,
    where one shared socket let the first worker to wake take 15 of 16 keep-alive
    connections. Each worker calls make_app() -> (app, on_stop) after the fork, so no
    thread crosses it. A worker that dies is started again (the connections it held are
    closed); `ready` is called once every worker's socket listens; SIGTERM or SIGINT stops
    them all."""
    children: dict[int, int] = {}
    stopping = False

    def start(number: int) -> None:
        own = _listener(sock)  # listening before the fork: no connection is refused meanwhile
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                sock.close()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, signal.SIG_DFL)
                app, on_stop = make_app()
                serve(own, app, limits, on_stop)
            except BaseException:
                log.exception("worker %d failed", number)
                code = 1
            finally:
                os._exit(code)
        own.close()  # the worker's alone: it goes with the worker
        children[pid] = number

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    for number in range(workers):
        start(number)
    if ready is not None:
        ready()
    while children:
        pid, status = os.wait()
        number = children.pop(pid, None)
        if number is not None and not stopping:
            log.warning("worker %d (pid %d) stopped (%s); starting it again", number, pid, _exit_reason(status))
            time.sleep(0.1)  # a worker failing at once does not spin
            start(number)
    sock.close()


def _exit_reason(status: int) -> str:
    return f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}"


def listen(host: str, port: int, workers: int = 1) -> socket.socket:
    """The server's socket at host:port (port 0: any free one). For several workers it only
    binds, with SO_REUSEPORT, holding the address for the workers' own listeners
    (serve_workers): a socket that does not listen takes no connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if workers > 1:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if workers == 1:
        sock.listen(1024)
    return sock


def _listener(sock: socket.socket) -> socket.socket:
    """A listening socket at `sock`'s address, beside it (SO_REUSEPORT)."""
    own = socket.socket(sock.family, socket.SOCK_STREAM)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    own.bind(sock.getsockname())
    own.listen(1024)
    return own
