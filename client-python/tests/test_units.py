"""In-process tests of the pieces that need no peer."""

import ast
import asyncio
import glob
import json
import os
import sys
import tempfile
import unittest
from unittest import mock

from _harness import PACKAGE_ROOT

sys.path.insert(0, PACKAGE_ROOT)

from avd import AvdError, Backend, error_from_exception  # noqa: E402
from avd import _env, _protocol  # noqa: E402
from avd._session import Session, _Pool  # noqa: E402
from avd.agui import AgUi  # noqa: E402


class Syntax(unittest.TestCase):
    def test_package_parses_as_python_3_7(self):
        files = sorted(glob.glob(os.path.join(PACKAGE_ROOT, "avd", "*.py")))
        self.assertGreater(len(files), 5)
        for path in files:
            with open(path, "rb") as f:
                source = f.read()
            try:
                ast.parse(source, path, feature_version=(3, 7))
            except SyntaxError as exc:
                self.fail("%s is not Python 3.7 syntax: %s" % (path, exc))

    def test_stdio_modules_use_only_the_standard_library(self):
        allowed = set(getattr(sys, "stdlib_module_names", ())) or None
        for name in ("_protocol", "_session", "_stdio", "_env", "errors", "agui", "backend", "__init__"):
            with open(os.path.join(PACKAGE_ROOT, "avd", name + ".py"), "rb") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    mods = [node.module.split(".")[0]]
                else:
                    continue
                for mod in mods:
                    self.assertNotEqual(mod, "websockets", "%s imports websockets" % name)
                    if allowed is not None:
                        self.assertIn(mod, allowed, "%s imports non-stdlib %s" % (name, mod))


class ParamMapping(unittest.TestCase):
    def test_mapping(self):
        m = _protocol.map_params
        self.assertEqual(m({"a": 1}), ((), {"a": 1}))
        self.assertEqual(m([1, 2]), ((1, 2), {}))
        self.assertEqual(m(None), ((), {}))
        self.assertEqual(m("x"), (("x",), {}))
        self.assertEqual(m(0), ((0,), {}))
        self.assertEqual(m(False), ((False,), {}))
        self.assertEqual(m([]), ((), {}))


class Encoding(unittest.TestCase):
    def test_utf8_not_escaped(self):
        text = _protocol.encode_text({"t": "你好😀"})
        self.assertEqual(text, '{"t":"你好😀"}')
        self.assertEqual(_protocol.encode_line({"a": 1}), b'{"a":1}\n')

    def test_lone_surrogate_falls_back_to_escapes(self):
        text = _protocol.encode_text({"delta": "\ud83d", "ok": "é"})
        text.encode("utf-8")  # must not raise
        self.assertIn("\\ud83d", text)
        self.assertEqual(json.loads(text), {"delta": "\ud83d", "ok": "é"})

    def test_nan_refused(self):
        with self.assertRaises(ValueError):
            _protocol.encode_text({"x": float("nan")})

    def test_classify(self):
        c = _protocol.classify
        self.assertEqual(c({"id": 1, "method": "m"}), "call")
        self.assertEqual(c({"type": "call", "id": 1, "method": "m"}), "call")
        self.assertEqual(c({"id": 1, "ok": True, "result": 1}), "response")
        self.assertEqual(c({"id": 1, "result": None}), "response")
        self.assertEqual(c({"id": 1, "error": {}}), "response")
        self.assertEqual(c({"type": "event", "event": "x"}), "event")
        self.assertEqual(c({"type": "cancel", "id": 1}), "cancel")
        self.assertEqual(c({"type": "chunk", "id": 1, "data": 1}), "chunk")
        self.assertEqual(c({"type": "ready"}), "other")

    def test_event_names_and_patterns(self):
        _protocol.check_event_name("agui:text_message_content")
        _protocol.check_event_name("a/b-c.d_e")
        for bad in ("", "has space", "x" * 256, "é", None):
            with self.assertRaises(ValueError):
                _protocol.check_event_name(bad)
        _protocol.check_pattern("*")
        _protocol.check_pattern("agui:*")
        with self.assertRaises(ValueError):
            _protocol.check_pattern("bad name*")
        pm = _protocol.pattern_matches
        self.assertTrue(pm("agui:*", "agui:run_started"))
        self.assertFalse(pm("agui:*", "aguix"))
        self.assertTrue(pm("*", "anything"))
        self.assertTrue(pm("x", "x"))
        self.assertFalse(pm("x", "xy"))


