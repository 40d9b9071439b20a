"""The Vertex AI target offline: the compiled file loads into ``aiplatform.PipelineJob``, and
``clpipe submit --target vertex`` sends its create request, accelerators and all, to a
stand-in for the Vertex AI REST API on loopback. No Google Cloud project is contacted: that
Vertex AI accepts and runs the job is not testable here (``k8s/README.md``, "What only a real
cluster can confirm")."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform  # the test extra installs it (clpipe[vertex])

from clpipe import cli as clpipe_cli

from .conftest import VERTEX_ROOT

GPU_EXECUTORS = ("exec-fold-train", "exec-coteach", "exec-coteach-2")
JOB = "projects/p/locations/us-central1/pipelineJobs/clpipe-1"


class VertexStub:
    """Answers PipelineJob create (echoing the body) and get (the job SUCCEEDED); records the bodies."""

    def __init__(self) -> None:
        self.created: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, job: dict) -> None:
                data = json.dumps(job).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.created.append(body)
                self._reply(body | {"name": JOB, "state": "PIPELINE_STATE_PENDING"})

            def do_GET(self):
                self._reply(stub.created[-1] | {"name": JOB, "state": "PIPELINE_STATE_SUCCEEDED"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vertex_config(monkeypatch):
    """aiplatform's global settings (what ``aiplatform.init`` sets), fresh, restored after the test."""
    from google.cloud.aiplatform import initializer

    config = initializer._Config()
    monkeypatch.setattr(initializer, "global_config", config)
    return config


def accelerators(spec: dict, names=GPU_EXECUTORS) -> dict:
    executors = spec["deploymentSpec"]["executors"]
    return {name: executors[name]["container"]["resources"]["accelerator"] for name in names}


def test_the_compiled_file_loads_into_a_pipeline_job_carrying_the_accelerators(vertex_yaml, vertex_config):
    job = aiplatform.PipelineJob(
        display_name="clpipe",
        template_path=str(vertex_yaml),
        parameter_values={"dataset": "gs://b/cifar10", "given_pred_probs_conditions": []},
        project="p",
        location="us-central1",
        credentials=AnonymousCredentials(),
    )
    request = type(job._gca_resource).to_dict(job._gca_resource)  # the body PipelineJob.submit() sends
    assert request["runtime_config"]["gcs_output_directory"] == VERTEX_ROOT
    for accelerator in accelerators(request["pipeline_spec"]).values():
        assert accelerator["type"] == "NVIDIA_H100_80GB" and accelerator["count"] == "1"


def test_submit_sends_the_job_to_vertex_and_waits_for_it(vertex_config, monkeypatch, capsys):
    """Before creating the job, ``PipelineJob.submit`` makes the pipeline root's bucket if it is
    missing, asking Cloud Storage and Resource Manager (best effort, errors logged); that side
    trip is left out here, where no Google endpoint answers."""
    from google.cloud.aiplatform.utils import gcs_utils

    monkeypatch.setattr(
        gcs_utils, "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist", lambda **_: None
    )
    with VertexStub() as vertex:
        vertex_config.init(credentials=AnonymousCredentials(), api_endpoint=vertex.url, api_transport="rest")
        argv = [
            "submit", "--target", "vertex", "--project", "p", "--region", "us-central1",
            "--pipeline-root", VERTEX_ROOT, "--vertex-accelerator", "NVIDIA_L4", "--no-cache",
            "--wait", "--dataset", "gs://b/cifar10", "--condition", "name=g,noise=0.4,sparsity=0.2",
        ]  # fmt: skip
        assert clpipe_cli.main(argv) == 0
    (created,) = vertex.created
    spec = created["pipelineSpec"]
    assert len(spec["deploymentSpec"]["executors"]) == 8  # compiled for this run: the cross-validated loop
    for accelerator in accelerators(spec, ("exec-fold-train", "exec-coteach")).values():
        assert accelerator["type"] == "NVIDIA_L4" and accelerator["count"] == "1"
    tasks = [
        t
        for c in [spec["root"], *spec["components"].values()]
        for t in c.get("dag", {}).get("tasks", {}).values()
    ]
    assert tasks and all(t["cachingOptions"] == {"enableCache": False} for t in tasks)
    runtime = created["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == VERTEX_ROOT
    assert runtime["parameterValues"]["cross_validated_conditions"][0]["name"] == "g"
    assert f"run {JOB} finished: SUCCEEDED" in capsys.readouterr().out


@pytest.mark.parametrize(("flags", "message"), [
    ([], "--project: needed with --target vertex"),
    (["--project", "p"], "--region: needed with --target vertex"),
])  # fmt: skip
def test_vertex_submit_needs_a_project_and_a_region(flags, message, capsys):
    argv = ["submit", "--target", "vertex", "--pipeline-root", VERTEX_ROOT, *flags, "--dataset", "gs://b/d",
            "--condition", "name=g,noise=0.4"]  # fmt: skip
    assert clpipe_cli.main(argv) == 2
    assert f"ERROR submit: {message}" in capsys.readouterr().err
