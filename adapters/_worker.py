"""Run an adapter in a persistent child process.

Some frameworks fix global state at import (Keras 3 reads KERAS_BACKEND once,
keras/src/backend/config.py), so one process cannot host every variant. ``Proxy`` looks
like an adapter to the suite and forwards ``run`` (and ``supports``/``devices`` when asked)
to a child started lazily with the 'spawn' start method, with its environment set before
the child imports anything. The child lives until the parent exits and is reused across
cases. A call that exceeds its timeout kills the child; a child that dies turns into a
raised exception, so the suite records the case instead of hanging or crashing.
"""
from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import threading
from importlib import metadata

_START_LOCK = threading.Lock()   # os.environ is process-wide: set it around start() only


class WorkerError(RuntimeError):
    """The child raised, died or timed out."""


class WorkerCrashed(WorkerError):
    """The child process died (segfault, abort, os._exit, out of memory)."""


class WorkerTimeout(WorkerError):
    """The child did not answer within the per-call time limit; it was killed."""


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _make(target: str, kwargs: dict):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)


def _serve(conn, target: str, kwargs: dict, env: dict) -> None:
    os.environ.update(env)  # also set by the parent before spawning; here for clarity
    try:
        adapter = _make(target, kwargs)
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        method, args = msg
        try:
            conn.send(("ok", getattr(adapter, method)(*args)))
        except Exception as exc:  # noqa: BLE001 -- reported to the parent
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class Proxy:
    """An adapter whose ``run`` happens in a child process.

    target      "module:callable" building the real adapter in the child (with kwargs)
    env         environment for the child, set before it imports the framework
    local       optional adapter-like object in this process that answers ``supports``
                (pure logic, no framework import), so skips do not start a child
    """

    def __init__(self, name: str, framework: str, convention: str, target: str, kwargs: dict | None = None,
                 env: dict | None = None, local=None, timeout_s: float | None = None, start_timeout_s: float = 300.0,
                 max_rss_mb: float | None = None):
        self.name, self.framework, self.convention = name, framework, convention
        self._target, self._kwargs, self._env, self._local = target, dict(kwargs or {}), dict(env or {}), local
        self._timeout = timeout_s if timeout_s is not None else float(os.environ.get("BN_WORKER_TIMEOUT", "600"))
        self._start_timeout = start_timeout_s
        self._proc = self._conn = None
        self._lock = threading.Lock()
        self._devices = None
        self._version = None
        # a child whose resident memory grows past this is restarted after its call (leaks)
        self._max_rss = max_rss_mb if max_rss_mb is not None else float(os.environ.get("BN_WORKER_MAX_RSS_MB", "8192"))
        self.restarts = 0

    # -- adapter protocol ----------------------------------------------------------------------
    def version(self) -> str:
        if self._version is None:
            try:
                self._version = metadata.version(self.framework)
            except metadata.PackageNotFoundError:  # not a distribution: ask the adapter itself
                self._version = str(self._call("version"))
        return self._version

    def devices(self) -> list[str]:
        if self._devices is None:
            self._devices = list(self._call("devices"))
        return self._devices

    def supports(self, problem, device: str) -> str | None:
        if self._local is not None:
            return self._local.supports(problem, device)
        return self._call("supports", problem, device)

    def run(self, problem, device: str):
        return self._call("run", problem, device)

    def close(self) -> None:
        with self._lock:
            self._stop()

    # -- child management ----------------------------------------------------------------------
    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self._target, self._kwargs, self._env),
                           name=f"bn-worker-{self.name}", daemon=True)
        with _START_LOCK:
            saved = {k: os.environ.get(k) for k in self._env}
            os.environ.update(self._env)
            try:
                proc.start()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        child.close()
        self._proc, self._conn = proc, parent
        status, value = self._receive(self._start_timeout, "starting")
        if status != "ok":
            self._stop()
            raise WorkerError(f"worker {self.name} failed to start: {value}")

    def _stop(self) -> None:
        if self._proc is not None:
            try:
                self._conn.send(None)
            except (OSError, ValueError):
                pass
            self._proc.join(timeout=2)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5)
            self._conn.close()
        self._proc = self._conn = None

    def _receive(self, timeout: float, what: str):
        try:
            ready = self._conn.poll(timeout)
        except (EOFError, OSError):
            ready = True  # fall through to recv, which reports the dead child
        if not ready:
            pid = self._proc.pid
            self._stop()
            raise WorkerTimeout(f"worker {self.name} (pid {pid}) timed out after {timeout:.0f}s {what}; killed")
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(timeout=5)
            code = self._proc.exitcode
            self._stop()
            raise WorkerCrashed(f"worker {self.name} died {what} (exit code {code})") from None

    def _call(self, method: str, *args):
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                if self._proc is not None:
                    self._stop()
                self._start()
            try:
                self._conn.send((method, args))
            except (OSError, ValueError) as exc:
                self._stop()
                raise WorkerError(f"worker {self.name} unreachable: {exc}") from None
            status, value = self._receive(self._timeout, f"in {method}")
            if self._proc is not None and _rss_mb(self._proc.pid) > self._max_rss:
                self._stop()      # a leaking adapter is restarted, the case it finished still counts
                self.restarts += 1
        if status != "ok":
            raise WorkerError(value)
        return value
