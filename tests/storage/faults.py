"""Fault injection for the publishing tests: a throttling HTTP-aware TCP proxy between an S3 client and
SeaweedFS, and a stage CLI in a subprocess that SIGKILLs itself at a chosen step of a publish."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Self

#: What the client sends first on each request: ``PUT /bucket/key?query HTTP/1.1``.
REQUEST_LINE = re.compile(rb"^([A-Z]+) (\S+) HTTP/1\.[01]\r\n")
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


class ThrottlingProxy:
    """Forwards 127.0.0.1:``port`` to ``127.0.0.1:upstream`` at ``rate`` bytes/s each way (None: full speed).

    It reads each request's header block (so it sees ``METHOD path``), calls ``on_request(method, path)``
    in a worker thread before forwarding it (the callback may block, e.g. to hold a request, or kill a
    process), and drops the connection when the callback returns ``"drop"``. Bodies are forwarded by
    ``Content-Length`` (what botocore sends). All requests seen are in :attr:`requests`.
    """

    def __init__(
        self,
        upstream: int,
        rate: float | None = None,
        on_request: Callable[[str, str], str | None] | None = None,
    ) -> None:
        self.upstream, self.rate, self.on_request = upstream, rate, on_request
        self.requests: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def __enter__(self) -> Self:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def refuse(self) -> None:
        """Stops accepting connections: the endpoint is gone (its port refuses, as a dead server's does)."""
        self._loop.call_soon_threadsafe(self._server.close)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:  # the server is down: like a load balancer without a backend
            writer.close()
            return
        back = asyncio.ensure_future(self._pump(up_reader, writer))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                match = REQUEST_LINE.match(head)
                method, path = match.group(1).decode(), match.group(2).decode()
                self.requests.append((method, path))
                if self.on_request is not None:
                    action = await self._loop.run_in_executor(None, self.on_request, method, path)
                    if action == "drop":
                        break
                await self._send(up_writer, head)
                length = CONTENT_LENGTH.search(head)
                remaining = int(length.group(1)) if length else 0
                while remaining:
                    chunk = await reader.read(min(remaining, 4096))
                    if not chunk:
                        return
                    remaining -= len(chunk)
                    await self._send(up_writer, chunk)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            back.cancel()
            for w in (writer, up_writer):
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(4096):
                await self._send(writer, chunk)
        writer.close()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if self.rate:
            await asyncio.sleep(len(data) / self.rate)
        writer.write(data)
        await writer.drain()


#: A stage CLI that SIGKILLs itself at one step of a publish: ``KILL_AT=when:operation:n`` with when
#: ``before``/``after`` and operation one of ``_Location``'s ``write`` (journal, then manifest),
#: ``delete``, ``put`` (one per output file) or ``publish`` (the whole publish: ``before`` = killed
#: while the stage was still computing, nothing published yet).
KILLED_CLI = """
import os, signal, sys
from clpipe.components.common import storage
when, operation, n = os.environ["KILL_AT"].split(":")
calls = {}

def hooked(name, real):
    def call(*args, **kwargs):
        calls[name] = calls.get(name, 0) + 1
        hit = name == operation and calls[name] == int(n)
        if hit and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if hit and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return call

for name in ("write", "delete", "put"):
    setattr(storage._Location, name, hooked(name, getattr(storage._Location, name)))
storage._publish = hooked("publish", storage._publish)
from clpipe.cli import main
sys.exit(main(sys.argv[1:]))
"""

#: The same CLI without a hook.
CLI = "import sys\nfrom clpipe.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def clpipe(
    argv: list[str], env: dict[str, str] | None = None, kill_at: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Runs ``clpipe ARGV`` in a subprocess (optionally killing itself at ``kill_at``)."""
    environ = {**os.environ, **(env or {}), **({"KILL_AT": kill_at} if kill_at else {})}
    code = KILLED_CLI if kill_at else CLI
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        check=False,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def started(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``clpipe ARGV`` running in the background; killed (SIGKILL) on exit if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, *argv],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# --- make-masks runs to interrupt ---------------------------------------------------------------------

#: Rows and classes of the synthetic inputs: masks of 3 kB, so each output file is its own PUT.
N_ROWS, N_CLASSES = 3000, 4


def make_masks_inputs(folder: str) -> dict[str, str]:
    """Given labels and two different pred_probs ("a", "b") as .npy files under ``folder``."""
    import numpy as np

    rng = np.random.default_rng(0)
    labels = np.arange(N_ROWS) % N_CLASSES
    paths = {"labels": os.path.join(folder, "labels.npy")}
    np.save(paths["labels"], labels)
    for name, boost in (("a", 2.0), ("b", 1.0)):
        logits = rng.normal(size=(N_ROWS, N_CLASSES))
        logits[np.arange(N_ROWS), labels] += boost
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        paths[name] = os.path.join(folder, f"pred_probs_{name}.npy")
        np.save(paths[name], probs.astype(np.float32))
    return paths


def make_masks_argv(inputs: dict[str, str], run: str, out: str, *methods: str) -> list[str]:
    """``make-masks`` with pred_probs ``run`` ("a" or "b") into ``out`` (all methods unless given)."""
    argv = ["make-masks", "--labels", inputs["labels"], "--pred-probs", inputs[run], "--out", out]
    return [*argv, "--methods", *methods] if methods else argv


def seen(url: str) -> dict[str, bytes] | str:
    """What a reader gets at ``url``: every file of a verified make-masks output, or the refusal."""
    from clpipe.components.common import storage
    from clpipe.components.common.errors import InputError

    try:
        output = storage.open_output(url, stage="make-masks")
        return {name: output.read_bytes(name) for name in sorted(output.files)}
    except InputError as e:
        return str(e)


def reference_runs(folder: str) -> tuple[dict[str, str], dict[str, dict[str, bytes] | str]]:
    """Inputs made in ``folder``, and what a reader sees of each complete make-masks run ("a", "b", "b argmax"):
    the states a faulted publish may leave behind."""
    from clpipe.cli import main as clpipe_main

    inputs = make_masks_inputs(folder)
    refs = {}
    for name, run, methods in (("a", "a", ()), ("b", "b", ()), ("b argmax", "b", ("argmax",))):
        out = os.path.join(folder, f"ref-{name}")
        assert clpipe_main(make_masks_argv(inputs, run, out, *methods)) == 0
        refs[name] = seen(out)
    assert refs["a"] != refs["b"] and isinstance(refs["a"], dict)
    return inputs, refs


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single ``ERROR`` line of a failed stage run (asserting there is exactly one and no traceback)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]
