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


def default_url(environ=None):
    env = os.environ if environ is None else environ
    return env.get("AVD_URL") or DEFAULT_URL


def token_paths(environ=None):
    """Runtime token files, most likely first."""
    env = os.environ if environ is None else environ
    paths = []
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        paths.append(os.path.join(runtime, "avd", "token"))
    uid = os.getuid() if hasattr(os, "getuid") else 0
    paths.append("/tmp/avd-%d/token" % uid)
    return paths


def find_token(environ=None):
    """``AVD_TOKEN``, else the first readable runtime token file, else None."""
    env = os.environ if environ is None else environ
    token = env.get("AVD_TOKEN")
    if token:
        return token.strip()
    for path in token_paths(env):
        try:
            with open(path, "r") as f:
                token = f.read().strip()
        except (OSError, IOError):
            continue
        if token:
            return token
    return None


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
