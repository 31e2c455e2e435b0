"""AG-UI helpers: emit the ``agui:*`` events of an agent run.

Events and their ``data``:

=========================== ==============================================
``agui:run_started``        ``thread_id``, ``run_id``
``agui:text_message_start`` ``message_id``, ``role``
``agui:text_message_content`` ``message_id``, ``delta``
``agui:text_message_end``   ``message_id``
``agui:run_finished``       ``thread_id``, ``run_id``, optional ``result``
``agui:run_error``          ``message``, optional ``code``, ``thread_id``, ``run_id``
=========================== ==============================================

Use them through ``backend.agui``::

    with backend.agui.run(thread_id="t1") as run:
        with run.message() as msg:
            for piece in model.stream(prompt):
                msg.write(piece)

A ``with run(...)`` block that raises emits ``agui:run_error`` (and
re-raises); one that ends normally emits ``agui:run_finished``.  Deltas may be
cut anywhere (avd joins split surrogate pairs, PROTOCOL.md section 7).
"""

import uuid

__all__ = ["AgUi", "AguiRun", "AguiMessage"]


def _new_id(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex)


class AgUi(object):
    """AG-UI event helpers bound to an ``emit(event, data)`` function."""

    def __init__(self, emit):
        self._emit = emit

    def _send(self, name, data, extra):
        if extra:
            data.update(extra)
        self._emit("agui:" + name, data)

    def run_started(self, thread_id=None, run_id=None, **extra):
        """Emit ``agui:run_started``; returns the run id (made up when not given)."""
        run_id = run_id or _new_id("run")
        self._send("run_started", {"thread_id": thread_id, "run_id": run_id}, extra)
        return run_id

    def run_finished(self, thread_id=None, run_id=None, result=None, **extra):
        data = {"thread_id": thread_id, "run_id": run_id}
        if result is not None:
            data["result"] = result
        self._send("run_finished", data, extra)

    def run_error(self, message, code=None, thread_id=None, run_id=None, **extra):
        data = {"message": str(message), "thread_id": thread_id, "run_id": run_id}
        if code is not None:
            data["code"] = code
        self._send("run_error", data, extra)

    def text_message_start(self, message_id=None, role="assistant", **extra):
        """Emit ``agui:text_message_start``; returns the message id."""
        message_id = message_id or _new_id("msg")
        self._send("text_message_start", {"message_id": message_id, "role": role}, extra)
        return message_id

    def text_message_content(self, message_id, delta, **extra):
        self._send("text_message_content", {"message_id": message_id, "delta": delta}, extra)

    def text_message_end(self, message_id, **extra):
        self._send("text_message_end", {"message_id": message_id}, extra)

    def run(self, thread_id=None, run_id=None):
        """Context manager for a run: started on enter, finished or error on exit."""
        return AguiRun(self, thread_id, run_id)

    def message(self, message_id=None, role="assistant"):
        """Context manager for a text message: start on enter, end on exit."""
        return AguiMessage(self, message_id, role)

    def stream_text(self, pieces, message_id=None, role="assistant"):
        """Send an iterable of text pieces as one message; returns the message id."""
        with self.message(message_id, role) as msg:
            for piece in pieces:
                msg.write(piece)
        return msg.message_id

    async def astream_text(self, pieces, message_id=None, role="assistant"):
        """Like :meth:`stream_text` for an async iterable."""
        with self.message(message_id, role) as msg:
            async for piece in pieces:
                msg.write(piece)
        return msg.message_id


class AguiMessage(object):
    def __init__(self, agui, message_id=None, role="assistant"):
        self._agui = agui
        self.message_id = message_id or _new_id("msg")
        self.role = role
        self.text = ""

    def __enter__(self):
        self._agui.text_message_start(self.message_id, self.role)
        return self

    def write(self, delta):
        """Emit one ``agui:text_message_content`` delta (empty ones are skipped)."""
        if delta:
            self.text += delta
            self._agui.text_message_content(self.message_id, delta)

    def __exit__(self, exc_type, exc, tb):
        self._agui.text_message_end(self.message_id)
        return False


class AguiRun(object):
    def __init__(self, agui, thread_id=None, run_id=None):
        self._agui = agui
        self.thread_id = thread_id
        self.run_id = run_id or _new_id("run")
        self.result = None

    def __enter__(self):
        self._agui.run_started(self.thread_id, self.run_id)
        return self

    def message(self, message_id=None, role="assistant"):
        return AguiMessage(self._agui, message_id, role)

    def text(self, pieces, message_id=None, role="assistant"):
        """One whole message from a string or an iterable of pieces; returns its id."""
        if isinstance(pieces, str):
            pieces = [pieces]
        return self._agui.stream_text(pieces, message_id, role)

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            self._agui.run_finished(self.thread_id, self.run_id, self.result)
        else:
            self._agui.run_error(str(exc) or exc_type.__name__, getattr(exc, "code", None),
                                 self.thread_id, self.run_id)
        return False
