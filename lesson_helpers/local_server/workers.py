"""Threads that answer requests, reused from one request to the next (see WorkerPool)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["WorkerPool"]

Job = TypeVar("Job")


class WorkerPool(Generic[Job]):
    """Threads that answer requests, reused from one request to the next.

    ``submit`` never waits (the connection loop calls it): when no thread is idle, a helper
    thread starts more, one at a time while requests are queued -- so the loop never waits
    for a thread to start, and a burst of requests is answered by as many threads as keep up.
    A thread that has been idle for ``idle_timeout`` seconds ends.
    """

    BUSY, IDLE = "lesson-helpers-request", "lesson-helpers-idle"  # thread names

    def __init__(self, run: Callable[[Job], None], idle_timeout: float = 30.0) -> None:
        self._run = run
        self._idle_timeout = idle_timeout
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._workers = 0
        self._needed = threading.Event()
        self._stopped = False
        threading.Thread(target=self._grow, name="lesson-helpers-pool", daemon=True).start()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)
        with self._lock:
            idle = self._idle
        if not idle:
            self._needed.set()

    def _grow(self) -> None:
        while not self._stopped:
            self._needed.wait()
            self._needed.clear()
            while not self._stopped:
                with self._lock:
                    if self._jobs.qsize() <= self._idle:
                        break
                    self._workers += 1
                    self._idle += 1  # counted as idle from now: it takes a job first thing
                threading.Thread(target=self._work, name=self.IDLE, daemon=True).start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    if not self._jobs.empty():
                        continue
                    self._idle -= 1
                    self._workers -= 1
                return
            with self._lock:
                self._idle -= 1
            if job is None:  # stopping
                with self._lock:
                    self._workers -= 1
                return
            me.name = self.BUSY
            try:
                self._run(job)
            finally:
                me.name = self.IDLE
                with self._lock:
                    self._idle += 1
                    backlog = self._jobs.qsize() > self._idle
                if backlog:
                    self._needed.set()

    def stop(self) -> None:
        self._stopped = True
        self._needed.set()
        with self._lock:
            workers = self._workers
        for _ in range(workers):
            self._jobs.put(None)