class Errors(unittest.TestCase):
    def test_plain_exception(self):
        self.assertEqual(error_from_exception(KeyError("k")),
                         {"name": "KeyError", "message": "'k'", "data": {}})

    def test_code_and_data_attributes(self):
        class Oops(Exception):
            code = "E_OOPS"
            data = {"n": 1}
        self.assertEqual(error_from_exception(Oops("bad")),
                         {"code": "E_OOPS", "name": "Oops", "message": "bad", "data": {"n": 1}})

        class Numbered(Exception):
            code = 404
        self.assertEqual(error_from_exception(Numbered("nf"))["code"], "404")

    def test_avd_error_round_trip(self):
        err = {"code": "TIMEOUT", "name": "TimeoutError", "message": "slow",
               "data": {"method": "m", "timeout_ms": 5}}
        exc = AvdError.from_dict(err)
        self.assertEqual((exc.code, exc.name, exc.message, exc.data),
                         ("TIMEOUT", "TimeoutError", "slow", err["data"]))
        self.assertEqual(error_from_exception(exc), err)
        self.assertEqual(str(exc), "TIMEOUT: slow")
        self.assertEqual(AvdError.from_dict({"message": "x"}).code, "BACKEND_ERROR")
        self.assertEqual(AvdError("QUEUE_FULL").name, "QueueFull")


