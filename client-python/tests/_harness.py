"""Test helpers: run fixture_backend.py as a child process and talk to it."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
FIXTURE = os.path.join(HERE, "fixture_backend.py")

_SCRUB = ("AURORAVIEW_PACKED", "AVD_BACKEND_NAME", "AVD_URL", "AVD_TOKEN",
          "AVD_HEARTBEAT_INTERVAL_MS", "FIXTURE_BLOCK_WEBSOCKETS", "FIXTURE_TRANSPORT")


def child_env(stdio=True, **extra):
    env = dict(os.environ)
    for key in _SCRUB:
        env.pop(key, None)
    if stdio:
        # What avd sets when it spawns a backend (PROTOCOL.md section 6).
        env.update({"AURORAVIEW_PACKED": "1", "AVD_BACKEND_NAME": "fixture",
                    "AVD_URL": "ws://127.0.0.1:9/ws"})
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def is_heartbeat(msg):
    return msg.get("type") == "event" and msg.get("event") == "backend_health"


class Child(object):
    """The fixture backend as a child process with pipes, as avd runs it.

    With ``protocol=True`` every stdout line must be a JSON object: a line
    that is not is recorded in ``bad_lines`` (the tests assert it stays empty).
    """

    def __init__(self, env=None, python=None, protocol=True, script=FIXTURE):
        self.protocol = protocol
        self.proc = subprocess.Popen(
            [python or sys.executable, script],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env if env is not None else child_env(), start_new_session=True)
        self.cond = threading.Condition()
        self.messages = []      # (arrival time, message)
        self.consumed = set()
        self.raw = []           # raw stdout lines (bytes)
        self.bad_lines = []
        self.stderr = []        # decoded stderr lines
        self.stdout_eof = False
        self._threads = [threading.Thread(target=self._read_stdout),
                         threading.Thread(target=self._read_stderr)]
        for t in self._threads:
            t.daemon = True
            t.start()

    # -------------------------------------------------------------- readers

    def _read_stdout(self):
        for line in iter(self.proc.stdout.readline, b""):
            with self.cond:
                self.raw.append(line)
                if self.protocol:
                    try:
                        msg = json.loads(line.decode("utf-8"))
                        if not isinstance(msg, dict):
                            raise ValueError("not an object")
                    except ValueError:
                        self.bad_lines.append(line)
                    else:
                        self.messages.append((time.monotonic(), msg))
                self.cond.notify_all()
        with self.cond:
            self.stdout_eof = True
            self.cond.notify_all()

    def _read_stderr(self):
        for line in iter(self.proc.stderr.readline, b""):
            with self.cond:
                self.stderr.append(line.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()

    # -------------------------------------------------------------- talking

    def send(self, msg):
        data = msg if isinstance(msg, bytes) else (json.dumps(msg, ensure_ascii=False) + "\n").encode("utf-8")
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def expect(self, pred, timeout=5.0, what="message"):
        """The first not yet consumed message matching ``pred``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, (_t, msg) in enumerate(self.messages):
                    if i not in self.consumed and pred(msg):
                        self.consumed.add(i)
                        return msg
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no %s within %.1fs; stdout so far: %r; stderr: %r"
                                         % (what, timeout, [m for _t, m in self.messages][-20:],
                                            self.stderr[-20:]))
                self.cond.wait(remaining)

    def expect_response(self, call_id, timeout=5.0):
        return self.expect(lambda m: m.get("id") == call_id and "method" not in m
                           and m.get("type") is None, timeout, "response to %r" % (call_id,))

    def call(self, call_id, method, params=None, timeout=5.0, **extra):
        msg = {"id": call_id, "method": method}
        if params is not None:
            msg["params"] = params
        msg.update(extra)
        self.send(msg)
        return self.expect_response(call_id, timeout)

    def all_messages(self, pred=lambda m: True):
        with self.cond:
            return [m for _t, m in self.messages if pred(m)]

    def timed_messages(self, pred=lambda m: True):
        with self.cond:
            return [(t, m) for t, m in self.messages if pred(m)]

    def wait_stderr(self, text, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(text in line for line in self.stderr):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("stderr never said %r; it said: %r" % (text, self.stderr[-30:]))
                self.cond.wait(remaining)

    def stderr_text(self):
        with self.cond:
            return "\n".join(self.stderr)

    def ready(self, timeout=10.0):
        return self.expect(lambda m: m.get("type") == "ready", timeout, "ready line")

    # -------------------------------------------------------------- ending

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=5.0):
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(2)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        for t in self._threads:
            t.join(2)
