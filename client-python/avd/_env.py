"""Where to connect and how: transport choice, URL and token discovery."""

import os
import sys

DEFAULT_URL = "ws://127.0.0.1:7700/ws"
DEFAULT_HEARTBEAT_INTERVAL = 2.0


def _stdin_is_tty():
    try:
        return os.isatty(0)
    except (OSError, ValueError):
        return False


def choose_transport(environ=None, stdin_is_tty=None):
    """``"stdio"`` when avd (or an AuroraView host) spawned us, else ``"ws"``.

    Spawned means ``AURORAVIEW_PACKED=1`` or ``AVD_BACKEND_NAME`` set in the
    environment, with a standard input that is not a terminal.
    """
    env = os.environ if environ is None else environ
    if stdin_is_tty is None:
        stdin_is_tty = _stdin_is_tty()
    spawned = env.get("AURORAVIEW_PACKED") == "1" or bool(env.get("AVD_BACKEND_NAME"))
    return "stdio" if spawned and not stdin_is_tty else "ws"


def runtime_dirs(environ=None):
    """Where avd writes its ``url`` and ``token`` files, most likely first."""
    env = os.environ if environ is None else environ
    dirs = []
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        dirs.append(os.path.join(runtime, "avd"))
    uid = os.getuid() if hasattr(os, "getuid") else 0
    dirs.append("/tmp/avd-%d" % uid)
    return dirs


def _first_line_of(paths):
    for path in paths:
        try:
            with open(path, "r") as f:
                text = f.read().strip()
        except (OSError, IOError):
            continue
        if text:
            return text
    return None


def default_url(environ=None):
    """``AVD_URL``, else the first runtime ``url`` file avd wrote, else ws://127.0.0.1:7700/ws."""
    env = os.environ if environ is None else environ
    url = env.get("AVD_URL")
    if url:
        return url
    return _first_line_of(url_paths(env)) or DEFAULT_URL


def url_paths(environ=None):
    """Runtime URL files, most likely first."""
    return [os.path.join(d, "url") for d in runtime_dirs(environ)]


def token_paths(environ=None):
    """Runtime token files, most likely first."""
    return [os.path.join(d, "token") for d in runtime_dirs(environ)]


def find_token(environ=None):
    """``AVD_TOKEN``, else the first readable runtime token file, else None."""
    env = os.environ if environ is None else environ
    token = env.get("AVD_TOKEN")
    if token:
        return token.strip()
    return _first_line_of(token_paths(env))


def heartbeat_interval(explicit=None, environ=None):
    """Seconds between heartbeats: explicit value, ``AVD_HEARTBEAT_INTERVAL_MS``, or 2.0."""
    if explicit is not None:
        return float(explicit)
    env = os.environ if environ is None else environ
    raw = env.get("AVD_HEARTBEAT_INTERVAL_MS")
    if raw:
        try:
            return float(raw) / 1000.0
        except ValueError:
            sys.stderr.write("avd-client: ignoring AVD_HEARTBEAT_INTERVAL_MS=%r\n" % raw)
    return DEFAULT_HEARTBEAT_INTERVAL
