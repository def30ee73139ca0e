"""Any OpenAI-compatible server: vLLM's, llama.cpp's, Ollama, TGI, hosted APIs.

Bounded concurrency (a thread pool), retries with exponential backoff on 429, 5xx and connection errors, a
timeout per request. The API key is read from an environment variable by the caller and kept only in the
``Authorization`` header; it never appears in an error message, a logged parameter or an artifact.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from rose.errors import MissingDependency, RoseError
from rose.generate.backends.base import Backend, Completion, Request

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def request_body(model: str, request: Request, send_repetition_penalty: bool = True) -> tuple[str, dict[str, Any]]:
    """(endpoint, JSON body) of one request: chat completions for messages, completions for a raw prompt."""
    p = request.params
    body: dict[str, Any] = {
        "model": model,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "max_tokens": p.max_new_tokens,
        "seed": request.seed,
    }
    if send_repetition_penalty:  # not OpenAI's own API, which rejects unknown fields
        body["repetition_penalty"] = p.repetition_penalty  # vLLM, TGI
        body["repeat_penalty"] = p.repetition_penalty  # llama.cpp's servers (whose default is 1.1, not 1.0)
        body["min_p"] = 0.0  # llama.cpp's servers default to 0.05; vLLM's default is 0 (off)
    if request.messages is not None:
        return "chat/completions", {**body, "messages": request.messages}
    return "completions", {**body, "prompt": request.prompt}


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        *,
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 5,
        backoff: float = 1.0,
        context_length: int = 4096,
        chat: bool = True,
    ):
        super().__init__(model, context_length)
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.chat = chat
        self.send_repetition_penalty = "api.openai.com" not in self.base_url
        self._client = None

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def is_chat(self) -> bool:
        return self.chat

    def load(self) -> None:
        if self._client is not None:
            return
        try:
            import httpx
        except ImportError:
            raise MissingDependency("httpx", purpose="the openai backend") from None
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self._client = httpx.Client(headers=headers, timeout=self.timeout, limits=limits)

    def check(self) -> None:
        """Fail before a run starts when the server cannot be connected to (any HTTP answer means it is there)."""
        import httpx

        self.load()
        try:
            self._client.get(f"{self.base_url}/models", timeout=min(self.timeout, 10.0))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise RoseError(
                f"cannot reach the OpenAI-compatible server at {self.base_url} ({type(exc).__name__}): "
                "check that it is running and that --base-url is right"
            ) from None
        except httpx.HTTPError:
            return

    def generate(self, requests: list[Request]) -> list[Completion]:
        out = dict(self.generate_each(requests))
        return [out[i] for i in range(len(requests))]

    def generate_each(self, requests: list[Request]) -> Iterator[tuple[int, Completion]]:
        """Answers as they arrive; a request that fails does not stop the others, whose paid answers are all
        yielded (and so cached by the caller) before the first failure is raised."""
        self.load()
        failure: Exception | None = None
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._one, r): i for i, r in enumerate(requests)}
            for future in as_completed(futures):
                try:
                    answer = future.result()
                except Exception as exc:  # noqa: BLE001 - raised below, once every other answer is in
                    failure = failure or exc
                    continue
                yield futures[future], answer
        if failure is not None:
            raise failure

    def _one(self, request: Request) -> Completion:
        import httpx

        endpoint, body = request_body(self.model, request, self.send_repetition_penalty)
        url = f"{self.base_url}/{endpoint}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._client.post(url, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if last:
                    raise RoseError(
                        f"cannot reach the OpenAI-compatible server at {self.base_url} ({type(exc).__name__}) "
                        f"after {self.retries + 1} tries: check that it is running and that --base-url is right"
                    ) from None
                self._sleep(attempt, None)
                continue
            if response.status_code in RETRY_STATUS and not last:
                log.info("%s answered %d; retrying", url, response.status_code)
                self._sleep(attempt, response.headers.get("retry-after"))
                continue
            if response.status_code >= 400:
                raise RoseError(self._error(response))
            return self._completion(response.json(), endpoint)
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        try:
            wait = float(retry_after) if retry_after else self.backoff * 2**attempt
        except ValueError:
            wait = self.backoff * 2**attempt
        time.sleep(min(wait, 60.0) * (1 + 0.1 * random.random()))

    def _error(self, response) -> str:
        detail = response.text[:300].replace("\n", " ")
        if self._api_key:
            detail = detail.replace(self._api_key, "***")
        hint = {
            401: "check the API key environment variable (--api-key-env)",
            403: "check the API key's access",
            404: "check --base-url (it usually ends in /v1) and the model name",
        }.get(response.status_code, "")
        return f"the server at {self.base_url} answered {response.status_code}: {detail}" + (
            f"; {hint}" if hint else ""
        )

    @staticmethod
    def _completion(payload: dict, endpoint: str) -> Completion:
        try:
            choice = payload["choices"][0]
            text = choice["message"]["content"] if endpoint.startswith("chat") else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise RoseError(f"the server's answer has no choices[0] text: {str(payload)[:200]}") from None
        usage = payload.get("usage") or {}
        text = text or ""
        n = usage.get("completion_tokens") or len(text.split())
        return Completion(text, n_tokens=int(n), finish_reason=choice.get("finish_reason") or "stop")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
