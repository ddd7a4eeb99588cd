"""The three AI providers' HTTP APIs: one request shape and one reply shape each.

OpenAI ``POST /v1/chat/completions``, Anthropic ``POST /v1/messages`` and
Ollama ``POST /api/chat``, as their API references document them. Plain
``requests`` keeps the hub free of three SDKs for one call each; ``base_url``
is always configurable, so self-hosted gateways and test stubs work alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from flask import current_app

from orchestrator.services import outbound

AI_PROVIDERS = ("openai", "anthropic", "ollama")
DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5",
                  "ollama": "llama3.1"}
DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1",
                     "anthropic": "https://api.anthropic.com",
                     "ollama": "http://localhost:11434"}
DEFAULT_MAX_TOKENS = 1024
ANTHROPIC_VERSION = "2023-06-01"
#: Statuses worth another attempt (rate limited, overloaded, gateway trouble).
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
RETRY_BACKOFF = 0.5


class ProviderError(RuntimeError):
    """The provider could not be reached or refused; the message names the provider and why."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Settings:
    """A resolved provider: which API, where, with which key and model settings."""

    provider: str
    model: str
    api_key: str | None
    base_url: str
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Reply:
    text: str
    model: str
    status_code: int
    duration_ms: int


class ChatAPI:
    """Builds one provider's request and reads its answer."""

    name: ClassVar[str]

    def url(self, settings: Settings) -> str:
        raise NotImplementedError

    def headers(self, settings: Settings) -> dict[str, str]:
        raise NotImplementedError

    def body(self, settings: Settings, system: str, prompt: str,
             max_tokens: int) -> dict[str, Any]:
        raise NotImplementedError

    def text(self, answer: dict[str, Any]) -> str:
        raise NotImplementedError

    def error_message(self, answer: Any) -> str | None:
        """The provider's own explanation from an error body, if it gave one."""
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict):
            return str(error.get("message") or error.get("type") or "")[:300] or None
        return str(error)[:300] if error else None


class OpenAIChat(ChatAPI):
    name = "openai"

    def url(self, settings: Settings) -> str:
        return f"{settings.base_url}/chat/completions"

    def headers(self, settings: Settings) -> dict[str, str]:
        return {"Authorization": f"Bearer {settings.api_key}"}

    def body(self, settings: Settings, system: str, prompt: str,
             max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": settings.model, "max_tokens": max_tokens,
                                "messages": [{"role": "system", "content": system},
                                             {"role": "user", "content": prompt}]}
        if settings.temperature is not None:
            body["temperature"] = settings.temperature
        return body

    def text(self, answer: dict[str, Any]) -> str:
        return answer["choices"][0]["message"]["content"] or ""


class AnthropicMessages(ChatAPI):
    name = "anthropic"

    def url(self, settings: Settings) -> str:
        return f"{settings.base_url}/v1/messages"

    def headers(self, settings: Settings) -> dict[str, str]:
        return {"x-api-key": settings.api_key or "", "anthropic-version": ANTHROPIC_VERSION}

    def body(self, settings: Settings, system: str, prompt: str,
             max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": settings.model, "max_tokens": max_tokens,
                                "system": system,
                                "messages": [{"role": "user", "content": prompt}]}
        if settings.temperature is not None:
            body["temperature"] = settings.temperature
        return body

    def text(self, answer: dict[str, Any]) -> str:
        return "".join(block.get("text", "") for block in answer["content"]
                       if block.get("type") == "text")


class OllamaChat(ChatAPI):
    name = "ollama"

    def url(self, settings: Settings) -> str:
        return f"{settings.base_url}/api/chat"

    def headers(self, settings: Settings) -> dict[str, str]:
        # Ollama itself needs no key; a proxy in front of it may want one.
        return {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}

    def body(self, settings: Settings, system: str, prompt: str,
             max_tokens: int) -> dict[str, Any]:
        options: dict[str, Any] = {"num_predict": max_tokens}
        if settings.temperature is not None:
            options["temperature"] = settings.temperature
        return {"model": settings.model, "stream": False, "options": options,
                "messages": [{"role": "system", "content": system},
                             {"role": "user", "content": prompt}]}

    def text(self, answer: dict[str, Any]) -> str:
        return answer["message"]["content"] or ""


APIS: dict[str, ChatAPI] = {api.name: api for api in (OpenAIChat(), AnthropicMessages(),
                                                      OllamaChat())}


def chat(settings: Settings, system: str, prompt: str, max_tokens: int | None = None) -> Reply:
    """One chat call with retries on 429/5xx/network errors.

    :raises ProviderError: when the provider refuses (4xx), keeps failing, or
        answers in a shape it does not document.
    """
    api = APIS[settings.provider]
    url = api.url(settings)
    try:
        outbound.check_target(url)
    except outbound.BlockedTarget as exc:
        raise ProviderError(f"{settings.provider}: base_url refused: {exc}") from None
    tokens = max_tokens or settings.max_tokens or DEFAULT_MAX_TOKENS
    body = api.body(settings, system, prompt, tokens)
    headers = {"Content-Type": "application/json", "User-Agent": outbound.USER_AGENT,
               **api.headers(settings)}
    retries = int(current_app.config.get("AI_RETRIES", 0))
    for attempt in range(retries + 1):
        started = time.monotonic()
        try:
            response = requests.post(url, json=body, headers=headers, allow_redirects=False,
                                     timeout=float(current_app.config.get("AI_TIMEOUT", 60)))
        except requests.RequestException as exc:
            failure = ProviderError(f"{settings.provider}: {_network_reason(exc)}")
        else:
            if response.status_code < 300:
                return _reply(api, settings, response, started)
            failure = _refusal(api, settings, response)
            if response.status_code not in RETRY_STATUSES:
                raise failure
        if attempt < retries:
            time.sleep(RETRY_BACKOFF * 2 ** attempt)
    raise failure


def _network_reason(exc: requests.RequestException) -> str:
    # Exception texts repeat the URL; keep only the kind of failure.
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def _refusal(api: ChatAPI, settings: Settings, response: requests.Response) -> ProviderError:
    from orchestrator.services.ai.redact import redact

    try:
        detail = api.error_message(response.json())
    except ValueError:
        detail = None
    # Some providers quote part of the key they refused.
    why = f": {redact(detail, [settings.api_key or ''])}" if detail else ""
    return ProviderError(f"{settings.provider} refused the request "
                         f"(HTTP {response.status_code}){why}", response.status_code)


def _reply(api: ChatAPI, settings: Settings, response: requests.Response,
           started: float) -> Reply:
    try:
        answer = response.json()
        text = api.text(answer)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise ProviderError(f"{settings.provider}: unexpected answer shape "
                            f"(HTTP {response.status_code})", response.status_code) from None
    model = str(answer.get("model") or settings.model)
    return Reply(text, model, response.status_code,
                 int((time.monotonic() - started) * 1000))
