"""A stand-in for the KFP v2beta1 REST API on loopback: records requests, answers minimally.

Enough of ml-pipeline's API for ``kfp.Client`` and the ``kfp`` CLI to upload a pipeline (or a
version), create an experiment and start a run, so those client code paths run offline.
"""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/apis/v2beta1"
CREATED = "2026-01-01T00:00:00Z"


class KfpStub:
    """``with KfpStub() as kfp: ...``; ``kfp.url``, ``kfp.requests`` (method, path, query, body)."""

    def __init__(self, existing_pipeline: bool = False) -> None:
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.existing_pipeline = existing_pipeline
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _answer(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.requests.append((method, url.path, urllib.parse.parse_qs(url.query), body))
                reply = stub.reply(method, url.path)
                data = json.dumps(reply).encode()
                self.send_response(200 if reply is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def reply(self, method: str, path: str):
        run = {"run_id": "r-1", "display_name": "run", "created_at": CREATED, "state": "PENDING"}
        routes = {
            ("GET", f"{API}/healthz"): {"multi_user": False},
            ("GET", f"{API}/pipelines"): (
                {"pipelines": [{"pipeline_id": "p-old", "display_name": "clpipe-benchmark"}]}
                if self.existing_pipeline
                else {}
            ),
            ("POST", f"{API}/pipelines/upload"): {
                "pipeline_id": "p-new",
                "display_name": "uploaded",
                "created_at": CREATED,
            },
            ("POST", f"{API}/pipelines/upload_version"): {
                "pipeline_id": "p-old",
                "pipeline_version_id": "v-new",
                "created_at": CREATED,
            },
            ("GET", f"{API}/experiments"): {},
            ("POST", f"{API}/experiments"): {
                "experiment_id": "e-1",
                "display_name": "clpipe",
                "created_at": CREATED,
            },
            ("POST", f"{API}/runs"): run,
            ("GET", f"{API}/runs/r-1"): run,
        }
        if (method, path) == ("GET", f"{API}/pipelines/p-new/versions"):
            return {"pipeline_versions": [{"pipeline_id": "p-new", "pipeline_version_id": "v-1"}]}
        return routes.get((method, path))

    def posted(self, path: str) -> list[bytes]:
        return [body for method, p, _, body in self.requests if method == "POST" and p == f"{API}{path}"]

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
