"""The stdio transport, driven for real: the fixture backend runs as a child
process with pipes, and the test speaks avd's newline-JSON dialect to it."""

import glob
import json
import os
import subprocess
import sys
import time
import unittest

from _harness import FIXTURE, Child, child_env, is_heartbeat

FIXTURE_METHODS = ["api.kw", "api.pos", "api.one", "api.echo", "api.add", "api.sleep",
                   "api.asleep", "api.count", "api.acount", "api.fail", "api.fail_code",
                   "api.noisy", "api.context", "api.relay_sync", "api.relay_async",
                   "api.agui", "api.agui_fail", "api.quit"]


class StdioCase(unittest.TestCase):
    env = None

    def start(self, **env):
        child = Child(child_env(**env))
        self.addCleanup(child.kill)
        self.ready = child.ready()
        return child

    def setUp(self):
        self.child = None

    def assertCleanStdout(self, child):
        self.assertEqual(child.bad_lines, [], "stdout carried lines that are not JSON objects")


class ReadyAndCalls(StdioCase):
    def test_ready_is_first_line_and_lists_handlers(self):
        child = self.start()
        first = json.loads(child.raw[0].decode("utf-8"))
        self.assertEqual(first, {"type": "ready", "handlers": FIXTURE_METHODS})
        # Event handlers are subscribed with a call to avd.subscribe.
        sub = child.expect(lambda m: m.get("method") == "avd.subscribe")
        self.assertEqual(sub["params"], {"events": ["poke", "ns:*"]})
        child.send({"id": sub["id"], "ok": True, "result": {"events": ["poke", "ns:*"]}})
        self.assertCleanStdout(child)

    def test_param_mapping(self):
        child = self.start()
        # dict -> keyword arguments
        r = child.call(1, "api.kw", {"a": 1, "b": "x"})
        self.assertEqual(r, {"id": 1, "ok": True, "result": {"a": 1, "b": "x"}})
        r = child.call(2, "api.kw", {"a": [1, 2]})
        self.assertEqual(r["result"], {"a": [1, 2], "b": 2})
        # list -> positional arguments
        r = child.call("s3", "api.pos", [1, "two", {"three": 3}])
        self.assertEqual(r, {"id": "s3", "ok": True, "result": {"args": [1, "two", {"three": 3}]}})
        # scalar -> one argument
        r = child.call(4, "api.one", 42)
        self.assertEqual(r["result"], {"args": [42], "kwargs": {}})
        r = child.call(5, "api.one", "text")
        self.assertEqual(r["result"], {"args": ["text"], "kwargs": {}})
        # null and absent -> no argument
        child.send({"id": 6, "method": "api.one", "params": None})
        self.assertEqual(child.expect_response(6)["result"], {"args": [], "kwargs": {}})
        r = child.call(7, "api.one")
        self.assertEqual(r["result"], {"args": [], "kwargs": {}})
        # "type":"call" may be present
        child.send({"type": "call", "id": 8, "method": "api.kw", "params": {"a": 0}})
        self.assertEqual(child.expect_response(8)["result"], {"a": 0, "b": 2})
        # wrong arguments are an error, not a crash
        r = child.call(9, "api.kw", {"zzz": 1})
        self.assertFalse(r["ok"])
        self.assertEqual(r["error"]["name"], "TypeError")
        self.assertCleanStdout(child)

    def test_async_method_and_call_context(self):
        child = self.start()
        self.assertEqual(child.call(1, "api.add", [2, 3])["result"], 5)
        self.assertEqual(child.call(2, "api.add", {"a": 0.5, "b": 1})["result"], 1.5)
        r = child.call("c17", "api.context", caller="s3", timeout_ms=5000)
        self.assertEqual(r["result"], {"id": "c17", "method": "api.context",
                                       "caller": "s3", "timeout_ms": 5000})

    def test_unknown_method(self):
        child = self.start()
        r = child.call(1, "api.missing", {"x": 1})
        self.assertFalse(r["ok"])
        self.assertEqual(r["error"]["code"], "METHOD_NOT_FOUND")
        self.assertEqual(r["error"]["name"], "MethodNotFound")
        self.assertEqual(r["error"]["data"], {"method": "api.missing"})

    def test_ping_answered(self):
        child = self.start()
        before = int(time.time() * 1000)
        r = child.call("__av_ping_7", "__ping__", {"schema_version": 1, "ts": before})
        self.assertTrue(r["ok"])
        self.assertEqual(r["result"]["status"], "pong")
        self.assertGreaterEqual(r["result"]["ts"], before - 1000)

    def test_exception_becomes_structured_error_with_traceback_on_stderr(self):
        child = self.start()
        r = child.call(1, "api.fail", ["bad value"])
        self.assertEqual(r, {"id": 1, "ok": False,
                             "error": {"name": "ValueError", "message": "bad value", "data": {}}})
        child.wait_stderr("ValueError: bad value")
        self.assertIn("Traceback (most recent call last):", child.stderr_text())
        self.assertIn("fixture_backend.py", child.stderr_text())
        # an exception with a code (and data) keeps them
        r = child.call(2, "api.fail_code")
        self.assertEqual(r["error"], {"code": "E_CUSTOM", "name": "CodedError",
                                      "message": "custom failure", "data": {"hint": "x"}})
        # the backend goes on serving
        self.assertEqual(child.call(3, "api.kw", {"a": 1})["result"], {"a": 1, "b": 2})
        self.assertCleanStdout(child)

    def test_bad_input_is_skipped(self):
        child = self.start()
        child.send(b"this is not json\n")
        child.send(b"[1, 2, 3]\n")
        child.send(b"\xff\xfe{broken\n")
        child.send(b"\n")
        child.send({"type": "mystery"})
        # invalid UTF-8 inside a string becomes U+FFFD
        child.send(b'{"id": 1, "method": "api.echo", "params": ["a\xffb"]}\n')
        r = child.expect_response(1)
        self.assertEqual(r["result"]["text"], "a\ufffdb")
        # CRLF line endings are tolerated
        child.send(b'{"id": 2, "method": "api.kw", "params": {"a": 2}}\r\n')
        self.assertEqual(child.expect_response(2)["result"], {"a": 2, "b": 2})
        self.assertIsNone(child.proc.poll())
        self.assertCleanStdout(child)

    def test_non_ascii_round_trip(self):
        child = self.start()
        text = "你好，世界 🌍😀 é ß 𝄞"
        r = child.call(1, "api.echo", {"text": text})
        self.assertEqual(r["result"], {"text": text, "reply": text + " ✓ 你好 😀"})
        raw = [line for line in child.raw if b'"id":1' in line][0]
        # written as UTF-8 (ensure_ascii=False), not as \u escapes
        self.assertIn(text.encode("utf-8"), raw)
        self.assertNotIn(b"\\u", raw)
        # a lone surrogate (valid JSON escape) still gets an answer
        child.send(b'{"id": 2, "method": "api.echo", "params": ["x\\ud83d"]}\n')
        r = child.expect_response(2)
        self.assertTrue(r["ok"])
        self.assertEqual(r["result"]["text"], "x\ud83d")

    def test_stray_print_does_not_corrupt_stdout(self):
        child = self.start()
        r = child.call(1, "api.noisy")
        self.assertEqual(r["result"], "ok")
        child.wait_stderr("stray print from a handler")
        child.wait_stderr("RAW-FD1 write from a handler")
        self.assertEqual(child.call(2, "api.kw", {"a": 1})["result"], {"a": 1, "b": 2})
        self.assertCleanStdout(child)
        self.assertFalse(any(b"stray" in line or b"RAW-FD1" in line for line in child.raw))


