"""``Backend``: declare methods and event handlers, then ``run()``."""

import asyncio
import concurrent.futures
import inspect
import queue
import signal
import threading
import time

from . import _env
from ._protocol import check_event_name, check_pattern
from ._session import log
from .agui import AgUi
from .errors import AvdError

# A client's own timeout must never fire before avd's for the same call
# (PROTOCOL.md section 11): wait this much longer than the timeout sent.
TIMEOUT_GRACE = 2.0

_DONE = object()


def _wants_meta(fn):
    """True when an event handler takes a second positional argument."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    positional = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return False
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def _timeout_error(method, timeout):
    return AvdError("TIMEOUT", "TimeoutError",
                    "no answer to %r from avd within %gs" % (method, timeout + TIMEOUT_GRACE),
                    {"method": method, "timeout_ms": int(round(timeout * 1000))})


class Backend(object):
    """A backend session of avd.

    ::

        backend = Backend("demo")

        @backend.method("api.add")
        def add(a, b):
            return a + b

        backend.run()

    ``name`` defaults to ``AVD_BACKEND_NAME`` or ``"python-backend"``.
    ``heartbeat_interval`` (seconds) defaults to ``AVD_HEARTBEAT_INTERVAL_MS``
    or 2.0; 0 turns heartbeats off.  Plain handlers run in a pool of up to
    ``max_workers`` threads; async handlers on an asyncio loop of their own.
    """

    def __init__(self, name=None, heartbeat_interval=None, max_workers=32):
        import os
        self.name = name or os.environ.get("AVD_BACKEND_NAME") or "python-backend"
        self._heartbeat_interval = heartbeat_interval
        self.max_workers = max_workers
        self._methods = {}
        self._handlers = []   # (pattern, fn, wants_meta)
        self._session = None
        self.welcome = None   # avd's welcome message (WebSocket transport)
        self.agui = AgUi(self.emit)

    # ------------------------------------------------------------ declaring

    def method(self, name=None):
        """Decorator registering a method: ``@backend.method("api.x")``.

        Also ``@backend.method()`` or bare ``@backend.method``, which use the
        function's ``__name__``.  Plain functions, ``async def`` functions,
        generators and async generators (which stream chunks) are accepted.
        """
        if callable(name):
            fn = name
            self.add_method(fn.__name__, fn)
            return fn

        def decorate(fn):
            self.add_method(name or fn.__name__, fn)
            return fn
        return decorate

    def add_method(self, name, fn):
        if not isinstance(name, str) or not name:
            raise ValueError("a method name must be a non-empty string")
        if name == "__ping__":
            raise ValueError("__ping__ is answered by the client library itself")
        if not callable(fn):
            raise TypeError("%r is not callable" % (fn,))
        self._methods[name] = fn
        session = self._session
        if session is not None and not session.stopped.is_set():
            self._register_late(session, name)

    def _register_late(self, session, name):
        try:
            out = session.start_call("avd.register", {"methods": [name]})
        except AvdError as exc:
            log("avd.register %r could not be sent: %s" % (name, exc))
            return

        def done(fut):
            if not fut.cancelled() and fut.exception() is not None:
                log("avd.register %r failed: %s" % (name, fut.exception()))
        out.future.add_done_callback(done)

    def on(self, event):
        """Decorator for an event handler: ``@backend.on("progress")``.

        The handler receives the event's ``data``; one taking two positional
        arguments also gets ``{"event": name, "from": session}``.  ``event``
        may be an exact name, a prefix ending in ``*`` or ``*``.  Handlers
        run one at a time in arrival order (async ones start in that order).
        """
        def decorate(fn):
            self.add_handler(event, fn)
            return fn
        return decorate

    def add_handler(self, event, fn):
        check_pattern(event)
        if not callable(fn):
            raise TypeError("%r is not callable" % (fn,))
        new_pattern = event not in self.subscriptions
        self._handlers.append((event, fn, _wants_meta(fn)))
        session = self._session
        if new_pattern and session is not None and not session.stopped.is_set():
            try:
                session.start_call("avd.subscribe", {"events": [event]})
            except AvdError as exc:
                log("avd.subscribe %r could not be sent: %s" % (event, exc))

    @property
    def methods(self):
        """Names of the registered methods, in registration order."""
        return list(self._methods)

    @property
    def subscriptions(self):
        """Event patterns the handlers listen to, without duplicates."""
        seen = []
        for pattern, _fn, _meta in self._handlers:
            if pattern not in seen:
                seen.append(pattern)
        return seen

    @property
    def running(self):
        session = self._session
        return session is not None and not session.stopped.is_set()

    # ------------------------------------------------------------ talking

    def _require_session(self):
        session = self._session
        if session is None or session.stopped.is_set():
            raise AvdError("EVENT_LOOP_CLOSED", "EventLoopClosed",
                           "the backend is not connected to avd (call it while run() is running)")
        return session

    def emit(self, event, data=None, to=None, echo=False):
        """Publish an event; safe from any thread, never blocks on handlers.

        ``to``: list of session ids to send to (subscribed or not);
        ``echo``: deliver to this session too if it is subscribed.
        Raises AvdError ``EVENT_LOOP_CLOSED`` when not running,
        ``PAYLOAD_TOO_LARGE`` when over avd's message size limit.
        """
        check_event_name(event)
        msg = {"type": "event", "event": event, "data": {} if data is None else data}
        if to is not None:
            msg["to"] = list(to)
        if echo:
            msg["echo"] = True
        return self._require_session().send(msg)

    async def call(self, method, params=None, timeout=None, on_chunk=None):
        """Call a method of another session and await its result.

        ``timeout`` in seconds is sent to avd as ``timeout_ms`` (0: none;
        None: avd's default).  An error answer raises :class:`AvdError`.
        ``on_chunk(data)`` is called, on the awaiting loop, for every
        progressive result.  Cancelling the awaiting task cancels the call.
        """
        session = self._require_session()
        loop = asyncio.get_running_loop()
        cb = None
        if on_chunk is not None:
            def cb(data):
                loop.call_soon_threadsafe(on_chunk, data)
        out = session.start_call(method, params, timeout, cb)
        fut = asyncio.wrap_future(out.future)
        try:
            if not timeout:
                return await fut
            while True:
                remaining = out.last_activity + timeout + TIMEOUT_GRACE - time.monotonic()
                if remaining <= 0:
                    session.abandon(out)
                    raise _timeout_error(method, timeout)
                done, _ = await asyncio.wait({fut}, timeout=remaining)
                if done:
                    return fut.result()
        except asyncio.CancelledError:
            session.abandon(out)
            raise

    def call_sync(self, method, params=None, timeout=None, on_chunk=None):
        """Blocking :meth:`call` for plain handlers (worker threads) and other threads.

        ``on_chunk(data)`` runs in the calling thread.  Must not be used on a
        thread that runs an asyncio loop (use ``await backend.call()``).
        """
        session = self._require_session()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("call_sync() would block a running event loop; "
                               "use 'await backend.call(...)' in async code")
        chunks = queue.Queue() if on_chunk is not None else None
        out = session.start_call(method, params, timeout, chunks.put if chunks else None)
        if chunks is not None:
            out.future.add_done_callback(lambda f: chunks.put(_DONE))
        while True:
            remaining = None
            if timeout:
                remaining = out.last_activity + timeout + TIMEOUT_GRACE - time.monotonic()
                if remaining <= 0:
                    session.abandon(out)
                    raise _timeout_error(method, timeout)
            if chunks is not None:
                try:
                    item = chunks.get(timeout=remaining)
                except queue.Empty:
                    continue
                if item is _DONE:
                    return out.future.result()
                on_chunk(item)
            else:
                try:
                    return out.future.result(timeout=remaining)
                except concurrent.futures.TimeoutError:
                    if out.future.done():  # 3.11+: TimeoutError may be the call's own error
                        raise
                    continue

    # ------------------------------------------------------------ running

    def stop(self):
        """Make ``run()`` return soon; callable from any thread or handler."""
        session = self._session
        if session is not None:
            session.stop("backend.stop()")

    def heartbeat_interval(self):
        return _env.heartbeat_interval(self._heartbeat_interval)

    def run(self, transport=None, url=None, token=None):
        """Serve until avd goes away or SIGTERM/SIGINT arrives, then return.

        ``transport``: ``"stdio"``, ``"ws"`` or None to choose by itself
        (stdio when spawned by avd, else WebSocket).  ``url`` defaults to
        ``AVD_URL``, avd's runtime url file or ``ws://127.0.0.1:7700/ws``;
        ``token`` to ``AVD_TOKEN`` or avd's runtime token file.
        """
        if self._session is not None:
            raise RuntimeError("this Backend is already running")
        if transport is None:
            transport = _env.choose_transport()
        if transport == "stdio":
            from ._stdio import run_stdio
            run_stdio(self, self.heartbeat_interval(), self.max_workers)
            return
        if transport not in ("ws", "websocket"):
            raise ValueError("transport must be 'stdio' or 'ws', not %r" % (transport,))
        self._run_ws(url, token)

    def _run_ws(self, url, token):
        loop = asyncio.new_event_loop()
        task = loop.create_task(self.run_async(url=url, token=token))
        installed = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, task.cancel)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            log("stopped by signal")
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def run_async(self, url=None, token=None):
        """WebSocket transport on the running loop; returns when the connection ends."""
        if self._session is not None:
            raise RuntimeError("this Backend is already running")
        from ._ws import serve_ws
        if url is None:
            url = _env.default_url()
        if token is None:
            token = _env.find_token()
        await serve_ws(self, url, token, self.heartbeat_interval(), self.max_workers)

