"""Python client of avd, the WebSocket event/RPC hub.

A backend declares methods and event handlers and runs::

    from avd import Backend

    backend = Backend("demo")

    @backend.method("api.echo")
    def echo(text):
        return {"text": text}

    backend.run()

Under avd's supervision (``--backend NAME=COMMAND``) ``run()`` speaks
newline-delimited JSON on stdin/stdout; otherwise it connects to avd's
WebSocket.  The stdio path needs only the standard library.
"""

from ._protocol import SCHEMA_VERSION
from ._session import Call, current_call
from .agui import AgUi
from .backend import Backend
from .errors import AvdError, error_from_exception

__version__ = "0.1.0"

__all__ = ["Backend", "AvdError", "AgUi", "Call", "current_call", "error_from_exception",
           "SCHEMA_VERSION", "__version__"]
