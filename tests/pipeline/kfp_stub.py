"""A stand-in for the KFP v2beta1 REST API on loopback: records requests, keeps a little state.

Enough of ml-pipeline's API (and of the UI server's healthz) for ``kfp.Client`` and the
``kfp`` CLI to upload a pipeline or a version, find a version by name, create an experiment,
start a run and wait for it, so those client code paths run offline with their real HTTP
bodies.
"""

import email.parser
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/apis/v2beta1"
CREATED = "2026-01-01T00:00:00Z"


class KfpStub:
    """``with KfpStub() as kfp: ...``; ``kfp.url``, ``kfp.requests`` (method, path, query, body).

    Args:
        existing_pipeline: The server already has pipeline ``clpipe-benchmark`` (id ``p-old``).
        version: What the healthz answers as ``frontendTagName`` (the UI server's field);
            None answers like the API server itself, without it.
        final_state: The state a run reaches (``GET /runs/{id}``).
    """

    def __init__(
        self, existing_pipeline: bool = False, version: str | None = "2.17.0", final_state: str = "SUCCEEDED"
    ) -> None:
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.version = version
        self.final_state = final_state
        self.pipelines: dict[str, str] = {"clpipe-benchmark": "p-old"} if existing_pipeline else {}
        #: pipeline id -> [(version id, display name, uploaded package)]
        self.versions: dict[str, list[tuple[str, str, bytes]]] = {"p-old": []}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _answer(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = urllib.parse.parse_qs(url.query)
                stub.requests.append((method, url.path, query, body))
                reply = stub.reply(method, url.path, query, body, self.headers.get("Content-Type", ""))
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

    def _upload(self, pipeline_id: str, name: str, body: bytes, content_type: str) -> dict:
        """Stores an uploaded package (multipart field ``uploadfile``) as a new version."""
        message = email.parser.BytesParser().parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        (package,) = [
            part.get_payload(decode=True)
            for part in message.walk()
            if part.get_param("name", header="content-disposition") == "uploadfile"
        ]
        versions = self.versions.setdefault(pipeline_id, [])
        version_id = f"v-{len(versions) + 1}"
        versions.append((version_id, name, package))
        return {"pipeline_id": pipeline_id, "pipeline_version_id": version_id, "display_name": name}

    def reply(self, method: str, path: str, query: dict, body: bytes, content_type: str):
        run = {"run_id": "r-1", "display_name": "run", "created_at": CREATED}
        if (method, path) == ("GET", f"{API}/healthz"):
            return {"multi_user": False} | (
                {"frontendTagName": self.version} if self.version is not None else {}
            )
        if (method, path) == ("GET", f"{API}/pipelines"):
            return {
                "pipelines": [
                    {"pipeline_id": pid, "display_name": name} for name, pid in self.pipelines.items()
                ]
            }
        if (method, path) == ("POST", f"{API}/pipelines/upload"):
            name = query["name"][0]
            self.pipelines[name] = "p-new"
            self._upload("p-new", name, body, content_type)
            return {"pipeline_id": "p-new", "display_name": name, "created_at": CREATED}
        if (method, path) == ("POST", f"{API}/pipelines/upload_version"):
            pipeline_id = query["pipelineid"][0]
            return self._upload(pipeline_id, query["name"][0], body, content_type) | {"created_at": CREATED}
        if method == "GET" and path.startswith(f"{API}/pipelines/") and path.endswith("/versions"):
            pipeline_id = path.split("/")[-2]
            wanted = [
                p["string_value"] for p in json.loads(query.get("filter", ["{}"])[0]).get("predicates", [])
            ]
            return {
                "pipeline_versions": [
                    {"pipeline_id": pipeline_id, "pipeline_version_id": vid, "display_name": name}
                    for vid, name, _ in self.versions.get(pipeline_id, [])
                    if not wanted or name in wanted
                ]
            }
        if (method, path) == ("GET", f"{API}/experiments"):
            return {}
        if (method, path) == ("POST", f"{API}/experiments"):
            return {"experiment_id": "e-1", "display_name": "clpipe", "created_at": CREATED}
        if (method, path) == ("POST", f"{API}/runs"):
            return run | {"state": "PENDING"}
        if (method, path) == ("GET", f"{API}/runs/r-1"):
            tasks = [
                {"display_name": "fold-train", "state": "SKIPPED"},
                {"display_name": "report", "state": "SUCCEEDED"},
            ]
            return run | {"state": self.final_state, "run_details": {"task_details": tasks}}
        return None

    def posted(self, path: str) -> list[bytes]:
        return [body for method, p, _, body in self.requests if method == "POST" and p == f"{API}{path}"]

    def uploaded(self) -> list[tuple[str, str, bytes]]:
        """Every stored version: (version id, name, package), over all pipelines."""
        return [v for versions in self.versions.values() for v in versions]

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
