"""Sockets for the local server: one thread per request, none per idle connection.

A connection costs a thread only while a complete request is being answered. Until its request
head (the request line and headers, up to the blank line) has arrived, it waits in one
selector loop, so a thousand connections that send nothing -- or trickle a header a byte at a
time (slowloris) -- hold no thread, and each is closed when its time is up:

* ``idle_timeout``: how long a connection may stay silent before a request (also between
  requests on a kept-alive connection);
* ``read_timeout``: how long a request may take to arrive from its first byte to the end of
  its body; also the longest one write may block on a client that does not read.

Between requests on a kept-alive connection the connection goes back to the loop.
This module knows HTTP only as far as "a head ends at a blank line"; what a request means is
the business of the ``answer`` callable (see ``server.py``).
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import queue
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Connection", "ConnectionLoop", "RequestTimeoutError"]

log = logging.getLogger("lesson_helpers.local_server")

MAX_HEAD = 64 * 1024 + 4096  # past this without a blank line, the thread reports the error
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TIMEOUT_REPLY = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
)
_TIMEOUT_BODY = (
    b'{"error":{"message":"The request did not arrive in time: the server closed the '
    b'connection.","type":"invalid_request_error","param":null,"code":"request_timeout"}}'
)


class RequestTimeoutError(TimeoutError):
    """The request (its head or body) did not arrive before the connection's deadline."""


