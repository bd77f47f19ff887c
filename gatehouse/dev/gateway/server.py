"""HTTP/1.1 on 127.0.0.1 in front of an :class:`ApiGatewayEmulator`."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from gatehouse.dev.gateway.messages import IncomingRequest

if TYPE_CHECKING:
    from gatehouse.dev.gateway.emulator import ApiGatewayEmulator


class GatewayServer:
    """Serves an :class:`ApiGatewayEmulator` over HTTP/1.1 on 127.0.0.1.

    The socket is bound at construction so the URL is known (the app's
    settings need it) before the emulator is attached.

    Parameters
    ----------
    port:
        The port to listen on; 0 for any free one.
    """

    def __init__(self, port: int = 0) -> None:
        self.emulator: ApiGatewayEmulator | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="api-gateway", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def attach(self, emulator: ApiGatewayEmulator) -> None:
        """Serve requests with ``emulator``."""
        self.emulator = emulator

    def start(self) -> None:
        """Serve in a background thread."""
        if self.emulator is None:
            raise RuntimeError("attach an emulator before starting the gateway")
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _handler_for(server: GatewayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive

        def _serve(self) -> None:
            emulator = server.emulator
            assert emulator is not None
            raw_path, _, raw_query = self.path.partition("?")
            request = IncomingRequest(
                method=self.command,
                raw_path=raw_path or "/",
                raw_query=raw_query,
                headers=list(self.headers.items()),
                body=_read_body(self),
                source_ip=self.client_address[0],
            )
            answer = emulator.handle(request)
            self.send_response_only(answer.status)
            self.send_header("Date", self.date_time_string())
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
