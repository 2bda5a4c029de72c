"""api/server_protocol.py subclasses uvicorn's httptools protocol: these fail loudly when
the uvicorn internals it relies on change (pyproject.toml pins the versions checked)."""

from __future__ import annotations

import inspect

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from clarion.api import server_protocol
from clarion.api.server_protocol import LimitedHttpToolsProtocol
from clarion.config import Settings


async def _app(scope: object, receive: object, send: object) -> None:
    return None


def test_the_uvicorn_methods_it_overrides_or_calls_exist_with_their_signatures() -> None:
    expected = {
        "connection_made": ["self", "transport"],
        "connection_lost": ["self", "exc"],
        "data_received": ["self", "data"],
        "on_message_begin": ["self"],
        "on_headers_complete": ["self"],
        "on_message_complete": ["self"],
        "on_response_complete": ["self"],
        "_unset_keepalive_if_required": ["self"],
        "handle_websocket_upgrade": ["self"],
    }
    for name, params in expected.items():
        method = getattr(HttpToolsProtocol, name)
        assert list(inspect.signature(method).parameters) == params, name
    # A cycle tells whether its response is still going out (the header clock and the
    # refusals must not write into it).
    assert "self.response_complete = False" in inspect.getsource(RequestResponseCycle.__init__)


async def test_the_uvicorn_attributes_it_reads_are_set() -> None:
    config = Config(app=_app, http=server_protocol.HTTP_PROTOCOL)
    config.load()
    assert config.http_protocol_class is LimitedHttpToolsProtocol
    state = ServerState()
    proto = LimitedHttpToolsProtocol(config=config, server_state=state, app_state={})
    for name in ("connections", "cycle", "transport", "server_state", "loop", "parser"):
        assert hasattr(proto, name), name
    assert proto.connections is state.connections
    assert isinstance(state.default_headers, list)
    # The parser calls back by these names (httptools' protocol interface).
    for name in ("on_message_begin", "on_url", "on_header", "on_headers_complete"):
        assert callable(getattr(proto, name))


def test_settings_reach_new_connections() -> None:
    before = server_protocol.current_limits()
    try:
        server_protocol.configure(
            Settings(max_header_bytes=4096, header_timeout_seconds=3, max_connections=7)
        )
        assert server_protocol.current_limits() == server_protocol.ServerLimits(4096, 3.0, 7)
    finally:
        server_protocol._limits = before