class Streaming(StdioCase):
    def test_generator_streams_chunks_then_return_value(self):
        child = self.start()
        child.send({"id": "g1", "method": "api.count", "params": [5]})
        r = child.expect_response("g1")
        chunks = child.all_messages(lambda m: m.get("type") == "chunk" and m.get("id") == "g1")
        self.assertEqual([c["data"] for c in chunks], [0, 1, 2, 3, 4])
        self.assertEqual(chunks[0], {"type": "chunk", "id": "g1", "data": 0})
        self.assertEqual(r, {"id": "g1", "ok": True, "result": {"total": 5}})
        # every chunk came before the final response
        order = [m for m in child.all_messages() if m.get("id") == "g1"]
        self.assertEqual(order[-1], r)

    def test_async_generator_streams_then_null(self):
        child = self.start()
        child.send({"id": 2, "method": "api.acount", "params": {"n": 3}})
        r = child.expect_response(2)
        chunks = child.all_messages(lambda m: m.get("type") == "chunk" and m.get("id") == 2)
        self.assertEqual([c["data"] for c in chunks], [{"i": 0}, {"i": 1}, {"i": 2}])
        self.assertEqual(r, {"id": 2, "ok": True, "result": None})

    def _chunks(self, child, cid):
        return child.all_messages(lambda m: m.get("type") == "chunk" and m.get("id") == cid)

    def _assert_stopped(self, child, cid):
        n = len(self._chunks(child, cid))
        time.sleep(0.5)
        self.assertEqual(len(self._chunks(child, cid)), n, "chunks kept coming after cancel")
        self.assertEqual(child.all_messages(lambda m: m.get("id") == cid and m.get("type") is None), [],
                         "a cancelled call must get no final response")

    def test_cancel_closes_sync_generator(self):
        child = self.start()
        child.send({"id": "c17", "method": "api.count", "params": {"n": 1000, "delay": 0.05}})
        child.expect(lambda m: m.get("type") == "chunk" and m.get("id") == "c17" and m["data"] == 1)
        sent_at = len(self._chunks(child, "c17"))
        child.send({"type": "cancel", "id": "c17", "reason": "cancelled"})
        child.wait_stderr("GENERATOR_EXIT api.count", timeout=2)
        self.assertLessEqual(len(self._chunks(child, "c17")), sent_at + 1)
        self._assert_stopped(child, "c17")
        # still serving
        self.assertEqual(child.call(1, "api.kw", {"a": 1})["result"], {"a": 1, "b": 2})

    def test_cancel_closes_async_generator(self):
        child = self.start()
        child.send({"id": "a1", "method": "api.acount", "params": {"n": 1000, "delay": 0.05}})
        child.expect(lambda m: m.get("type") == "chunk" and m.get("id") == "a1" and m["data"] == {"i": 1})
        child.send({"type": "cancel", "id": "a1", "reason": "timeout"})
        child.wait_stderr("AGEN_FINALLY api.acount", timeout=2)
        self._assert_stopped(child, "a1")

    def test_cancel_cancels_coroutine(self):
        child = self.start()
        child.send({"id": "t1", "method": "api.asleep", "params": [10]})
        time.sleep(0.2)
        child.send({"type": "cancel", "id": "t1", "reason": "caller_gone"})
        child.wait_stderr("TASK_CANCELLED api.asleep", timeout=2)
        self._assert_stopped(child, "t1")
        self.assertIn("caller_gone", child.stderr_text())


