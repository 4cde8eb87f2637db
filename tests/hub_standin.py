"""A local stand-in of the Hugging Face hub's resolve URLs, for the hub copies' tests."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gecko_jax.core.hub import HubCopy


@pytest.fixture
def hub(tmp_path):
    """``(serve, endpoint, requests)``: ``serve(copy, files)`` puts a copy's files at its pinned
    revision behind ``endpoint``, which answers as the hub's resolve URLs do."""
    repos: dict[str, dict[str, bytes]] = {}
    requests: list[str] = []

    class Resolve(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.answer(with_body=False)

        def do_GET(self) -> None:
            self.answer(with_body=True)

        def answer(self, with_body: bool) -> None:
            # /datasets/{owner}/{name}/resolve/{revision}/{file}, or without /datasets: a model
            requests.append(self.path)
            path = self.path.removeprefix("/datasets")
            _, owner, name, resolve, revision, file = path.split("/", 5)
            data = repos.get(f"{owner}/{name}@{revision}", {}).get(file)
            if resolve != "resolve" or data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Repo-Commit", revision)
            self.end_headers()
            if with_body:
                self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Resolve)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(copy: HubCopy, files: dict[str, bytes]) -> None:
        repos[f"{copy.repo_id}@{copy.revision}"] = files

    yield serve, f"http://127.0.0.1:{server.server_port}", requests
    server.shutdown()
    server.server_close()


def run_against_hub(
    endpoint: str, cache: Path, script: str, *args: str, offline: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python -c script args`` in a fresh process that reads the hub at ``endpoint``
    (huggingface_hub reads ``HF_ENDPOINT`` once, at import) and caches into ``cache``."""
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HUB_OFFLINE": "1" if offline else "0",
        "HF_HOME": str(cache.parent / "hf_home"),
        "GECKO_CACHE_DIR": str(cache),
    }
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
