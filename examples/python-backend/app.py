"""An avd backend in Python: three methods and an event.

Supervised by avd (newline-delimited JSON over stdin/stdout):

    avd --backend app='python3 examples/python-backend/app.py'

Or on its own next to a running avd (WebSocket; the address and token come
from AVD_URL / AVD_TOKEN, else from the files avd wrote in
$XDG_RUNTIME_DIR/avd/):

    python3 examples/python-backend/app.py

The WebSocket transport needs the `websockets` package (Debian:
python3-websockets); the stdio one only the standard library.
"""

import os
import sys
import time

# The client library lives in this repository; an installed one
# (pip install ./client-python) works as well.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "client-python"))

from avd import AvdError, Backend  # noqa: E402

# Under avd the name is the NAME of --backend NAME=...
backend = Backend(os.environ.get("AVD_BACKEND_NAME") or "python-example")


@backend.method("py.echo")
def echo(text):
    """{"text": "..."} -> the same text, and who answered."""
    return {"text": text, "by": "python"}


@backend.method("py.add")
def add(a, b):
    """[a, b] or {"a": a, "b": b} -> a + b."""
    return a + b


@backend.method("py.count")
def count(n=5, delay=0.1):
    """Streams {"i": 0} ... {"i": n-1}, one every `delay` seconds, then returns {"total": n}.

    A cancel (the caller cancelled, timed out or left) stops the loop at its
    next yield: GeneratorExit is raised there, so `finally` blocks run.
    """
    for i in range(n):
        time.sleep(delay)
        yield {"i": i}
    return {"total": n}


@backend.on("example:ping")
def on_ping(data, meta):
    """Anyone may publish example:ping; we answer with example:pong."""
    backend.emit("example:pong", {"by": "python", "got": data, "to": meta["from"]})


if __name__ == "__main__":
    # Under avd, stdout carries the protocol: write diagnostics to stderr
    # (avd shows its lines as backend:stderr events).  While run() lasts,
    # print() is redirected to stderr by the library anyway.
    sys.stderr.write("python example backend %r starting\n" % backend.name)
    try:
        backend.run()
    except (AvdError, ConnectionError) as exc:
        # e.g. ALREADY_REGISTERED (another session offers py.*), UNAUTHORIZED,
        # or no avd listening
        sys.stderr.write("python example backend: %s\n" % exc)
        sys.exit(1)
    sys.stderr.write("python example backend stopped\n")
