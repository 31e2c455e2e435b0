"""The WebSocket transport against a small fake avd written with websockets."""

import asyncio
import http
import json
import queue
import threading
import time
import unittest

from _harness import Child, child_env, is_heartbeat

try:
    import websockets
except ImportError:  # pragma: no cover - depends on the interpreter
    websockets = None

TOKEN = "0123456789abcdef0123456789abcdef"


class FakeAvd(object):
    """Accepts one backend: checks hello, answers welcome, records what it sends.

    ``mode``: "ok", "unauthorized" (answers hello with an UNAUTHORIZED error) or
    "http401" (refuses the upgrade with HTTP 401).
    avd.register / avd.subscribe calls are answered ok at once.
    """

    def __init__(self, mode="ok"):
        self.mode = mode
        self.inbox = queue.Queue()
        self.hello = None
        self.subprotocol = None
        self.ws = None
        self.connected = threading.Event()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(started,))
        self.thread.daemon = True
        self.thread.start()
        if not started.wait(5):
            raise RuntimeError("fake avd did not start")

    def _main(self, started):
        asyncio.set_event_loop(self.loop)

        async def boot():
            self.server = await websockets.serve(self._handler, "127.0.0.1", 0,
                                                 subprotocols=["avd.v1"],
                                                 process_request=self._process_request)
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()

        self.loop.run_until_complete(boot())
        self.loop.run_forever()

    @property
    def url(self):
        return "ws://127.0.0.1:%d/ws" % self.port

    async def _process_request(self, path, headers):
        if self.mode == "http401":
            self.hello = {"refused_at": "upgrade"}
            return (http.HTTPStatus.UNAUTHORIZED, [("Content-Type", "text/plain")], b"wrong token\n")
        return None

    async def _handler(self, ws, path=None):
        self.subprotocol = ws.subprotocol
        self.hello = json.loads(await ws.recv())
        if self.mode == "unauthorized" or self.hello.get("token") != TOKEN:
            await ws.send(json.dumps({"type": "error", "error": {
                "code": "UNAUTHORIZED", "name": "Unauthorized", "message": "bad token", "data": {}}}))
            await ws.close(1008, "unauthorized")
            return
        await ws.send(json.dumps({
            "type": "welcome", "schema_version": 1, "session": "s7", "server": "fake/0",
            "heartbeat_interval_ms": 2000, "config": {"callTimeoutMs": 30000}}))
        self.ws = ws
        self.connected.set()
        try:
            async for raw in ws:
                msg = json.loads(raw)
                self.inbox.put((time.monotonic(), msg))
                if msg.get("method") in ("avd.register", "avd.subscribe"):
                    await ws.send(json.dumps({"id": msg["id"], "ok": True, "result": msg["params"]}))
        except websockets.exceptions.ConnectionClosed:
            pass

    def send(self, msg):
        self.connected.wait(5)
        asyncio.run_coroutine_threadsafe(self.ws.send(json.dumps(msg, ensure_ascii=False)),
                                         self.loop).result(5)

    def close_client(self):
        asyncio.run_coroutine_threadsafe(self.ws.close(1001, "going away"), self.loop).result(5)

    def expect(self, pred, timeout=5.0, what="message"):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("fake avd got no %s within %.1fs; got %r" % (what, timeout, seen[-20:]))
            try:
                t, msg = self.inbox.get(timeout=remaining)
            except queue.Empty:
                continue
            if pred(msg):
                return msg
            seen.append(msg)

    def stop(self):
        async def down():
            self.server.close()
            await self.server.wait_closed()
        try:
            asyncio.run_coroutine_threadsafe(down(), self.loop).result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


@unittest.skipIf(websockets is None,
                 "the 'websockets' package is not importable by this Python "
                 "(run the suite with /usr/bin/python3 to test the WebSocket transport)")
