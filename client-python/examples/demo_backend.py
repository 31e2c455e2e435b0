"""A small avd backend: methods, streaming, events, calls, AG-UI.

Under avd:   avd --backend demo="python3 client-python/examples/demo_backend.py"
By itself:   PYTHONPATH=client-python python3 client-python/examples/demo_backend.py
"""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from avd import Backend  # noqa: E402

backend = Backend("demo")


@backend.method("api.echo")
def echo(text):
    return {"text": text}


@backend.method("api.add")
async def add(a, b):
    return a + b


@backend.method("api.count")
def count(n, delay=0.1):
    """Streams n chunks, then returns the total."""
    for i in range(n):
        time.sleep(delay)
        yield {"i": i}
    return {"total": n}


@backend.method("api.title")
async def title():
    """Asks the page for its title (a frontend must offer window.main.eval_js)."""
    return await backend.call("window.main.eval_js", {"script": "document.title"}, timeout=5)


@backend.method("agent.ask")
async def ask(prompt):
    with backend.agui.run(thread_id="demo") as run:
        with run.message() as msg:
            for word in ("You", " asked:", " ", prompt):
                msg.write(word)
                await asyncio.sleep(0.05)
    return msg.text


@backend.on("progress")
def on_progress(data):
    print("progress:", data)  # goes to stderr, never into the protocol


if __name__ == "__main__":
    backend.run()
