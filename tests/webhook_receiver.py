"""A real HTTP server on loopback that receives webhook notifications, for the unit and
integration tests: it records every request and answers what the test says (200, 503,
a redirect, slowly), and can be stopped (connection refused) and started again on the
same port, as a receiver that is down for a while."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.kube import wait_until


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """``status`` is what it answers next (with ``location`` for a redirect, ``delay``
    seconds late, ``reply`` as the body); ``received`` is every request so far."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.status = 200
        self.location = ""
        self.delay = 0.0
        self.reply = b'{"ok":true}'
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def accepted(self) -> list[Received]:
        """The requests it answered with a 2xx: the notifications delivered."""
        with self._lock:
            return [r for r in self.received if 200 <= r.answered < 300]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver.status
                with receiver._lock:
                    receiver.received.append(
                        Received("POST", self.path, dict(self.headers.items()), body, status)
                    )
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                reply = b"" if status in (204, 304) else receiver.reply  # no body, by RFC 9110
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up (a timeout test)
                    self.wfile.write(reply)

            def log_message(self, *_: Any) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Closes the port: a POST now meets "connection refused"."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """The first ``count`` accepted requests, once there are that many."""
        wait_until(
            f"{count} webhook POST(s) accepted", lambda: len(self.accepted()) >= count, timeout
        )
        return self.accepted()[:count]

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