class WebSocketTransport(unittest.TestCase):
    def start(self, mode="ok", token=TOKEN, **env):
        server = FakeAvd(mode)
        self.addCleanup(server.stop)
        # Not spawned by avd (no AURORAVIEW_PACKED / AVD_BACKEND_NAME): run() picks WebSocket.
        child = Child(child_env(stdio=False, AVD_URL=server.url, AVD_TOKEN=token, **env),
                      protocol=False)
        self.addCleanup(child.kill)
        return server, child

    def test_handshake_register_subscribe_ready_then_calls_events_pings(self):
        server, child = self.start(AVD_HEARTBEAT_INTERVAL_MS=300)
        reg = server.expect(lambda m: m.get("method") == "avd.register", what="avd.register")
        self.assertEqual(server.hello, {"type": "hello", "schema_version": 1, "role": "backend",
                                        "name": "fixture", "token": TOKEN})
        self.assertEqual(server.subprotocol, "avd.v1")
        self.assertIn("api.count", reg["params"]["methods"])
        self.assertEqual(len(reg["params"]["methods"]), 18)
        sub = server.expect(lambda m: m.get("method") == "avd.subscribe", what="avd.subscribe")
        self.assertEqual(sub["params"], {"events": ["poke", "ns:*"]})
        ready = server.expect(lambda m: m.get("type") == "ready", what="ready")
        self.assertEqual(ready["handlers"], reg["params"]["methods"])

        server.send({"id": "c1", "method": "api.kw", "params": {"a": "你好"}, "caller": "s3",
                     "timeout_ms": 5000})
        r = server.expect(lambda m: m.get("id") == "c1", what="response")
        self.assertEqual(r, {"id": "c1", "ok": True, "result": {"a": "你好", "b": 2}})

        server.send({"id": "c2", "method": "api.count", "params": [3]})
        got = []
        while True:
            m = server.expect(lambda m: m.get("id") == "c2", what="chunk or response")
            got.append(m)
            if m.get("type") != "chunk":
                break
        self.assertEqual([m.get("data") for m in got[:-1]], [0, 1, 2])
        self.assertEqual(got[-1], {"id": "c2", "ok": True, "result": {"total": 3}})

        server.send({"id": "__av_ping_1", "method": "__ping__", "params": {"schema_version": 1, "ts": 1}})
        pong = server.expect(lambda m: m.get("id") == "__av_ping_1", what="pong")
        self.assertEqual(pong["result"]["status"], "pong")

        server.send({"type": "event", "event": "poke", "data": {"n": 1}, "from": "s3"})
        ev = server.expect(lambda m: m.get("event") == "poked", what="poked event")
        self.assertEqual(ev, {"type": "event", "event": "poked", "data": {"got": {"n": 1}}})

        beat = server.expect(is_heartbeat, timeout=2, what="heartbeat")
        self.assertEqual(beat["data"]["status"], "alive")

        server.send({"id": "c3", "method": "api.fail", "params": ["nope"]})
        r = server.expect(lambda m: m.get("id") == "c3", what="error response")
        self.assertEqual(r["error"], {"name": "ValueError", "message": "nope", "data": {}})

        # The backend calling another session through avd.
        server.send({"id": "c4", "method": "api.relay_async", "params": {"method": "win.eval", "params": [1]}})
        out = server.expect(lambda m: m.get("method") == "win.eval", what="outgoing call")
        server.send({"type": "chunk", "id": out["id"], "data": "half"})
        server.send({"id": out["id"], "ok": True, "result": "whole"})
        r = server.expect(lambda m: m.get("id") == "c4", what="relay response")
        self.assertEqual(r["result"], {"result": "whole", "chunks": ["half"]})

        # avd going away ends run() normally.
        server.close_client()
        self.assertEqual(child.wait(5), 0, child.stderr_text())
        # the only traceback is the one of api.fail
        self.assertEqual(child.stderr_text().count("Traceback"), 1, child.stderr_text())
        self.assertIn("run() returned", child.stderr_text())
        self.assertIn("websockets imported: True", child.stderr_text())

    def test_busy_handler_and_cancel_over_websocket(self):
        server, child = self.start()
        server.expect(lambda m: m.get("type") == "ready", what="ready")
        server.send({"id": "busy", "method": "api.sleep", "params": [2]})
        server.send({"id": "g", "method": "api.count", "params": {"n": 1000, "delay": 0.05}})
        server.expect(lambda m: m.get("type") == "chunk" and m.get("id") == "g")
        sent = time.monotonic()
        server.send({"id": "p", "method": "__ping__"})
        server.expect(lambda m: m.get("id") == "p")
        self.assertLess(time.monotonic() - sent, 0.5)
        server.send({"type": "cancel", "id": "g", "reason": "cancelled"})
        child.wait_stderr("GENERATOR_EXIT api.count", timeout=2)
        # SIGTERM while a handler is busy: clean exit 0
        child.terminate()
        self.assertEqual(child.wait(5), 0, child.stderr_text())
        self.assertNotIn("Traceback", child.stderr_text())

    def test_backend_stop_ends_run(self):
        server, child = self.start()
        server.expect(lambda m: m.get("type") == "ready", what="ready")
        server.send({"id": 1, "method": "api.quit"})
        self.assertEqual(child.wait(5), 0, child.stderr_text())
        self.assertIn("run() returned", child.stderr_text())

    def test_refused_token_fails_run(self):
        server, child = self.start(token="wrong")
        rc = child.wait(10)
        self.assertNotEqual(rc, 0)
        self.assertIn("UNAUTHORIZED", child.stderr_text())
        self.assertEqual(server.hello["token"], "wrong")

    def test_http_401_at_upgrade_fails_run(self):
        server, child = self.start(mode="http401")
        rc = child.wait(10)
        self.assertNotEqual(rc, 0)
        self.assertIn("UNAUTHORIZED", child.stderr_text())
        self.assertEqual(server.hello, {"refused_at": "upgrade"})

    def test_explicit_transport_wins_over_environment(self):
        # Spawned-looking environment, but FIXTURE_TRANSPORT=ws makes run(transport="ws").
        server = FakeAvd()
        self.addCleanup(server.stop)
        child = Child(child_env(stdio=True, AVD_URL=server.url, AVD_TOKEN=TOKEN, FIXTURE_TRANSPORT="ws"),
                      protocol=False)
        self.addCleanup(child.kill)
        server.expect(lambda m: m.get("type") == "ready", what="ready")
        child.terminate()
        self.assertEqual(child.wait(5), 0, child.stderr_text())


if __name__ == "__main__":
    unittest.main()