class Environment(unittest.TestCase):
    def test_transport_choice(self):
        ct = _env.choose_transport
        self.assertEqual(ct({"AURORAVIEW_PACKED": "1"}, False), "stdio")
        self.assertEqual(ct({"AVD_BACKEND_NAME": "x"}, False), "stdio")
        self.assertEqual(ct({"AVD_BACKEND_NAME": "x"}, True), "ws")
        self.assertEqual(ct({"AURORAVIEW_PACKED": "0"}, False), "ws")
        self.assertEqual(ct({}, False), "ws")

    def test_url(self):
        with tempfile.TemporaryDirectory() as tmp:
            env = {"XDG_RUNTIME_DIR": tmp}
            with mock.patch.object(_env, "runtime_dirs", return_value=[os.path.join(tmp, "avd")]):
                self.assertEqual(_env.default_url(env), "ws://127.0.0.1:7700/ws")
            os.mkdir(os.path.join(tmp, "avd"))
            with open(os.path.join(tmp, "avd", "url"), "w") as f:
                f.write("ws://127.0.0.1:43210/ws\n")
            # avd's runtime file (it may listen on any port), unless AVD_URL says otherwise
            self.assertEqual(_env.default_url(env), "ws://127.0.0.1:43210/ws")
            env["AVD_URL"] = "ws://127.0.0.1:1/ws"
            self.assertEqual(_env.default_url(env), "ws://127.0.0.1:1/ws")
        self.assertEqual(_env.url_paths({})[-1], "/tmp/avd-%d/url" % os.getuid())

    def test_token_sources(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(_env.find_token({"AVD_TOKEN": " abc\n", "XDG_RUNTIME_DIR": tmp}), "abc")
            os.mkdir(os.path.join(tmp, "avd"))
            with open(os.path.join(tmp, "avd", "token"), "w") as f:
                f.write("00ff\n")
            self.assertEqual(_env.find_token({"XDG_RUNTIME_DIR": tmp}), "00ff")
            self.assertEqual(_env.token_paths({"XDG_RUNTIME_DIR": tmp})[0],
                             os.path.join(tmp, "avd", "token"))
        self.assertEqual(_env.token_paths({})[-1], "/tmp/avd-%d/token" % os.getuid())

    def test_heartbeat_interval(self):
        self.assertEqual(_env.heartbeat_interval(None, {}), 2.0)
        self.assertEqual(_env.heartbeat_interval(None, {"AVD_HEARTBEAT_INTERVAL_MS": "250"}), 0.25)
        self.assertEqual(_env.heartbeat_interval(0.5, {"AVD_HEARTBEAT_INTERVAL_MS": "250"}), 0.5)


class Declaring(unittest.TestCase):
    def test_decorators(self):
        b = Backend("t")

        @b.method("api.a")
        def a():
            pass

        @b.method
        def bare():
            pass

        @b.method()
        async def named():
            pass

        @b.on("x")
        def h(data):
            pass

        @b.on("x")
        def h2(data, meta):
            pass

        @b.on("y:*")
        def h3(*args):
            pass

        self.assertEqual(b.methods, ["api.a", "bare", "named"])
        self.assertEqual(b.subscriptions, ["x", "y:*"])
        self.assertEqual([m for _p, _f, m in b._handlers], [False, True, False])
        with self.assertRaises(ValueError):
            b.add_method("__ping__", a)
        with self.assertRaises(ValueError):
            b.on("bad name")(h)

    def test_emit_and_call_need_a_running_backend(self):
        b = Backend("t")
        with self.assertRaises(AvdError) as cm:
            b.emit("x", {})
        self.assertEqual(cm.exception.code, "EVENT_LOOP_CLOSED")
        with self.assertRaises(AvdError):
            b.call_sync("m")

    def test_run_rejects_unknown_transport(self):
        with self.assertRaises(ValueError):
            Backend("t").run(transport="carrier-pigeon")


class InProcessSession(unittest.TestCase):
    """The session core with a list as its transport."""

    def setUp(self):
        self.sent = []
        self.backend = Backend("t", heartbeat_interval=0)
        self.session = Session(self.backend, self.sent.append, 0, 4)
        self.session.start()
        self.backend._session = self.session
        self.addCleanup(self.session.close)

    def test_call_sync_from_a_thread_and_stop_fails_pending(self):
        import threading
        results = []

        def caller():
            try:
                results.append(self.backend.call_sync("other.m", {"x": 1}))
            except AvdError as exc:
                results.append(exc)

        t = threading.Thread(target=caller)
        t.start()
        for _ in range(100):
            if self.sent:
                break
            import time
            time.sleep(0.01)
        msg = json.loads(self.sent[0])
        self.assertEqual(msg["method"], "other.m")
        self.assertNotIn("timeout_ms", msg)
        self.session.stop("test")
        t.join(2)
        self.assertIsInstance(results[0], AvdError)
        self.assertEqual(results[0].code, "EVENT_LOOP_CLOSED")

    def test_async_call_cancelled_sends_cancel(self):
        async def main():
            task = asyncio.ensure_future(self.backend.call("other.m", None, timeout=0))
            await asyncio.sleep(0.05)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return "cancelled"

        self.assertEqual(asyncio.run(main()), "cancelled")
        msgs = [json.loads(t) for t in self.sent]
        self.assertEqual(msgs[0]["timeout_ms"], 0)
        self.assertEqual(msgs[1], {"type": "cancel", "id": msgs[0]["id"]})

    def test_call_sync_refuses_to_block_a_loop(self):
        async def main():
            self.backend.call_sync("other.m")

        with self.assertRaises(RuntimeError):
            asyncio.run(main())

    def test_unserialisable_result_becomes_error(self):
        import contextlib
        import io
        import time
        self.backend._methods["api.bad"] = lambda: object()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.session.handle_text('{"id": 1, "method": "api.bad"}')
            for _ in range(200):
                if self.sent:
                    break
                time.sleep(0.01)
        msg = json.loads(self.sent[0])
        self.assertEqual(msg["id"], 1)
        self.assertIn("not JSON serializable", err.getvalue())
        self.assertFalse(msg["ok"])
        self.assertEqual(msg["error"]["name"], "TypeError")


    def test_oversized_messages_are_refused_here(self):
        import contextlib
        import io
        import time
        self.session.max_message_bytes = 1000
        with self.assertRaises(AvdError) as cm:
            self.backend.emit("big", {"s": "é" * 600})
        self.assertEqual(cm.exception.code, "PAYLOAD_TOO_LARGE")
        self.backend.emit("small", {"s": "é" * 400})
        self.backend._methods["api.big"] = lambda: "x" * 2000

        def stream():
            yield "ok"
            yield "y" * 2000
            yield "never"
        self.backend._methods["api.bigstream"] = stream
        with contextlib.redirect_stderr(io.StringIO()):
            self.session.handle_text('{"id": 1, "method": "api.big"}')
            self.session.handle_text('{"id": 2, "method": "api.bigstream"}')
            for _ in range(200):
                if len(self.sent) >= 4:
                    break
                time.sleep(0.01)
        msgs = [json.loads(t) for t in self.sent[1:]]
        big = [m for m in msgs if m.get("id") == 1][0]
        self.assertEqual(big["error"]["code"], "PAYLOAD_TOO_LARGE")
        stream_msgs = [m for m in msgs if m.get("id") == 2]
        self.assertEqual(stream_msgs[0], {"type": "chunk", "id": 2, "data": "ok"})
        self.assertEqual(stream_msgs[1]["error"]["code"], "PAYLOAD_TOO_LARGE")
        self.assertEqual(len(stream_msgs), 2)


class Pool(unittest.TestCase):
    def test_grows_for_blocked_jobs_and_respects_max(self):
        import threading
        pool = _Pool(3, "t")
        release = threading.Event()
        started = []
        lock = threading.Lock()

        def job(i):
            with lock:
                started.append(i)
            release.wait(5)

        for i in range(5):
            pool.submit(job, i)
        import time
        time.sleep(0.3)
        self.assertEqual(sorted(started), [0, 1, 2])
        release.set()
        time.sleep(0.3)
        self.assertEqual(sorted(started), [0, 1, 2, 3, 4])
        self.assertEqual(pool._threads, 3)


class AguiEvents(unittest.TestCase):
    def test_sequence(self):
        sent = []
        agui = AgUi(lambda e, d: sent.append((e, d)))
        with agui.run("th", "r") as run:
            run.text("hi", message_id="m")
            run.result = {"n": 1}
        self.assertEqual(sent, [
            ("agui:run_started", {"thread_id": "th", "run_id": "r"}),
            ("agui:text_message_start", {"message_id": "m", "role": "assistant"}),
            ("agui:text_message_content", {"message_id": "m", "delta": "hi"}),
            ("agui:text_message_end", {"message_id": "m"}),
            ("agui:run_finished", {"thread_id": "th", "run_id": "r", "result": {"n": 1}}),
        ])

    def test_error_and_async_stream(self):
        sent = []
        agui = AgUi(lambda e, d: sent.append((e, d)))

        async def pieces():
            for p in ("a", "", "b"):
                yield p

        mid = asyncio.run(agui.astream_text(pieces()))
        self.assertEqual([d.get("delta") for e, d in sent if e.endswith("content")], ["a", "b"])
        self.assertTrue(mid.startswith("msg_"))
        with self.assertRaises(KeyError):
            with agui.run("th", "r"):
                raise KeyError("nope")
        self.assertEqual(sent[-1], ("agui:run_error", {"message": "'nope'", "thread_id": "th", "run_id": "r"}))


if __name__ == "__main__":
    unittest.main()
