"""Fixtures for the data tests: a loopback HTTP server standing in for the dataset hosts."""

from __future__ import annotations

import collections
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest


@pytest.fixture
def http_server(monkeypatch):
    """Serve `files` (path -> bytes) on 127.0.0.1; `hits` counts requests per path."""
    monkeypatch.setenv("no_proxy", "*")  # never route loopback through a proxy
    files: dict[str, bytes] = {}
    hits: collections.Counter = collections.Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            hits[self.path] += 1
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_address[1]}", files=files, hits=hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
