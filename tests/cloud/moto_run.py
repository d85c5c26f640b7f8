#!/usr/bin/env python3
"""Serve moto's own WSGI app (what moto_server runs) with HTTP/1.1 keep-alive.

moto_server runs on werkzeug's development server, which always answers
"Connection: close", so every call needs a new TCP connection and a client's
connection reuse cannot be measured. scripts/bench-cloud uses this launcher:
the same moto application behind a small WSGI bridge on the standard
library's ThreadingHTTPServer that keeps connections open.
Usage: moto_run.py PORT
"""
import io
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

APP = DomainDispatcherApplication(create_backend_app)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True      # headers and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args):
        pass

    def environ(self, body):
        path, _, query = self.path.partition("?")
        env = {
            "REQUEST_METHOD": self.command, "SCRIPT_NAME": "", "PATH_INFO": unquote(path),
            "QUERY_STRING": query, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)), "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]), "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": self.client_address[0], "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False,
        }
        for k, v in self.headers.items():
            key = "HTTP_" + k.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                env[key] = v
        return env

    def run(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        out = {}

        def start_response(status, headers, exc_info=None):
            out["status"], out["headers"] = status, headers
            return lambda data: None

        chunks = APP(self.environ(body), start_response)
        data = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        code, _, reason = out["status"].partition(" ")
        self.send_response(int(code), reason)
        for k, v in out["headers"]:
            if k.lower() not in ("connection", "content-length", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = run


def main():
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()


if __name__ == "__main__":
    main()