class Connection:
    """One client socket: reads buffered against a deadline, writes with a time limit.

    ``readline`` and ``read`` are what ``http.server`` and the body reader need from an
    ``rfile``; ``write`` and ``flush`` what they need from a ``wfile``.
    """

    def __init__(self, sock: socket.socket, address: Any) -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray()
        self.deadline: float | None = None  # monotonic time by which the request must be in
        self.write_timeout: float | None = None

    # -- reading ----------------------------------------------------------------------------
    def _fill(self) -> bool:
        """Receive more bytes into the buffer; False at the end of the input."""
        if self.deadline is None:
            self.sock.settimeout(None)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise RequestTimeoutError("the request did not arrive in time")
            self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise RequestTimeoutError("the request did not arrive in time") from None
        finally:
            self.sock.settimeout(self.write_timeout)
        self.buffer += data
        return bool(data)

    def readline(self, limit: int = -1) -> bytes:
        """One line with its line end (less at the end of the input, or at ``limit`` bytes)."""
        searched = 0
        while True:
            end = self.buffer.find(b"\n", searched)
            if end >= 0:
                end += 1
                break
            searched = len(self.buffer)
            if 0 <= limit <= searched or not self._fill():
                end = len(self.buffer)
                break
        if limit >= 0:
            end = min(end, limit)
        line = bytes(self.buffer[:end])
        del self.buffer[:end]
        return line

    def read(self, size: int) -> bytes:
        """``size`` bytes (fewer only at the end of the input)."""
        while len(self.buffer) < size and self._fill():
            pass
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def has_head(self) -> bool:
        """True when the buffer holds a whole request head (or too much to wait for)."""
        return bool(_HEAD_END.search(self.buffer)) or len(self.buffer) > MAX_HEAD

    # -- writing ----------------------------------------------------------------------------
    def write(self, data: bytes) -> int:
        self.sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        """Writes are not buffered: nothing to do."""

    def close(self) -> None:
        """``http.server`` closes its files after each request: the socket stays open."""

    def shut(self) -> None:
        """Close the socket for good."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class ConnectionLoop:
    """Accepts connections, waits for complete request heads, and answers each in a thread.

    ``answer(connection)`` handles one request whose head is in ``connection.buffer`` and
    returns True to keep the connection for another request.
    """

    def __init__(
        self,
        address: tuple[str, int],
        answer: Callable[[Connection], bool],
        *,
        idle_timeout: float,
        read_timeout: float,
        backlog: int = 1024,
    ) -> None:
        self.socket = socket.create_server(address, backlog=backlog)
        self.socket.setblocking(False)  # accept() in the loop must never wait
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self._answer = answer
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self._returned: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop_asked = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._active: set[Connection] = set()  # connections whose request a thread answers
        self._active_lock = threading.Lock()
        self._order = itertools.count()

    # -- the loop ---------------------------------------------------------------------------
    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        waiting: dict[Connection, selectors.SelectorKey] = {}
        deadlines: list[tuple[float, int, Connection]] = []
        selector = selectors.DefaultSelector()
        try:
            selector.register(self.socket, selectors.EVENT_READ, "accept")
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            while not self._stop_asked.is_set():
                timeout = poll_interval
                if deadlines:
                    timeout = max(0.0, min(timeout, deadlines[0][0] - time.monotonic()))
                for key, _ in selector.select(timeout):
                    if key.data == "accept":
                        self._accept(selector, waiting, deadlines)
                    elif key.data == "wake":
                        self._take_back(selector, waiting, deadlines)
                    else:
                        self._receive(key.data, selector, waiting, deadlines)
                self._expire(selector, waiting, deadlines)
        finally:
            for connection in list(waiting):
                connection.shut()
            selector.close()
            self._stopped.set()

    def _wait(
        self,
        connection: Connection,
        selector: selectors.BaseSelector,
        waiting: dict[Connection, selectors.SelectorKey],
        deadlines: list[tuple[float, int, Connection]],
    ) -> None:
        """Put a connection in the loop until its next request head is complete."""
        connection.sock.setblocking(False)
        timeout = self.read_timeout if connection.buffer else self.idle_timeout
        connection.deadline = time.monotonic() + timeout
        waiting[connection] = selector.register(connection.sock, selectors.EVENT_READ, connection)
        heapq.heappush(deadlines, (connection.deadline, next(self._order), connection))

    def _accept(self, selector: Any, waiting: Any, deadlines: Any) -> None:
        """Accept every connection that is waiting (a class connecting at once)."""
        for _ in range(256):
            try:
                sock, address = self.socket.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    if waiting:  # out of file descriptors: drop the one closest to its end
                        oldest = min(waiting, key=lambda c: c.deadline or 0.0)
                        self._drop(oldest, selector, waiting, deadlines)
                    else:
                        time.sleep(0.01)  # every descriptor is answering a request
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._wait(Connection(sock, address), selector, waiting, deadlines)

    def _take_back(self, selector: Any, waiting: Any, deadlines: Any) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                connection = self._returned.get_nowait()
            except queue.Empty:
                return
            self._wait(connection, selector, waiting, deadlines)

    def _receive(self, connection: Connection, selector: Any, waiting: Any, deadlines: Any) -> None:
        try:
            data = connection.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client closed the connection
            self._drop(connection, selector, waiting, deadlines)
            return
        if not connection.buffer:  # the first byte of a request: its read deadline starts
            connection.deadline = time.monotonic() + self.read_timeout
            heapq.heappush(deadlines, (connection.deadline, next(self._order), connection))
        connection.buffer += data
        if connection.has_head():
            selector.unregister(connection.sock)
            del waiting[connection]
            self._start(connection)

    def _expire(self, selector: Any, waiting: Any, deadlines: Any) -> None:
        now = time.monotonic()
        while deadlines and deadlines[0][0] <= now:
            deadline, _, connection = heapq.heappop(deadlines)
            if connection in waiting and connection.deadline == deadline:
                if connection.buffer:  # part of a request arrived: say why it is closed
                    try:
                        connection.sock.send(_TIMEOUT_REPLY % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))
                    except OSError:
                        pass
                self._drop(connection, selector, waiting, deadlines)

    def _drop(self, connection: Connection, selector: Any, waiting: Any, deadlines: Any) -> None:
        if waiting.pop(connection, None) is not None:
            selector.unregister(connection.sock)
        connection.shut()

    # -- one request, in its own thread -----------------------------------------------------
    def _start(self, connection: Connection) -> None:
        connection.sock.setblocking(True)
        connection.write_timeout = self.read_timeout
        connection.sock.settimeout(connection.write_timeout)
        with self._active_lock:
            self._active.add(connection)
        thread = threading.Thread(
            target=self._work, args=(connection,), name="lesson-helpers-request", daemon=True
        )
        thread.start()

    def _work(self, connection: Connection) -> None:
        keep = False
        try:
            while self._answer(connection) and not self._stop_asked.is_set():
                if not connection.has_head():
                    keep = True  # wait for the next request in the loop, not in this thread
                    return
                connection.deadline = time.monotonic() + self.read_timeout  # pipelined
        except Exception:  # a broken connection: nothing more can be said on it
            log.debug("connection from %s ended with an error", connection.address, exc_info=True)
        finally:
            with self._active_lock:
                self._active.discard(connection)
            if keep and not self._stop_asked.is_set():
                self._returned.put(connection)
                try:
                    self._wake_w.send(b"\0")
                except OSError:
                    pass
            else:
                connection.shut()

    # -- stopping ---------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the loop and cut every connection (a running answer notices on its next write)."""
        self._stop_asked.set()
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        self._stopped.wait(timeout=5)
        with self._active_lock:
            active = list(self._active)
        for connection in active:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def server_close(self) -> None:
        self._stop_asked.set()
        self.socket.close()
        self._wake_r.close()
        self._wake_w.close()
