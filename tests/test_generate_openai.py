"""The openai backend against a real OpenAI-compatible HTTP server on 127.0.0.1; the API key is never logged."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fakes import fake_generate

from rose.errors import RoseError
from rose.generate.backends import Request, SamplingParams
from rose.generate.backends.openai import OpenAIBackend

SECRET = "sk-test-DO-NOT-LOG-4f9a1c"


class Server:
    """A tiny OpenAI-compatible server: scripted status codes first, then list-shaped answers."""

    def __init__(self, statuses=(), delay: float = 0.0, fail=None):
        self.statuses = list(statuses)
        self.fail = fail  # body -> status code (or None) for requests that fail every time
        self.delay = delay
        self.seen: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                    status = server.statuses.pop(0) if server.statuses else 200
                    status = (server.fail and server.fail(body)) or status
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(server.delay)
                with server.lock:
                    server.in_flight -= 1
                if status != 200:
                    self.send_response(status)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                text = server.answer(body)
                choice = {"message": {"role": "assistant", "content": text}} if "messages" in body else {"text": text}
                payload = {
                    "choices": [{**choice, "finish_reason": "stop"}],
                    "usage": {"completion_tokens": len(text.split())},
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def answer(body: dict) -> str:
        prompt = json.dumps(body.get("messages") or body.get("prompt"))
        if "Yes" in prompt and "first word" in prompt:
            return "Yes. It fits."
        h = hashlib.sha256((prompt + str(body.get("seed"))).encode()).hexdigest()
        return "\n".join(f"{i}. Server sentence {h[i : i + 8]} number {i} for the dataset." for i in range(1, 6))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def _request(**kw) -> Request:
    return Request(messages=[{"role": "user", "content": "Write examples."}], seed=3, **kw)


def test_chat_and_completion_requests(server):
    backend = OpenAIBackend("my-model", server.url, api_key=SECRET, concurrency=2)
    chat, plain = backend.generate([_request(), Request(prompt="1. a\n2.", seed=4, params=SamplingParams(0.0))])
    assert chat.text.startswith("1. Server sentence") and chat.n_tokens > 0 and plain.text
    first, second = sorted(server.seen, key=lambda hit: hit["path"] != "/v1/chat/completions")
    assert first["path"] == "/v1/chat/completions" and second["path"] == "/v1/completions"
    assert first["auth"] == f"Bearer {SECRET}"
    assert first["body"] | {"messages": None} == {
        "model": "my-model", "temperature": 0.4, "top_p": 0.9, "max_tokens": 512, "seed": 3,
        "repetition_penalty": 1.2, "repeat_penalty": 1.2, "min_p": 0.0, "messages": None,
    }  # fmt: skip
    assert SECRET not in repr(backend)


def test_retries_429_then_succeeds():
    s = Server(statuses=[429, 503])
    try:
        backend = OpenAIBackend("m", s.url, retries=3, backoff=0.01)
        (answer,) = backend.generate([_request()])
        assert answer.text and len(s.seen) == 3
    finally:
        s.close()


def test_persistent_500_is_a_clear_error():
    s = Server(statuses=[500] * 10)
    try:
        with pytest.raises(RoseError, match=r"answered 500"):
            OpenAIBackend("m", s.url, retries=2, backoff=0.01).generate([_request()])
        assert len(s.seen) == 3
    finally:
        s.close()


def test_401_names_the_key_variable_but_not_the_key():
    s = Server(statuses=[401])
    try:
        with pytest.raises(RoseError) as exc:
            OpenAIBackend("m", s.url, api_key=SECRET, retries=0).generate([_request()])
        assert "--api-key-env" in str(exc.value) and SECRET not in str(exc.value)
    finally:
        s.close()


def test_unreachable_server_names_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(RoseError, match=rf"cannot reach .* at {url} .*check that it is running"):
        OpenAIBackend("m", url, retries=1, backoff=0.01, timeout=2).generate([_request()])


def test_timeouts_are_retried_then_reported():
    s = Server(delay=1.0)
    try:
        with pytest.raises(RoseError, match="cannot reach"):
            OpenAIBackend("m", s.url, retries=1, backoff=0.01, timeout=0.2).generate([_request()])
    finally:
        s.close()


def test_one_failed_request_loses_no_other_answer(tmp_path):
    from fakes import generate_config

    from rose.generate.cache import CompletionCache
    from rose.generate.run import run_strategy

    def travel_fails(body: dict) -> int | None:
        return 400 if "travel" in json.dumps(body["messages"][-1]["content"]) else None

    s = Server(fail=travel_fails, delay=0.05)
    try:
        config = generate_config(tmp_path, backend="openai", base_url=s.url, per_label=2, batch_size=16)

        def attempt():
            cache = CompletionCache(tmp_path / "cache" / "completions.sqlite")
            backend = OpenAIBackend("m", s.url, concurrency=4, retries=0)
            try:
                return run_strategy(config, backend, cache)
            finally:
                cache.close()

        with pytest.raises(RoseError, match="answered 400"):
            attempt()
        failed = [hit for hit in s.seen if travel_fails(hit["body"])]
        assert len(s.seen) == 16 and 1 <= len(failed) < 16  # one batch: a few travel requests failed
        assert len(CompletionCache(tmp_path / "cache" / "completions.sqlite")) == 16 - len(failed)
        s.fail, before = None, len(s.seen)
        state, ctx = attempt()
        again = [hit["body"] for hit in s.seen[before:]]
        assert sorted(map(json.dumps, again)) == sorted(json.dumps(hit["body"]) for hit in failed)  # only those
        assert ctx.stats["requests_cached"] == 16 - len(failed) and state.shortfall == dict.fromkeys(state.labels, 0)
    finally:
        s.close()


def test_concurrency_is_bounded():
    s = Server(delay=0.05)
    try:
        backend = OpenAIBackend("m", s.url, concurrency=3)
        answers = backend.generate([_request(sample_index=i) for i in range(12)])
        assert len(answers) == 12 and 2 <= s.max_in_flight <= 3
    finally:
        s.close()


def test_generate_over_http_never_logs_the_key(tmp_path, monkeypatch, server):
    import mlflow

    monkeypatch.setenv("ROSE_TEST_KEY", SECRET)
    result = fake_generate(
        tmp_path,
        monkeypatch,
        backend="openai",
        base_url=server.url,
        api_key_env="ROSE_TEST_KEY",
        generator="org/served-model:latest",
        strategy="target_demos_revision",
        per_label=3,
    )
    assert result.shortfall == dict.fromkeys(result.kept, 0)
    assert all(hit["auth"] == f"Bearer {SECRET}" for hit in server.seen)
    assert {hit["body"]["model"] for hit in server.seen} == {"org/served-model:latest"}
    run = mlflow.get_run(result.run_id)
    logged = json.dumps([run.data.params, run.data.tags, list(run.data.metrics)])
    assert "ROSE_TEST_KEY" in logged and SECRET not in logged
    local = Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, dst_path=str(tmp_path / "dl")))
    files = [p for p in local.rglob("*") if p.is_file()] + [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 6
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
