"""An autouse fixture for the data tests: any internet connection or URL fetch fails the test.
Import it into a test module (``from network_guard import no_network``) to enable it there."""

import socket
import urllib.request

import pytest


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Local AF_UNIX sockets, which DataLoader workers use, stay allowed."""
    connect = socket.socket.connect

    def guarded(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address!r}")
        return connect(self, address, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
