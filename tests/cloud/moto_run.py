#!/usr/bin/env python3
"""Serve moto's own WSGI app (what moto_server runs) with HTTP/1.1 keep-alive.

Stock moto_server answers with "Connection: close", so every call needs a new
TCP connection; scripts/bench-cloud uses this launcher to also measure the
client's connection reuse. Usage: moto_run.py PORT
"""
import sys

from werkzeug.serving import WSGIRequestHandler, make_server

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app


class KeepAliveHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, *args, **kwargs):
        pass


def main():
    app = DomainDispatcherApplication(create_backend_app)
    srv = make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True, request_handler=KeepAliveHandler)
    srv.serve_forever()


if __name__ == "__main__":
    main()
