"""The transport-independent core: dispatching calls, events, cancels, responses.

A :class:`Session` lives for one ``Backend.run()``.  A transport gives it a
thread-safe ``send_text(str)`` function and feeds it every incoming message
with :meth:`Session.handle_text`.  The session then

* answers ``__ping__`` at once, on the reader's own thread;
* runs plain handlers in a pool of worker threads and ``async`` ones on an
  asyncio loop of their own thread, so a busy handler never stops the reader;
* streams generators as chunks, and closes them on ``cancel``;
* maps responses to the backend's own calls back to futures;
* sends ``backend_health`` heartbeats from a thread of their own.

Standard library only, Python 3.7 syntax: the stdio transport uses it inside
a DCC's embedded interpreter.
"""

import asyncio
import concurrent.futures
import contextvars
import inspect
import itertools
import json
import sys
import threading
import time
import traceback

from ._protocol import SCHEMA_VERSION, classify, encode_text, map_params, now_ms, pattern_matches
from .errors import AvdError, error_from_exception

_current_call = contextvars.ContextVar("avd_current_call", default=None)

# avd discards larger messages (PROTOCOL.md section 8); refuse them here
# instead, so the caller gets an error rather than a timeout.
DEFAULT_MAX_MESSAGE_BYTES = 1048576

# concurrent.futures.InvalidStateError is new in 3.8.
_InvalidState = getattr(concurrent.futures, "InvalidStateError", RuntimeError)


def current_call():
    """The :class:`Call` the current handler serves, or None outside a method handler."""
    return _current_call.get()


def log(text):
    """One diagnostic line on stderr (never stdout: that is the protocol under stdio)."""
    try:
        sys.stderr.write("avd-client: %s\n" % text)
        sys.stderr.flush()
    except Exception:
        pass


def log_exception(prefix, exc):
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write("avd-client: %s\n%s" % (prefix, text))
        sys.stderr.flush()
    except Exception:
        pass


def is_async_callable(fn):
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


class Call(object):
    """An incoming call being served; ``avd.current_call()`` returns it inside a handler.

    Plain (non-generator) sync handlers cannot be interrupted; a long one may
    poll :attr:`cancelled` or wait on :meth:`wait_cancelled`.
    """

    def __init__(self, id, method, params, caller=None, timeout_ms=None):
        self.id = id
        self.method = method
        self.params = params
        self.caller = caller
        self.timeout_ms = timeout_ms
        self.cancel_reason = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._done = False
        self._future = None  # concurrent future of the asyncio task, if any

    @property
    def cancelled(self):
        return self._cancel.is_set()

    def wait_cancelled(self, timeout=None):
        """Block until the call is cancelled (True) or ``timeout`` seconds pass (False)."""
        return self._cancel.wait(timeout)

    def __repr__(self):
        return "<avd.Call id=%r method=%r caller=%r>" % (self.id, self.method, self.caller)


class _Outgoing(object):
    """A call this backend made, waiting for its response."""

    def __init__(self, id, method, on_chunk):
        self.id = id
        self.method = method
        self.on_chunk = on_chunk
        self.future = concurrent.futures.Future()
        self.last_activity = time.monotonic()


class _Pool(object):
    """A pool of daemon threads that grows on demand up to ``max_workers``.

    Daemon threads, unlike concurrent.futures', never keep the process alive
    after run() returned (SIGTERM must end a backend whose handler is busy).
    """

    def __init__(self, max_workers, name):
        import queue
        self._queue = queue.Queue()
        self._max = max(1, int(max_workers))
        self._name = name
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0      # workers waiting with no job promised to them
        self._backlog = 0   # queued jobs no worker is promised to

    def submit(self, fn, *args):
        with self._lock:
            self._queue.put((fn, args))
            if self._idle > 0:
                self._idle -= 1
            elif self._threads < self._max:
                self._threads += 1
                t = threading.Thread(target=self._work, name="%s-%d" % (self._name, self._threads))
                t.daemon = True
                t.start()
            else:
                self._backlog += 1

    def _work(self):
        while True:
            fn, args = self._queue.get()
            try:
                fn(*args)
            except BaseException as exc:  # a job must never kill its worker
                log_exception("uncaught error in %s:" % self._name, exc)
            with self._lock:
                if self._backlog > 0:
                    self._backlog -= 1
                else:
                    self._idle += 1