class Concurrency(StdioCase):
    def test_busy_handler_does_not_block_pings_calls_or_heartbeats(self):
        child = self.start(AVD_HEARTBEAT_INTERVAL_MS=500)
        t0 = time.monotonic()
        child.send({"id": "busy", "method": "api.sleep", "params": [3]})
        time.sleep(0.2)
        for i, (method, params) in enumerate([("__ping__", {"schema_version": 1, "ts": 1}),
                                              ("api.kw", {"a": 1}),
                                              ("api.add", [1, 2]),
                                              ("api.sleep", [0])]):
            sent = time.monotonic()
            r = child.call(i, method, params, timeout=1.0)
            self.assertTrue(r["ok"], r)
            self.assertLess(time.monotonic() - sent, 1.0, "answer to %s was slow" % method)
        self.assertEqual(child.all_messages(lambda m: m.get("id") == "busy"), [])
        r = child.expect_response("busy", timeout=5)
        self.assertEqual(r["result"], {"slept": 3})
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 2.9)
        beats = [t for t, m in child.timed_messages(is_heartbeat) if t - t0 < 3.0]
        self.assertGreaterEqual(len(beats), 4, "heartbeats stalled while a handler was busy")

    def test_heartbeats_arrive_at_the_interval(self):
        child = self.start(AVD_HEARTBEAT_INTERVAL_MS=250)
        time.sleep(1.4)
        beats = child.timed_messages(is_heartbeat)
        self.assertGreaterEqual(len(beats), 3)
        self.assertLessEqual(len(beats), 7)
        gaps = [b[0] - a[0] for a, b in zip(beats, beats[1:])]
        for gap in gaps:
            self.assertGreater(gap, 0.15)
            self.assertLess(gap, 0.9)
        data = beats[0][1]["data"]
        self.assertEqual(data["status"], "alive")
        self.assertEqual(data["schema_version"], 1)
        self.assertLess(abs(data["ts"] - time.time() * 1000), 10000)
        self.assertEqual(set(beats[0][1]), {"type", "event", "data"})

    def test_default_heartbeat_interval_is_two_seconds(self):
        child = self.start()
        t0 = time.monotonic()
        beat = child.expect(is_heartbeat, timeout=3.5, what="heartbeat")
        first = child.timed_messages(is_heartbeat)[0][0]
        self.assertEqual(beat["data"]["status"], "alive")
        self.assertGreater(first - t0, 1.5)


