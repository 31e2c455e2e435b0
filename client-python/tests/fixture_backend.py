"""A backend for the tests, run as a child process the way avd runs one.

Environment knobs (set by the tests):
  FIXTURE_BLOCK_WEBSOCKETS=1  make ``import websockets`` fail
  FIXTURE_TRANSPORT=stdio|ws  passed to run() (default: automatic)
"""

import asyncio
import os
import sys
import time

if os.environ.get("FIXTURE_BLOCK_WEBSOCKETS") == "1":
    sys.modules["websockets"] = None  # any import of it now raises ImportError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import avd  # noqa: E402
from avd import Backend, current_call  # noqa: E402

backend = Backend("fixture")


def note(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


@backend.method("api.kw")
def kw(a, b=2):
    return {"a": a, "b": b}


@backend.method("api.pos")
def pos(*args):
    return {"args": list(args)}


@backend.method("api.one")
def one(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


@backend.method("api.echo")
def echo(text):
    return {"text": text, "reply": text + " ✓ 你好 😀"}


@backend.method("api.add")
async def add(a, b):
    await asyncio.sleep(0.01)
    return a + b


@backend.method("api.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return {"slept": seconds}


@backend.method("api.asleep")
async def asleep(seconds):
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        note("TASK_CANCELLED api.asleep")
        raise
    return {"slept": seconds}


@backend.method("api.count")
def count(n, delay=0.0):
    try:
        for i in range(n):
            if delay:
                time.sleep(delay)
            yield i
    except GeneratorExit:
        note("GENERATOR_EXIT api.count")
        raise
    return {"total": n}


@backend.method("api.acount")
async def acount(n, delay=0.0):
    try:
        for i in range(n):
            await asyncio.sleep(delay)
            yield {"i": i}
    finally:
        note("AGEN_FINALLY api.acount")


@backend.method("api.fail")
def fail(message):
    raise ValueError(message)


class CodedError(Exception):
    code = "E_CUSTOM"

    def __init__(self, message, data):
        Exception.__init__(self, message)
        self.data = data


@backend.method("api.fail_code")
async def fail_code():
    raise CodedError("custom failure", {"hint": "x"})


@backend.method("api.noisy")
def noisy():
    print("stray print from a handler")
    os.write(1, b"RAW-FD1 write from a handler\n")
    sys.stdout.flush()
    return "ok"


@backend.method("api.context")
def context():
    c = current_call()
    return {"id": c.id, "method": c.method, "caller": c.caller, "timeout_ms": c.timeout_ms}


@backend.method("api.relay_sync")
def relay_sync(method, params=None, timeout=None):
    chunks = []
    result = backend.call_sync(method, params, timeout=timeout, on_chunk=chunks.append)
    return {"result": result, "chunks": chunks}


@backend.method("api.relay_async")
async def relay_async(method, params=None, timeout=None):
    chunks = []
    result = await backend.call(method, params, timeout=timeout, on_chunk=chunks.append)
    return {"result": result, "chunks": chunks}


@backend.method("api.agui")
def agui_demo(text):
    with backend.agui.run(thread_id="t1", run_id="r1") as run:
        run.text([text[:2], text[2:]], message_id="m1")
    return "done"


@backend.method("api.agui_fail")
def agui_fail():
    with backend.agui.run(thread_id="t1", run_id="r2"):
        raise RuntimeError("model exploded")


@backend.method("api.quit")
def quit_():
    backend.stop()
    return "bye"


@backend.on("poke")
def on_poke(data):
    backend.emit("poked", {"got": data})


@backend.on("ns:*")
async def on_ns(data, meta):
    backend.emit("ns_seen", {"data": data, "event": meta["event"], "from": meta["from"]})


if __name__ == "__main__":
    note("fixture starting, avd %s" % avd.__version__)
    transport = os.environ.get("FIXTURE_TRANSPORT") or None
    backend.run(transport=transport)
    note("fixture run() returned; websockets imported: %s"
         % ("websockets" in sys.modules and sys.modules["websockets"] is not None))