class Session(object):
    def __init__(self, backend, send_text, heartbeat_interval=2.0, max_workers=32,
                 max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES):
        self.backend = backend
        self.max_message_bytes = max_message_bytes
        self._send_text = send_text
        self.heartbeat_interval = heartbeat_interval
        self.stopped = threading.Event()
        self.stop_reason = None
        self._lock = threading.Lock()
        self._calls = {}      # id of an incoming call -> Call
        self._pending = {}    # id of an own call -> _Outgoing
        self._ids = itertools.count(1)
        self._pool = _Pool(max_workers, "avd-worker")
        self._events = _Pool(1, "avd-events")  # event handlers run in order, one at a time
        self.loop = None
        self._loop_thread = None
        self._hb_thread = None
        self.on_stop = None   # called once, from the stopping thread, by stop()

    # ------------------------------------------------------------ lifecycle

    def start(self):
        """Start the asyncio loop that runs async handlers."""
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def main():
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(started.set)
            self.loop.run_forever()

        self._loop_thread = threading.Thread(target=main, name="avd-asyncio")
        self._loop_thread.daemon = True
        self._loop_thread.start()
        started.wait(5)

    def start_heartbeat(self):
        if not self.heartbeat_interval or self.heartbeat_interval <= 0:
            return
        self._hb_thread = threading.Thread(target=self._heartbeat_main, name="avd-heartbeat")
        self._hb_thread.daemon = True
        self._hb_thread.start()

    def _heartbeat_main(self):
        while not self.stopped.wait(self.heartbeat_interval):
            self.send({"type": "event", "event": "backend_health",
                       "data": {"status": "alive", "ts": now_ms(), "schema_version": SCHEMA_VERSION}})

    def stop(self, reason):
        """Stop talking: nothing more is sent, own pending calls fail at once."""
        with self._lock:
            if self.stopped.is_set():
                return
            self.stop_reason = reason
            self.stopped.set()
            pending = list(self._pending.values())
            self._pending.clear()
        for out in pending:
            self._settle(out, error=AvdError("EVENT_LOOP_CLOSED", "EventLoopClosed",
                                             "the connection to avd closed (%s)" % reason,
                                             {"method": out.method}))
        if self.on_stop is not None:
            try:
                self.on_stop()
            except Exception:
                pass

    def close(self, grace=1.0):
        """Stop, cancel running handlers, let async ones unwind, stop the loop."""
        self.stop("closed")
        with self._lock:
            calls = list(self._calls.values())
            self._calls.clear()
        for call in calls:
            with call._lock:
                if call.cancel_reason is None:
                    call.cancel_reason = "shutdown"
                call._cancel.set()
            if call._future is not None:
                call._future.cancel()
        loop = self.loop
        if loop is None or loop.is_closed():
            return

        async def drain():
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=grace)
            await asyncio.get_running_loop().shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(drain(), loop).result(grace + 1.0)
        except Exception:
            pass
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            return
        if self._loop_thread is not None:
            self._loop_thread.join(grace + 1.0)
            if not self._loop_thread.is_alive():
                loop.close()

    def in_loop_thread(self):
        return self._loop_thread is not None and threading.current_thread() is self._loop_thread

    # ------------------------------------------------------------ output

    def encode(self, msg):
        """JSON text of a message; TypeError/ValueError if it is not JSON,
        AvdError PAYLOAD_TOO_LARGE if avd would discard it."""
        text = encode_text(msg)
        limit = self.max_message_bytes
        if limit and len(text) * 4 > limit:  # cheap test first: UTF-8 takes at most 4 bytes a character
            size = len(text.encode("utf-8"))
            if size > limit:
                raise AvdError("PAYLOAD_TOO_LARGE", "PayloadTooLarge",
                               "message of %d bytes is over avd's limit of %d bytes" % (size, limit),
                               {"size": size, "max_message_bytes": limit})
        return text

    def send(self, msg):
        """Encode and send one message (see :meth:`encode` for the errors)."""
        return self.send_raw(self.encode(msg))

    def send_raw(self, text):
        if self.stopped.is_set():
            return False
        try:
            self._send_text(text)
            return True
        except (OSError, ValueError, RuntimeError) as exc:
            # BrokenPipeError on stdout, a closed loop or socket: the peer is gone.
            self.stop("output closed: %s" % (exc.__class__.__name__,))
            return False

    def _respond(self, call_id, result=None, error=None):
        if error is not None:
            self.send({"id": call_id, "ok": False, "error": error})
            return
        try:
            self.send({"id": call_id, "ok": True, "result": result})
        except (TypeError, ValueError, AvdError) as exc:  # not JSON, or too large
            log_exception("result of call %r cannot be sent:" % (call_id,), exc)
            self.send({"id": call_id, "ok": False, "error": error_from_exception(exc)})

    # ------------------------------------------------------------ input

    def handle_text(self, text):
        try:
            msg = json.loads(text)
        except ValueError:
            log("ignoring input that is not JSON: %r" % (text[:200],))
            return
        try:
            self.handle_message(msg)
        except Exception as exc:
            log_exception("error while handling %r:" % (text[:200],), exc)

    def handle_message(self, msg):
        if not isinstance(msg, dict):
            log("ignoring input that is not a JSON object: %r" % (msg,))
            return
        kind = classify(msg)
        if kind == "call":
            self._on_call(msg)
        elif kind == "response":
            self._on_response(msg)
        elif kind == "event":
            self._on_event(msg)
        elif kind == "cancel":
            self._on_cancel(msg)
        elif kind == "chunk":
            self._on_chunk(msg)
        elif kind == "error":
            err = msg.get("error") if isinstance(msg.get("error"), dict) else {}
            log("avd reported an error: %s %s" % (err.get("code"), err.get("message")))
        elif kind == "welcome":
            pass
        else:
            log("ignoring unknown message: %r" % (encode_text(msg)[:200],))

    # ------------------------------------------------------------ incoming calls

    def _on_call(self, msg):
        cid = msg.get("id")
        method = msg.get("method")
        if isinstance(cid, bool) or not isinstance(cid, (str, int)):
            log("ignoring call without a valid id: %r" % (encode_text(msg)[:200],))
            return
        if not isinstance(method, str):
            self._respond(cid, error={"code": "INVALID_REQUEST", "name": "InvalidRequest",
                                      "message": "method must be a string", "data": {}})
            return
        if method == "__ping__":
            self._respond(cid, {"status": "pong", "ts": now_ms(), "schema_version": SCHEMA_VERSION})
            return
        fn = self.backend._methods.get(method)
        if fn is None:
            self._respond(cid, error={"code": "METHOD_NOT_FOUND", "name": "MethodNotFound",
                                      "message": "no handler for method %r" % method,
                                      "data": {"method": method}})
            return
        call = Call(cid, method, msg.get("params"), msg.get("caller"), msg.get("timeout_ms"))
        with self._lock:
            if cid in self._calls:
                duplicate = True
            else:
                duplicate = False
                self._calls[cid] = call
        if duplicate:
            self._respond(cid, error={"code": "INVALID_REQUEST", "name": "InvalidRequest",
                                      "message": "call id %r is already running" % (cid,),
                                      "data": {"method": method}})
            return
        if is_async_callable(fn):
            call._future = asyncio.run_coroutine_threadsafe(self._run_coro(call, fn, None), self.loop)
        else:
            self._pool.submit(self._sync_job, call, fn)

    def _sync_job(self, call, fn):
        token = _current_call.set(call)
        try:
            if call.cancelled:
                return
            args, kwargs = map_params(call.params)
            try:
                obj = fn(*args, **kwargs)
            except BaseException as exc:
                self._fail(call, exc)
                return
            if inspect.isgenerator(obj):
                self._drive_gen(call, obj)
            elif inspect.isasyncgen(obj) or inspect.iscoroutine(obj) or inspect.isawaitable(obj):
                # A plain function that returned a coroutine (a partial of an
                # async function, an object with async __call__, ...).
                call._future = asyncio.run_coroutine_threadsafe(self._run_coro(call, None, obj), self.loop)
                if call.cancelled:
                    call._future.cancel()
            else:
                self._finish(call, obj)
        finally:
            _current_call.reset(token)

    async def _run_coro(self, call, fn, obj):
        _current_call.set(call)
        if call.cancelled:
            if inspect.iscoroutine(obj):
                obj.close()
            return
        try:
            if obj is None:
                args, kwargs = map_params(call.params)
                obj = fn(*args, **kwargs)
            if inspect.isasyncgen(obj):
                await self._drive_agen(call, obj)
                return
            if inspect.isgenerator(obj):
                self._pool.submit(self._drive_gen_job, call, obj)
                return
            result = (await obj) if inspect.isawaitable(obj) else obj
            self._finish(call, result)
        except asyncio.CancelledError:
            if call.cancelled:
                log("call %r (%s) cancelled: %s" % (call.id, call.method, call.cancel_reason))
        except BaseException as exc:
            self._fail(call, exc)

    def _drive_gen_job(self, call, gen):
        token = _current_call.set(call)
        try:
            self._drive_gen(call, gen)
        finally:
            _current_call.reset(token)

    def _drive_gen(self, call, gen):
        """Send each yielded value as a chunk, then the return value as the result."""
        result = None
        try:
            while not call.cancelled:
                try:
                    value = next(gen)
                except StopIteration as stop:
                    result = stop.value
                    break
                if not self._send_chunk(call, value):
                    break
            self._finish(call, result)
        except BaseException as exc:
            self._fail(call, exc)
        finally:
            # On cancel this raises GeneratorExit inside the generator, at its yield.
            try:
                gen.close()
            except BaseException as exc:
                log_exception("closing the generator of %r raised:" % (call.method,), exc)

    async def _drive_agen(self, call, agen):
        try:
            while not call.cancelled:
                try:
                    value = await agen.__anext__()
                except StopAsyncIteration:
                    break
                if not self._send_chunk(call, value):
                    break
            self._finish(call, None)
        finally:
            await agen.aclose()

    def _send_chunk(self, call, value):
        """Send one chunk unless the call was cancelled or finished; False to stop."""
        with call._lock:
            if call._done or call.cancelled:
                return False
            text = self.encode({"type": "chunk", "id": call.id, "data": value})
            return self.send_raw(text)

    def _forget(self, call):
        with self._lock:
            if self._calls.get(call.id) is call:
                del self._calls[call.id]

    def _finish(self, call, result):
        with call._lock:
            if call._done or call.cancelled:
                return
            call._done = True
            self._forget(call)
            self._respond(call.id, result)

    def _fail(self, call, exc):
        if self.stopped.is_set():
            # Shutting down: no one to answer, and no traceback for an exit asked for.
            log("method %r (call %r) ended with %s while stopping"
                % (call.method, call.id, type(exc).__name__))
            return
        if call.cancelled:
            if not isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
                log_exception("method %r raised after call %r was cancelled:" % (call.method, call.id), exc)
            return
        log_exception("method %r (call %r) raised:" % (call.method, call.id), exc)
        err = error_from_exception(exc)
        with call._lock:
            if call._done or call.cancelled:
                return
            call._done = True
            self._forget(call)
            try:
                self._respond(call.id, error=err)
            except (TypeError, ValueError, AvdError):  # exc.data is not JSON or too large
                err["data"] = {}
                err["message"] = err["message"][:4096]
                self._respond(call.id, error=err)

    def _on_cancel(self, msg):
        cid = msg.get("id")
        if isinstance(cid, bool) or not isinstance(cid, (str, int)):
            return
        with self._lock:
            call = self._calls.pop(cid, None)
        if call is None:
            return
        with call._lock:
            call.cancel_reason = msg.get("reason") or "cancelled"
            call._cancel.set()
        if call._future is not None:
            call._future.cancel()
        log("cancel for call %r (%s): %s" % (call.id, call.method, call.cancel_reason))

    # ------------------------------------------------------------ events

    def _on_event(self, msg):
        name = msg.get("event")
        if not isinstance(name, str):
            return
        if "data" in msg:
            data = msg["data"]
        elif "detail" in msg:
            data = msg["detail"]
        else:
            data = {}
        meta = {"event": name, "from": msg.get("from")}
        for pattern, fn, wants_meta in list(self.backend._handlers):
            if not pattern_matches(pattern, name):
                continue
            args = (data, meta) if wants_meta else (data,)
            if is_async_callable(fn):
                asyncio.run_coroutine_threadsafe(self._event_coro(fn, args, name), self.loop)
            else:
                self._events.submit(self._event_job, fn, args, name)

    def _event_job(self, fn, args, name):
        try:
            obj = fn(*args)
            if inspect.isawaitable(obj):
                asyncio.run_coroutine_threadsafe(self._await_event(obj, name), self.loop)
        except BaseException as exc:
            log_exception("handler for event %r raised:" % name, exc)

    async def _event_coro(self, fn, args, name):
        await self._await_event(fn(*args), name)

    async def _await_event(self, obj, name):
        try:
            await obj
        except asyncio.CancelledError:
            pass
        except BaseException as exc:
            log_exception("handler for event %r raised:" % name, exc)

    # ------------------------------------------------------------ own calls

    def start_call(self, method, params=None, timeout=None, on_chunk=None):
        """Send a call; return its _Outgoing (whose future gets the result or an AvdError)."""
        if self.stopped.is_set():
            raise AvdError("EVENT_LOOP_CLOSED", "EventLoopClosed", "not connected to avd",
                           {"method": method})
        cid = "py-%d" % next(self._ids)
        msg = {"id": cid, "method": method}
        if params is not None:
            msg["params"] = params
        if timeout is not None:
            msg["timeout_ms"] = max(0, int(round(timeout * 1000)))
        text = self.encode(msg)
        out = _Outgoing(cid, method, on_chunk)
        with self._lock:
            self._pending[cid] = out
        if not self.send_raw(text):
            with self._lock:
                self._pending.pop(cid, None)
            raise AvdError("EVENT_LOOP_CLOSED", "EventLoopClosed", "not connected to avd",
                           {"method": method})
        return out

    def abandon(self, out, send_cancel=True):
        """Give up on an own call (local timeout, cancelled caller): tell avd."""
        with self._lock:
            known = self._pending.pop(out.id, None) is not None
        if known and send_cancel:
            self.send_raw(encode_text({"type": "cancel", "id": out.id}))
        if not out.future.done():
            out.future.cancel()

    def _settle(self, out, result=None, error=None):
        try:
            if out.future.done():
                return
            if error is not None:
                out.future.set_exception(error)
            else:
                out.future.set_result(result)
        except _InvalidState:
            pass

    def _on_response(self, msg):
        cid = msg.get("id")
        if isinstance(cid, bool) or not isinstance(cid, (str, int)):
            return
        with self._lock:
            out = self._pending.pop(cid, None)
        if out is None:
            log("response to unknown call %r dropped" % (cid,))
            return
        if msg.get("ok") is False or ("error" in msg and msg.get("ok") is not True):
            self._settle(out, error=AvdError.from_dict(msg.get("error")))
        else:
            self._settle(out, result=msg.get("result"))

    def _on_chunk(self, msg):
        cid = msg.get("id")
        if isinstance(cid, bool) or not isinstance(cid, (str, int)):
            return
        with self._lock:
            out = self._pending.get(cid)
        if out is None:
            return
        out.last_activity = time.monotonic()
        if out.on_chunk is not None:
            try:
                out.on_chunk(msg.get("data"))
            except Exception as exc:
                log_exception("chunk callback for %r raised:" % (out.method,), exc)