class Events(StdioCase):
    def test_event_handlers_get_data(self):
        child = self.start()
        child.send({"type": "event", "event": "poke", "data": {"n": 1, "s": "ü"}, "from": "s2"})
        ev = child.expect(lambda m: m.get("event") == "poked")
        self.assertEqual(ev, {"type": "event", "event": "poked", "data": {"got": {"n": 1, "s": "ü"}}})
        # detail is an alias of data; absent data -> {}
        child.send({"type": "event", "event": "poke", "detail": [1, 2]})
        self.assertEqual(child.expect(lambda m: m.get("event") == "poked")["data"], {"got": [1, 2]})
        child.send({"type": "event", "event": "poke"})
        self.assertEqual(child.expect(lambda m: m.get("event") == "poked")["data"], {"got": {}})
        # events come in order through one handler
        for i in range(20):
            child.send({"type": "event", "event": "poke", "data": i})
        got = [child.expect(lambda m: m.get("event") == "poked")["data"]["got"] for _ in range(20)]
        self.assertEqual(got, list(range(20)))

    def test_prefix_handler_with_meta(self):
        child = self.start()
        child.send({"type": "event", "event": "ns:thing", "data": {"k": "v"}, "from": "s5"})
        ev = child.expect(lambda m: m.get("event") == "ns_seen")
        self.assertEqual(ev["data"], {"data": {"k": "v"}, "event": "ns:thing", "from": "s5"})
        child.send({"type": "event", "event": "other", "data": {}})
        child.send({"type": "event", "event": "poke", "data": 0})
        child.expect(lambda m: m.get("event") == "poked")
        self.assertEqual(len(child.all_messages(lambda m: m.get("event") == "ns_seen")), 1)

    def test_agui_helpers(self):
        child = self.start()
        r = child.call(1, "api.agui", ["hello"])
        self.assertEqual(r["result"], "done")
        evs = [(m["event"], m["data"]) for m in child.all_messages(
            lambda m: m.get("type") == "event" and m.get("event", "").startswith("agui:"))]
        self.assertEqual(evs, [
            ("agui:run_started", {"thread_id": "t1", "run_id": "r1"}),
            ("agui:text_message_start", {"message_id": "m1", "role": "assistant"}),
            ("agui:text_message_content", {"message_id": "m1", "delta": "he"}),
            ("agui:text_message_content", {"message_id": "m1", "delta": "llo"}),
            ("agui:text_message_end", {"message_id": "m1"}),
            ("agui:run_finished", {"thread_id": "t1", "run_id": "r1"}),
        ])
        r = child.call(2, "api.agui_fail")
        self.assertEqual(r["error"]["name"], "RuntimeError")
        err = child.expect(lambda m: m.get("event") == "agui:run_error")
        self.assertEqual(err["data"], {"message": "model exploded", "thread_id": "t1", "run_id": "r2"})


