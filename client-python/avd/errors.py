"""Structured errors of the avd protocol (PROTOCOL.md section 9)."""

__all__ = ["AvdError", "error_from_exception", "error_names"]

# code -> name, as the protocol lists them.
error_names = {
    "PARSE_ERROR": "ParseError",
    "INVALID_REQUEST": "InvalidRequest",
    "UNSUPPORTED_SCHEMA": "UnsupportedSchema",
    "UNAUTHORIZED": "Unauthorized",
    "ENCODING": "EncodingError",
    "PAYLOAD_TOO_LARGE": "PayloadTooLarge",
    "METHOD_NOT_FOUND": "MethodNotFound",
    "ALREADY_REGISTERED": "AlreadyRegistered",
    "BACKEND_UNAVAILABLE": "BackendUnavailableError",
    "TIMEOUT": "TimeoutError",
    "CANCELLED": "CancelledError",
    "QUEUE_FULL": "QueueFull",
    "EVENT_LOOP_CLOSED": "EventLoopClosed",
    "SCRIPT_EXECUTION": "ScriptExecutionError",
    "WINDOW_OPERATION": "WindowOperationError",
    "INTERNAL": "InternalError",
}


class AvdError(Exception):
    """An error answer of the protocol: ``{"code", "name", "message", "data"}``.

    Raised by ``Backend.call()``/``call_sync()`` when the callee (or avd)
    answers with an error, and by ``Backend.run()`` when avd refuses the
    session.  A handler may raise it too: it then travels unchanged, so an
    error from a nested call passes through to the original caller.
    """

    def __init__(self, code, name=None, message="", data=None):
        Exception.__init__(self, message)
        self.code = code
        self.name = name or error_names.get(code) or "AvdError"
        self.message = message if message is not None else ""
        self.data = data if data is not None else {}

    def __str__(self):
        if self.message:
            return "%s: %s" % (self.code, self.message)
        return str(self.code)

    def __repr__(self):
        return "AvdError(%r, %r, %r, %r)" % (self.code, self.name, self.message, self.data)

    def to_dict(self):
        err = {"name": self.name, "message": self.message, "data": self.data}
        if self.code is not None:
            err["code"] = self.code
        return err

    @classmethod
    def from_dict(cls, err):
        """Build an AvdError from an error object (tolerant of odd shapes)."""
        if not isinstance(err, dict):
            return cls("BACKEND_ERROR", "Error", "" if err is None else str(err), {})
        code = err.get("code")
        if code is None:
            code = "BACKEND_ERROR"
        data = err.get("data")
        message = err.get("message")
        return cls(code, err.get("name"), "" if message is None else str(message),
                   data if data is not None else {})


def error_from_exception(exc):
    """The protocol error object for an exception raised by a handler.

    ``{"name": class name, "message": str(exc), "data": exc.data or {}}`` plus
    ``"code"`` when the exception has a ``code`` attribute (avd adds
    ``BACKEND_ERROR`` when there is none).  An :class:`AvdError` keeps its own
    code, name, message and data.
    """
    if isinstance(exc, AvdError):
        return exc.to_dict()
    data = getattr(exc, "data", None)
    if not isinstance(data, dict):
        data = {}
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the error itself
        message = repr(exc)
    err = {"name": type(exc).__name__, "message": message, "data": data}
    code = getattr(exc, "code", None)
    if code is not None:
        err["code"] = code if isinstance(code, str) else str(code)
    return err
