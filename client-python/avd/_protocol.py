"""Wire helpers shared by the transports: encoding, parameter mapping, names."""

import json
import re
import time

SCHEMA_VERSION = 1
SUBPROTOCOL = "avd.v1"

_EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:/\-]{1,255}$")


def now_ms():
    return int(time.time() * 1000)


def encode_text(msg):
    """JSON text of one message, always encodable as strict UTF-8.

    Non-ASCII characters are written as themselves (``ensure_ascii=False``).
    A string holding a lone surrogate cannot be written as UTF-8; such a
    message is written with ``\\uXXXX`` escapes instead, which avd accepts
    (PROTOCOL.md section 7).  NaN and infinities are refused (ValueError):
    they are not JSON and avd would reject the whole message.
    """
    text = json.dumps(msg, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(msg, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text


def encode_line(msg):
    """One newline-terminated UTF-8 line for the stdio transport."""
    return (encode_text(msg) + "\n").encode("utf-8")


def map_params(params):
    """AuroraView's mapping of ``params`` to a Python call.

    dict -> keyword arguments, list -> positional arguments, null/absent ->
    no argument, anything else -> one positional argument.
    """
    if params is None:
        return (), {}
    if isinstance(params, dict):
        return (), params
    if isinstance(params, list):
        return tuple(params), {}
    return (params,), {}


def check_event_name(name):
    if not isinstance(name, str) or not _EVENT_NAME.match(name):
        raise ValueError("invalid event name %r: 1-255 letters, digits or _ . : / -" % (name,))


def check_pattern(pattern):
    """Subscription patterns: exact names, prefixes ending in ``*``, or ``*``."""
    if pattern == "*":
        return
    if isinstance(pattern, str) and pattern.endswith("*"):
        if len(pattern) > 1:
            check_event_name(pattern[:-1])
        return
    check_event_name(pattern)


def pattern_matches(pattern, name):
    if pattern == name or pattern == "*":
        return True
    return pattern.endswith("*") and name.startswith(pattern[:-1])


def classify(msg):
    """Kind of an incoming message: call, response, event, cancel, chunk, welcome, error, other."""
    t = msg.get("type")
    if "method" in msg and (t is None or t == "call"):
        return "call"
    if t is None or t == "response":
        if "id" in msg and ("result" in msg or "error" in msg or "ok" in msg):
            return "response"
        return "other"
    if t in ("event", "cancel", "chunk", "welcome", "error"):
        return t
    return "other"