class OwnCalls(StdioCase):
    def _relay(self, child, relay, call_id):
        child.send({"id": call_id, "method": relay,
                    "params": {"method": "win.eval", "params": {"js": "1+1"}, "timeout": 5}})
        out = child.expect(lambda m: m.get("method") == "win.eval", what="outgoing call")
        self.assertEqual(out["params"], {"js": "1+1"})
        self.assertEqual(out["timeout_ms"], 5000)
        self.assertIsInstance(out["id"], str)
        return out

    def test_call_sync_and_async_get_results_and_chunks(self):
        child = self.start()
        for relay in ("api.relay_sync", "api.relay_async"):
            out = self._relay(child, relay, relay)
            child.send({"type": "chunk", "id": out["id"], "data": "c1"})
            child.send({"type": "chunk", "id": out["id"], "data": {"c": 2}})
            child.send({"id": out["id"], "ok": True, "result": {"value": 2}})
            r = child.expect_response(relay)
            self.assertEqual(r["result"], {"result": {"value": 2}, "chunks": ["c1", {"c": 2}]}, relay)

    def test_error_answers_raise_avd_error_that_passes_through(self):
        child = self.start()
        for relay in ("api.relay_sync", "api.relay_async"):
            out = self._relay(child, relay, relay)
            err = {"code": "SCRIPT_EXECUTION", "name": "ScriptExecutionError",
                   "message": "ReferenceError: x", "data": {"script_preview": "x"}}
            # {"id","error"} without "ok" is accepted too
            child.send({"id": out["id"], "error": err})
            r = child.expect_response(relay)
            self.assertEqual(r["error"], err, relay)

    def test_local_timeout_is_later_than_avds_and_cancels(self):
        child = self.start()
        t0 = time.monotonic()
        child.send({"id": 1, "method": "api.relay_sync",
                    "params": {"method": "slow.one", "timeout": 0.2}})
        out = child.expect(lambda m: m.get("method") == "slow.one")
        self.assertEqual(out["timeout_ms"], 200)
        r = child.expect_response(1, timeout=5)
        self.assertGreaterEqual(time.monotonic() - t0, 2.0, "client timeout fired before avd's")
        self.assertEqual(r["error"]["code"], "TIMEOUT")
        child.expect(lambda m: m.get("type") == "cancel" and m.get("id") == out["id"])


class Ending(StdioCase):
    def _assert_clean_exit(self, child, rc):
        self.assertEqual(rc, 0, child.stderr_text())
        self.assertNotIn("Traceback", child.stderr_text())
        self.assertCleanStdout(child)

    def _keep_busy(self, child):
        child.send({"id": 1, "method": "api.sleep", "params": [30]})
        child.send({"id": 2, "method": "api.asleep", "params": [30]})
        child.send({"id": 3, "method": "api.acount", "params": {"n": 10000, "delay": 0.05}})
        child.send({"id": 4, "method": "api.relay_sync", "params": {"method": "x.y"}})
        child.send({"id": 5, "method": "api.relay_async", "params": {"method": "x.z"}})
        child.send({"id": "g", "method": "api.count", "params": {"n": 10000, "delay": 0.05}})
        child.expect(lambda m: m.get("type") == "chunk" and m.get("id") == "g")
        child.expect(lambda m: m.get("method") == "x.y")
        child.expect(lambda m: m.get("method") == "x.z")

    def test_eof_on_stdin_exits_zero_even_while_busy(self):
        child = self.start()
        self._keep_busy(child)
        t0 = time.monotonic()
        child.close_stdin()
        rc = child.wait(5)
        self.assertLess(time.monotonic() - t0, 3)
        self._assert_clean_exit(child, rc)
        self.assertIn("run() returned", child.stderr_text())

    def test_sigterm_exits_zero_even_while_busy(self):
        child = self.start()
        self._keep_busy(child)
        t0 = time.monotonic()
        child.terminate()
        rc = child.wait(5)
        self.assertLess(time.monotonic() - t0, 3)
        self._assert_clean_exit(child, rc)

    def test_backend_stop_ends_run(self):
        child = self.start()
        child.send({"id": 1, "method": "api.quit"})
        rc = child.wait(5)
        self._assert_clean_exit(child, rc)
        self.assertIn("run() returned", child.stderr_text())

    def test_closed_stdout_exits_zero(self):
        env = child_env()
        proc = subprocess.Popen([sys.executable, FIXTURE], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                start_new_session=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        ready = json.loads(proc.stdout.readline().decode("utf-8"))
        self.assertEqual(ready["type"], "ready")
        proc.stdout.close()
        proc.stdin.write(b'{"id":1,"method":"api.kw","params":{"a":1}}\n')
        proc.stdin.flush()
        try:
            rc = proc.wait(5)
        finally:
            err = proc.stderr.read().decode("utf-8", "replace")
            proc.stderr.close()
            proc.stdin.close()
        self.assertEqual(rc, 0, err)
        self.assertNotIn("Traceback", err)


class Examples(unittest.TestCase):
    def test_readme_example_runs(self):
        import re
        import tempfile
        from _harness import PACKAGE_ROOT
        with open(os.path.join(PACKAGE_ROOT, "README.md"), encoding="utf-8") as f:
            code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
        self.assertLessEqual(len(code.strip().splitlines()), 12)
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "demo.py")
            with open(script, "w", encoding="utf-8") as f:
                f.write(code)
            child = Child(child_env(PYTHONPATH=PACKAGE_ROOT), script=script)
            self.addCleanup(child.kill)
            self.assertEqual(child.ready()["handlers"], ["api.add"])
            self.assertEqual(child.call(1, "api.add", [2, 40])["result"], 42)
            child.send({"type": "event", "event": "progress", "data": {"pct": 40}})
            ev = child.expect(lambda m: m.get("event") == "progress_seen")
            self.assertEqual(ev["data"], {"pct": 40})
            child.close_stdin()
            self.assertEqual(child.wait(5), 0)

    def test_demo_backend_runs(self):
        from _harness import PACKAGE_ROOT
        child = Child(child_env(), script=os.path.join(PACKAGE_ROOT, "examples", "demo_backend.py"))
        self.addCleanup(child.kill)
        child.ready()
        self.assertEqual(child.call(1, "api.count", {"n": 2, "delay": 0})["result"], {"total": 2})
        r = child.call(2, "agent.ask", ["hi"])
        self.assertEqual(r["result"], "You asked: hi")
        deltas = [m["data"]["delta"] for m in child.all_messages(
            lambda m: m.get("event") == "agui:text_message_content")]
        self.assertEqual("".join(deltas), "You asked: hi")
        child.send({"type": "event", "event": "progress", "data": {"pct": 1}})
        child.wait_stderr("progress: {'pct': 1}")
        child.terminate()
        self.assertEqual(child.wait(5), 0)
        self.assertEqual(child.bad_lines, [])


