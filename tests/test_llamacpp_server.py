"""The openai backend against a real OpenAI-compatible server: llama.cpp's (``python -m llama_cpp.server``) on the
offline models, on 127.0.0.1. Chat completions, a base model through completions, concurrent requests, and a
server stopped in the middle of a run and started again. Requests are counted from the server's own access log.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import SHARED_DATA, tracking_db

from rose.generate.backends import Request, SamplingParams
from rose.generate.backends.openai import OpenAIBackend
from rose.generate.cache import CompletionCache

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None,
        reason="llama-cpp-python[server] is not installed (pip install 'rose[llamacpp]')",
    ),
    pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not beside the repository"),
]
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` on one GGUF file, its output in a log file that counts answered requests."""

    def __init__(self, gguf: Path, alias: str, log: Path, port: int | None = None):
        self.gguf, self.alias, self.log = gguf, alias, log
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> LlamaServer:
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", self.alias,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "4096", "--n_threads", "2",
        ]  # fmt: skip
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # spinning OpenMP threads crawl on a busy machine
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("llama_cpp.server did not start in time")

    def answered(self, path: str = "/v1/") -> int:
        """Requests this server (all its lives) answered with 200, from uvicorn's access log."""
        if not self.log.exists():
            return 0
        return sum(1 for line in self.log.read_text().splitlines() if f'"POST {path}' in line and '" 200' in line)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def ggufs(rose_home):
    from rose.assets import gguf_path
    from rose.errors import MissingDependency

    try:
        return {"smollm2": gguf_path("smollm2-135m-instruct"), "gemma": gguf_path("gemma-3-270m")}
    except MissingDependency as exc:
        pytest.skip(str(exc))


@pytest.fixture
def smollm2_server(ggufs, tmp_path):
    server = LlamaServer(ggufs["smollm2"], "smollm2", tmp_path / "server.log").start()
    yield server
    server.kill()


def _generate_cmd(tmp_path: Path, url: str, generator: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-c", "import sys; from rose.cli import main; sys.exit(main())", "generate", "--backend", "openai", "--base-url", url, "--generator", generator,
        "--task", "topic", "--language", "en", "--strategy", "target_demos", "--per-label", "1",
        "--examples-per-request", "3", "--max-requests-per-label", "2", "--demos-per-label", "2", "--demo-words",
        "30", "--max-new-tokens", "40", "--source", str(SHARED_DATA), "--cache-dir", str(tmp_path / "cache"), *extra,
    ]  # fmt: skip


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": tracking_db(tmp_path)}


def _cached(tmp_path: Path) -> int:
    cache = CompletionCache(tmp_path / "cache" / "completions.sqlite")
    try:
        return len(cache)
    finally:
        cache.close()


def test_chat_completions_and_concurrent_requests(smollm2_server):
    backend = OpenAIBackend("smollm2", smollm2_server.url, concurrency=4, timeout=120)
    messages = [{"role": "user", "content": "Write two short sentences about the sea, one per line."}]
    requests = [Request(messages=messages, params=SamplingParams(max_new_tokens=32), seed=s) for s in range(6)]
    try:
        answers = backend.generate(requests)
    finally:
        backend.close()
    assert len(answers) == 6 and all(a.text.strip() and 0 < a.n_tokens <= 32 for a in answers)
    assert len({a.text for a in answers}) > 1  # seeds reach the server's sampler
    assert smollm2_server.answered("/v1/chat/completions") == 6


def test_rose_generate_chat_model(smollm2_server, tmp_path):
    done = subprocess.run(
        _generate_cmd(tmp_path, smollm2_server.url, "smollm2", "--concurrency", "4", "--batch-size", "7"),
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    asked = smollm2_server.answered("/v1/chat/completions")
    assert asked >= 7 and asked == _cached(tmp_path)  # one request per cached answer, each asked once


def test_rose_generate_base_model_through_completions(ggufs, tmp_path):
    server = LlamaServer(ggufs["gemma"], "gemma", tmp_path / "gemma.log").start()
    try:
        done = subprocess.run(
            _generate_cmd(tmp_path, server.url, "gemma", "--prompt-format", "completion", "--concurrency", "2"),
            env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        server.kill()
    assert done.returncode == 0, done.stderr[-3000:]
    assert server.answered("/v1/completions") >= 7 and server.answered("/v1/chat/completions") == 0


def test_server_stopped_mid_run_and_started_again(ggufs, tmp_path):
    """The server dies after a few answers: the run fails with a one-line error and keeps what it got; started
    again against a new server, it resumes from the cache and asks nothing twice."""
    log = tmp_path / "server.log"
    server = LlamaServer(ggufs["smollm2"], "smollm2", log).start()
    cmd = _generate_cmd(tmp_path, server.url, "smollm2", "--concurrency", "1", "--batch-size", "1")
    first = subprocess.Popen(cmd, env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while server.answered() < 3 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, "the run finished before the server could be stopped"
        server.kill()
        before = server.answered()
        _, err = first.communicate(timeout=300)  # the backend retries for about 30 s, then gives up
    finally:
        server.kill()
        if first.poll() is None:
            first.kill()
    assert first.returncode != 0 and "cannot reach the OpenAI-compatible server" in err
    assert err.strip().splitlines()[-1].startswith("rose generate: error: cannot reach"), err[-2000:]
    assert _cached(tmp_path) == before >= 3  # every answer received before the stop was kept

    server.start()  # the same model on the same port, a new process
    second = subprocess.run(cmd, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=900)
    server.kill()
    assert second.returncode == 0, second.stderr[-3000:]
    total = server.answered()
    assert total > before  # the rest was asked of the new server
    assert total == _cached(tmp_path)  # and no request was answered twice
