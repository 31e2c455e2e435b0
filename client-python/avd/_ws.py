"""The WebSocket transport (needs the ``websockets`` package, imported lazily).

The connection's I/O runs on the caller's asyncio loop; handlers run in the
session's worker threads and on the session's own handler loop, so a handler
that blocks its loop cannot stall pings or other calls.
"""

import asyncio
import json

from ._protocol import SCHEMA_VERSION, SUBPROTOCOL, encode_text
from ._session import Session, log
from .errors import AvdError

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0


def _import_websockets():
    try:
        import websockets
        import websockets.exceptions
    except ImportError as exc:
        raise ImportError(
            "the avd WebSocket transport needs the 'websockets' package "
            "(pip install websockets, or Debian's python3-websockets); "
            "the stdio transport works without it") from exc
    return websockets


def _invalid_status():
    """The exception class(es) for a refused upgrade, across websockets versions."""
    import websockets.exceptions as wse
    found = tuple(getattr(wse, name) for name in ("InvalidStatus", "InvalidStatusCode")
                  if isinstance(getattr(wse, name, None), type))
    return found or (wse.InvalidHandshake,)


async def _await_call(session, method, params):
    out = session.start_call(method, params)
    return await asyncio.wrap_future(out.future)


async def serve_ws(backend, url, token, heartbeat_interval, max_workers=32):
    websockets = _import_websockets()
    loop = asyncio.get_running_loop()
    try:
        ws = await websockets.connect(url, subprotocols=[SUBPROTOCOL], max_size=MAX_MESSAGE_BYTES,
                                      compression=None, open_timeout=HANDSHAKE_TIMEOUT)
    except (OSError, asyncio.TimeoutError) as exc:
        raise ConnectionError("cannot connect to avd at %s: %s" % (url, exc)) from None
    except _invalid_status() as exc:
        status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            raise AvdError("UNAUTHORIZED", "Unauthorized", "avd refused the token (HTTP 401)",
                           {"url": url}) from exc
        raise ConnectionError("avd at %s refused the WebSocket upgrade: %s" % (url, exc)) from exc
    except websockets.exceptions.InvalidHandshake as exc:
        raise ConnectionError("WebSocket handshake with %s failed: %s" % (url, exc)) from None

    session = None
    tasks = []
    try:
        hello = {"type": "hello", "schema_version": SCHEMA_VERSION, "role": "backend",
                 "name": backend.name}
        if token:
            hello["token"] = token
        await ws.send(encode_text(hello))
        try:
            raw = await asyncio.wait_for(ws.recv(), HANDSHAKE_TIMEOUT)
        except asyncio.TimeoutError:
            raise AvdError("TIMEOUT", "TimeoutError", "no welcome from avd within %gs" % HANDSHAKE_TIMEOUT)
        except websockets.exceptions.ConnectionClosed as exc:
            raise ConnectionError("avd closed the connection before welcome: %s" % exc) from exc
        try:
            welcome = json.loads(raw)
        except ValueError:
            welcome = None
        if isinstance(welcome, dict) and welcome.get("type") == "error":
            raise AvdError.from_dict(welcome.get("error"))
        if not isinstance(welcome, dict) or welcome.get("type") != "welcome":
            raise AvdError("INVALID_REQUEST", "InvalidRequest",
                           "expected welcome from avd, got %r" % (raw[:200],))
        backend.welcome = welcome

        outbox = asyncio.Queue()

        def send_text(text):
            # Any thread; FIFO through the loop keeps every sender's order.
            loop.call_soon_threadsafe(outbox.put_nowait, text)

        session = Session(backend, send_text, heartbeat_interval, max_workers)
        stopped = loop.create_future()

        def on_stop():
            def settle():
                if not stopped.done():
                    stopped.set_result(None)
            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:
                pass
        session.on_stop = on_stop
        config = welcome.get("config")
        limit = config.get("maxMessageBytes") if isinstance(config, dict) else None
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            session.max_message_bytes = limit
        session.start()
        backend._session = session
        writer = loop.create_task(_writer(ws, outbox))
        reader = loop.create_task(_reader(ws, session))
        tasks = [writer, reader]

        methods = backend.methods
        if methods:
            await _await_call(session, "avd.register", {"methods": methods})
        events = backend.subscriptions
        if events:
            await _await_call(session, "avd.subscribe", {"events": events})
        session.send({"type": "ready", "handlers": methods})
        session.start_heartbeat()
        await asyncio.wait(tasks + [stopped], return_when=asyncio.FIRST_COMPLETED)
        if ws.close_code is not None:
            log("connection to avd closed (code %s%s)" % (
                ws.close_code, (", " + ws.close_reason) if ws.close_reason else ""))
    finally:
        if backend._session is session:
            backend._session = None
        if session is not None:
            session.stop("connection closing")
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        try:
            await asyncio.wait_for(ws.close(), 2.0)
        except Exception:
            pass
        if session is not None:
            await loop.run_in_executor(None, session.close)


async def _writer(ws, outbox):
    while True:
        text = await outbox.get()
        await ws.send(text)


async def _reader(ws, session):
    import websockets.exceptions
    try:
        async for raw in ws:
            if isinstance(raw, bytes):
                log("ignoring a binary WebSocket message")
                continue
            session.handle_text(raw)
    except websockets.exceptions.ConnectionClosed:
        pass
    finally:
        session.stop("connection closed")