class Portability(unittest.TestCase):
    def test_stdio_works_without_websockets(self):
        child = Child(child_env(FIXTURE_BLOCK_WEBSOCKETS=1))
        self.addCleanup(child.kill)
        child.ready()
        self.assertEqual(child.call(1, "api.kw", {"a": 1})["result"], {"a": 1, "b": 2})
        child.close_stdin()
        self.assertEqual(child.wait(5), 0, child.stderr_text())
        self.assertIn("websockets imported: False", child.stderr_text())

    def test_with_an_old_python_if_present(self):
        """Round trip under the oldest Python 3 found (AVD_TEST_OLD_PYTHON or pyenv's 3.7)."""
        candidates = [os.environ.get("AVD_TEST_OLD_PYTHON", "")]
        candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.7*/bin/python3")))
        python = next((p for p in candidates if p and os.access(p, os.X_OK)), None)
        if python is None:
            self.skipTest("no Python 3.7 interpreter here (set AVD_TEST_OLD_PYTHON to test one)")
        child = Child(child_env(AVD_HEARTBEAT_INTERVAL_MS=200), python=python)
        self.addCleanup(child.kill)
        child.ready()
        self.assertEqual(child.call(1, "api.echo", ["日本"])["result"]["reply"], "日本 ✓ 你好 😀")
        self.assertEqual(child.call(2, "api.add", [1, 2])["result"], 3)
        child.send({"id": 3, "method": "api.count", "params": {"n": 100, "delay": 0.05}})
        child.expect(lambda m: m.get("type") == "chunk" and m.get("id") == 3)
        child.send({"type": "cancel", "id": 3})
        child.wait_stderr("GENERATOR_EXIT api.count", timeout=2)
        child.expect(is_heartbeat, timeout=2)
        child.terminate()
        self.assertEqual(child.wait(5), 0, child.stderr_text())
        self.assertNotIn("Traceback", child.stderr_text())


if __name__ == "__main__":
    unittest.main()
