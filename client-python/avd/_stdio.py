"""The stdio transport: newline-delimited JSON with the avd that spawned us.

Standard library only, Python 3.7 syntax (DCC embedded interpreters).

stdout belongs to the protocol.  While ``run()`` lasts:

* the protocol's stdout and stdin are moved to private file descriptors;
  fd 1 then points at stderr and fd 0 at /dev/null, so neither a stray
  ``print()`` nor output of a C extension nor an ``input()`` call can corrupt
  or steal protocol bytes; ``sys.stdout`` is ``sys.stderr`` too;
* protocol lines are written whole, under a lock, straight to the file
  descriptor (nothing to flush, no buffer left behind at exit);
* input is read as bytes with ``os.read`` (no Python-level stdin lock that a
  daemon thread could hold at interpreter exit) and decoded with
  ``errors="replace"``.

EOF on stdin, a closed stdout (BrokenPipeError), SIGTERM and SIGINT end
``run()`` normally.
"""

import os
import signal
import sys
import threading

from ._protocol import encode_text
from ._session import Session, log, log_exception


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Fds(object):
    """The protocol's own input/output descriptors, and how to give them back."""

    def __init__(self, isolate=True):
        self.in_fd = 0
        self.out_fd = 1
        self._saved = None
        self._saved_stdout = sys.stdout
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except Exception:
            pass
        if isolate:
            try:
                out_fd = os.dup(1)
                in_fd = os.dup(0)
                os.dup2(2, 1)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
                self.in_fd, self.out_fd = in_fd, out_fd
                self._saved = (in_fd, out_fd)
            except OSError as exc:
                log("cannot isolate the protocol's stdin/stdout (%s); using fds 0 and 1" % exc)
        if sys.stderr is not None:
            sys.stdout = sys.stderr

    def restore(self):
        sys.stdout = self._saved_stdout
        if self._saved is None:
            return
        in_fd, out_fd = self._saved
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
        except Exception:
            pass
        try:
            os.dup2(out_fd, 1)
            os.close(out_fd)
            # in_fd stays open: the reader thread may still be blocked on it,
            # and a closed number could be reused by an unrelated file.
            os.dup2(in_fd, 0)
        except OSError:
            pass


def run_stdio(backend, heartbeat_interval, max_workers=32, isolate_fds=True):
    fds = _Fds(isolate_fds)
    lock = threading.Lock()
    out_fd = fds.out_fd

    def send_text(text):
        data = (text + "\n").encode("utf-8")
        with lock:
            _write_all(out_fd, data)

    session = Session(backend, send_text, heartbeat_interval, max_workers)
    signalled = []
    old_handlers = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, frame):
            # Only record it: taking locks in a signal handler could deadlock.
            signalled.append(signum)
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                old_handlers[sig] = signal.signal(sig, on_signal)
            except (ValueError, OSError):
                pass

    backend._session = session
    try:
        session.start()
        # First line: the handlers, which registers them and announces readiness.
        session.send({"type": "ready", "handlers": backend.methods})
        reader = threading.Thread(target=_read_loop, args=(fds.in_fd, session), name="avd-stdin")
        reader.daemon = True
        reader.start()
        events = backend.subscriptions
        if events and not session.stopped.is_set():
            _subscribe(session, events)
        session.start_heartbeat()
        while not signalled and not session.stopped.wait(0.1):
            pass
        if signalled:
            session.stop("signal %d" % signalled[0])
    finally:
        backend._session = None
        for sig, handler in old_handlers.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError, TypeError):
                pass
        session.close()
        fds.restore()
    return session.stop_reason


def _subscribe(session, events):
    try:
        out = session.start_call("avd.subscribe", {"events": events})
    except Exception as exc:
        log("avd.subscribe could not be sent: %s" % exc)
        return

    def done(fut):
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None and not session.stopped.is_set():
            log("avd.subscribe %s failed: %s" % (encode_text(events), exc))

    out.future.add_done_callback(done)


def _read_loop(in_fd, session):
    buf = bytearray()
    try:
        while not session.stopped.is_set():
            try:
                chunk = os.read(in_fd, 65536)
            except OSError as exc:
                session.stop("stdin error: %s" % exc)
                return
            if not chunk:
                if buf.strip():
                    session.handle_text(bytes(buf).decode("utf-8", "replace"))
                session.stop("stdin closed")
                return
            buf += chunk
            start = 0
            while True:
                i = buf.find(b"\n", start)
                if i < 0:
                    break
                line = bytes(buf[start:i])
                start = i + 1
                if line.strip():
                    session.handle_text(line.decode("utf-8", "replace"))
            if start:
                del buf[:start]
    except BaseException as exc:
        log_exception("stdin reader failed:", exc)
        session.stop("stdin reader failed")
