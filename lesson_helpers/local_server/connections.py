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

The same loop writes paced responses: a handler's thread hands over a timetable (pieces of
bytes, each with the time it is due; see :mod:`.exchange`) with :meth:`ConnectionLoop.deliver`
and the loop sends each piece at its time with non-blocking writes, so a stream costs no
thread and no wake-up of its own per token. A client that stops reading for ``read_timeout``
is dropped.

This module knows HTTP only as far as "a head ends at a blank line"; what a request means is
the business of the ``answer`` callable (see ``server.py``).
"""

from __future__ import annotations

import collections
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
from dataclasses import dataclass, field
from typing import Any

from .exchange import Timetable
from .workers import WorkerPool

__all__ = [
    "CLOSE",
    "HANDED_OVER",
    "KEEP",
    "Connection",
    "ConnectionLoop",
    "RequestTimeoutError",
]

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


# What answer(connection) returns: keep the connection for another request, close it, or
# "handed over": its response is a timetable the loop writes (see deliver) and then decides.
KEEP, CLOSE, HANDED_OVER = "keep", "close", "handed over"


@dataclass(eq=False)
class _Delivery:
    """A response being written by the loop, piece by piece at the times they are due."""

    connection: Connection
    items: collections.deque[tuple[float, bytes]] = field(default_factory=collections.deque)
    pending: bytearray = field(default_factory=bytearray)  # sent in part: the rest
    end: str | None = None  # KEEP or CLOSE once the whole timetable is in
    wake_at: float | None = None  # the time of this delivery's entry in the loop's heap
    stuck_since: float | None = None  # the client stopped reading at this time
    watching: bool = False  # registered in the selector, to write when the socket is ready
    ended: bool = False


class ConnectionLoop:
    """Accepts connections, waits for complete request heads, answers each in a thread, and
    writes paced responses on their timetables.

    ``answer(connection)`` handles one request whose head is in ``connection.buffer`` and
    returns KEEP, CLOSE or HANDED_OVER (after :meth:`deliver` with an ``end``).
    Only the loop's thread touches the selector, the heaps and the waiting connections.
    """

    def __init__(
        self,
        address: tuple[str, int],
        answer: Callable[[Connection], str],
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
        self._inbox: queue.SimpleQueue[tuple[Connection, Timetable | None, str | None]] = (
            queue.SimpleQueue()
        )
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop_asked = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._active: set[Connection] = set()  # connections whose request a thread answers
        self._active_lock = threading.Lock()
        self._broken: set[Connection] = set()  # deliveries the client hung up on
        self._order = itertools.count()
        self._next_wake = 0.0  # when the sleeping loop wakes up anyway (0: it is awake)
        self._pool = WorkerPool(self._work)
        # The loop's own state.
        self._selector: selectors.BaseSelector | None = None
        self._waiting: set[Connection] = set()  # reading a request head
        self._deadlines: list[tuple[float, int, Connection]] = []
        self._deliveries: dict[Connection, _Delivery] = {}
        self._due: list[tuple[float, int, _Delivery]] = []

    # -- the loop ---------------------------------------------------------------------------
    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        self._selector = selectors.DefaultSelector()
        try:
            self._selector.register(self.socket, selectors.EVENT_READ, "accept")
            self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            while not self._stop_asked.is_set():
                timeout = self._timeout(poll_interval)
                self._next_wake = time.monotonic() + timeout
                if not self._inbox.empty():  # delivered before _next_wake was set: no wake
                    timeout = 0.0
                events = self._selector.select(timeout)
                self._next_wake = 0.0  # awake: anything delivered now is seen below
                for key, _ in events:
                    self._guarded(self._event, key.data)
                self._guarded(self._take_inbox)
                self._guarded(self._run_due)
                self._guarded(self._expire)
        finally:
            for connection in [*self._waiting, *self._deliveries]:
                connection.shut()
            self._waiting.clear()
            self._deliveries.clear()
            self._selector.close()
            self._stopped.set()

    def _event(self, data: Any) -> None:
        if data == "accept":
            self._accept()
        elif data == "wake":
            self._drain_wake()
        elif isinstance(data, _Delivery):
            self._pump(data)
        else:
            self._receive(data)

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        """Run one step of the loop; a bug in it ends that step, never the server."""
        try:
            step(*args)
        except Exception:
            log.warning("the local server's connection loop hit a bug", exc_info=True)

    def _timeout(self, poll_interval: float) -> float:
        soonest = min(
            [poll_interval + time.monotonic()]
            + [heap[0][0] for heap in (self._deadlines, self._due) if heap]
        )
        return max(0.0, soonest - time.monotonic())

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # the loop is already awake (the socket pair is full) or closed

    # -- waiting for a request head ---------------------------------------------------------
    def _wait(self, connection: Connection) -> None:
        """Put a connection in the loop until its next request head is complete."""
        if connection.has_head():  # a pipelined request is already here
            self._start(connection)
            return
        assert self._selector is not None
        connection.sock.setblocking(False)
        timeout = self.read_timeout if connection.buffer else self.idle_timeout
        connection.deadline = time.monotonic() + timeout
        self._selector.register(connection.sock, selectors.EVENT_READ, connection)
        self._waiting.add(connection)
        heapq.heappush(self._deadlines, (connection.deadline, next(self._order), connection))

    def _accept(self) -> None:
        """Accept every connection that is waiting (a class connecting at once)."""
        for _ in range(256):
            try:
                sock, address = self.socket.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    if self._waiting:  # out of file descriptors: drop the one closest to its end
                        self._drop(min(self._waiting, key=lambda c: c.deadline or 0.0))
                    else:
                        time.sleep(0.01)  # every descriptor is answering a request
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._wait(Connection(sock, address))

    def _receive(self, connection: Connection) -> None:
        try:
            data = connection.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client closed the connection
            self._drop(connection)
            return
        if not connection.buffer:  # the first byte of a request: its read deadline starts
            connection.deadline = time.monotonic() + self.read_timeout
            heapq.heappush(self._deadlines, (connection.deadline, next(self._order), connection))
        connection.buffer += data
        if connection.has_head():
            self._unwatch(connection)
            self._start(connection)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, connection = heapq.heappop(self._deadlines)
            if connection in self._waiting and connection.deadline == deadline:
                if connection.buffer:  # part of a request arrived: say why it is closed
                    try:
                        connection.sock.send(_TIMEOUT_REPLY % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))
                    except OSError:
                        pass
                self._drop(connection)

    def _unwatch(self, connection: Connection) -> None:
        if connection in self._waiting:
            self._waiting.discard(connection)
            assert self._selector is not None
            self._selector.unregister(connection.sock)

    def _drop(self, connection: Connection) -> None:
        self._unwatch(connection)
        connection.shut()

    # -- one request, in its own thread -----------------------------------------------------
    def _start(self, connection: Connection) -> None:
        connection.sock.setblocking(True)
        connection.write_timeout = self.read_timeout
        connection.sock.settimeout(connection.write_timeout)
        connection.deadline = time.monotonic() + self.read_timeout
        with self._active_lock:
            self._active.add(connection)
        self._pool.submit(connection)

    def _work(self, connection: Connection) -> None:
        outcome = CLOSE
        try:
            while not self._stop_asked.is_set():
                outcome = self._answer(connection)
                if outcome != KEEP or not connection.has_head():
                    break
                connection.deadline = time.monotonic() + self.read_timeout  # pipelined
        except Exception:  # a broken connection: nothing more can be said on it
            log.debug("connection from %s ended with an error", connection.address, exc_info=True)
            outcome = CLOSE
        finally:
            with self._active_lock:
                self._active.discard(connection)
            if outcome == HANDED_OVER:
                pass  # the loop writes the rest and then keeps or closes the connection
            elif outcome == KEEP and not self._stop_asked.is_set():
                self._inbox.put((connection, None, KEEP))  # wait in the loop, not here
                self._wake()
            else:
                connection.shut()

    # -- paced responses --------------------------------------------------------------------
    def deliver(self, connection: Connection, timetable: Timetable, end: str | None) -> bool:
        """Have the loop write ``timetable`` on ``connection``, each piece at its time (from
        any thread; in order with earlier calls). ``end``: None while more will follow, then
        KEEP or CLOSE. False when the client has already hung up."""
        if connection in self._broken:
            if end is not None:
                self._broken.discard(connection)
            return False
        self._inbox.put((connection, timetable, end))
        if not timetable or timetable[0][0] < self._next_wake:  # not before the loop wakes
            self._wake()
        return True

    def _take_inbox(self) -> None:
        while True:
            try:
                connection, timetable, end = self._inbox.get_nowait()
            except queue.Empty:
                return
            if timetable is None:  # a connection back from its thread: wait for a request
                self._wait(connection)
                continue
            if connection in self._broken:  # the client hung up before this part
                if end is not None:
                    self._broken.discard(connection)
                continue
            delivery = self._deliveries.get(connection)
            if delivery is None:
                connection.sock.setblocking(False)
                delivery = self._deliveries[connection] = _Delivery(connection)
            delivery.items.extend(timetable)
            delivery.end = end
            self._pump(delivery)

    def _run_due(self) -> None:
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            at, _, delivery = heapq.heappop(self._due)
            if delivery.wake_at == at:
                delivery.wake_at = None
                self._pump(delivery)

    def _pump(self, delivery: _Delivery) -> None:
        """Write what is due (one send per piece, as the handler wrote them), then plan the
        next wake-up, or finish the response."""
        assert self._selector is not None
        if delivery.ended:  # a wake-up planned before it ended
            return
        sock = delivery.connection.sock
        now = time.monotonic()
        try:
            if delivery.pending:
                delivery.pending = delivery.pending[sock.send(delivery.pending) :]
            while delivery.items and delivery.items[0][0] <= now and not delivery.pending:
                data = delivery.items.popleft()[1]
                delivery.pending = bytearray(data[sock.send(data) :])
        except BlockingIOError:
            pass
        except OSError:  # the client hung up
            self._end_delivery(delivery, broken=True)
            return
        writing = bool(delivery.pending)
        if writing and not delivery.watching:
            self._selector.register(sock, selectors.EVENT_WRITE, delivery)
            delivery.watching, delivery.stuck_since = True, now
        elif not writing and delivery.watching:
            self._selector.unregister(sock)
            delivery.watching, delivery.stuck_since = False, None
        if writing:
            if now - (delivery.stuck_since or now) > self.read_timeout:
                self._end_delivery(delivery, broken=True)  # the client stopped reading
            elif delivery.wake_at is None:  # check again when the write timeout is up
                self._plan(delivery, now + self.read_timeout)
            return
        if delivery.items:
            self._plan(delivery, delivery.items[0][0])
        elif delivery.end is not None:
            self._end_delivery(delivery)

    def _plan(self, delivery: _Delivery, at: float) -> None:
        if delivery.wake_at is None or at < delivery.wake_at:
            delivery.wake_at = at
            heapq.heappush(self._due, (at, next(self._order), delivery))

    def _end_delivery(self, delivery: _Delivery, broken: bool = False) -> None:
        connection = delivery.connection
        delivery.ended = True
        self._deliveries.pop(connection, None)
        assert self._selector is not None
        if delivery.watching:
            self._selector.unregister(connection.sock)
        if broken and delivery.end is None:
            self._broken.add(connection)  # the handler is still writing: tell it
        if delivery.end == KEEP and not broken and not self._stop_asked.is_set():
            self._wait(connection)
        else:
            connection.shut()

    # -- stopping ---------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the loop and cut every connection (a running answer notices on its next write)."""
        self._stop_asked.set()
        self._wake()
        self._stopped.wait(timeout=5)
        self._pool.stop()
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
