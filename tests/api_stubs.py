"""Local stand-ins for the AI providers' and Git hosts' APIs, speaking their real formats.

Each ``ApiStub`` is a real HTTP server on loopback that records every request
and answers from a route table; the factories below give the documented
success bodies of OpenAI chat completions, Anthropic messages, Ollama
``/api/chat`` and the GitHub, GitLab and Gitea status and comment APIs.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIAGNOSIS_JSON = json.dumps({"summary": "fail.sh exited 3 after writing to stderr",
                             "likely_cause": "the disk is full",
                             "suggested_fix": "free space on /var and re-run"})


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Answer = tuple[int, Any]
Route = Callable[[Call], Answer]


class LocalServer:
    """A real HTTP server on loopback that records every request (``calls``) and answers
    each through ``respond(call) -> (status, body bytes, content type)``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                call = Call(self.command, self.path, dict(self.headers.items()), body)
                with server._lock:
                    server.calls.append(call)
                status, data, content_type = server.respond(call)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = _handle  # noqa: N815 - http.server naming

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def respond(self, call: Call) -> tuple[int, bytes, str]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class ApiStub(LocalServer):
    """``routes``: ``(method, path regex) -> fn(call) -> (status, json)``; unknown -> 404.

    ``fail_next`` answers the next requests with the given (status, json) first.
    """

    def __init__(self, routes: dict[tuple[str, str], Route]) -> None:
        super().__init__()
        self.routes = [(method, re.compile(pattern + r"$"), fn)
                       for (method, pattern), fn in routes.items()]
        self.fail_next: list[Answer] = []

    def respond(self, call: Call) -> tuple[int, bytes, str]:
        status, answer = self.answer(call)
        return status, json.dumps(answer).encode(), "application/json"

    def answer(self, call: Call) -> Answer:
        with self._lock:
            if self.fail_next:
                return self.fail_next.pop(0)
        for method, pattern, fn in self.routes:
            if method == call.method and pattern.match(call.path):
                return fn(call)
        return 404, {"message": "Not Found"}

    def __enter__(self) -> ApiStub:
        super().__enter__()
        return self

    def find(self, method: str, path_part: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and path_part in c.path]


# -- AI providers ---------------------------------------------------------------------------

def openai_stub(text: str = DIAGNOSIS_JSON) -> ApiStub:
    """``POST /v1/chat/completions`` as api.openai.com answers it (base_url = url + /v1)."""
    def chat(call: Call) -> Answer:
        if call.headers.get("Authorization") == "Bearer sk-bad":
            return 401, {"error": {"message": "Incorrect API key provided: sk-bad.",
                                   "type": "invalid_request_error", "param": None,
                                   "code": "invalid_api_key"}}
        return 200, {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object":
                     "chat.completion", "created": 1741569952,
                     "model": call.json["model"] + "-2024-08-06",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                                                          "refusal": None, "annotations": []},
                                  "logprobs": None, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 19, "completion_tokens": 10,
                               "total_tokens": 29}}
    return ApiStub({("POST", "/v1/chat/completions"): chat})


def anthropic_stub(text: str = DIAGNOSIS_JSON) -> ApiStub:
    """``POST /v1/messages`` as api.anthropic.com answers it."""
    def messages(call: Call) -> Answer:
        if call.headers.get("x-api-key") == "sk-ant-bad":
            return 401, {"type": "error", "error": {"type": "authentication_error",
                                                    "message": "invalid x-api-key"}}
        return 200, {"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message",
                     "role": "assistant", "model": call.json["model"],
                     "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                     "stop_sequence": None, "usage": {"input_tokens": 2095,
                                                      "output_tokens": 503}}
    return ApiStub({("POST", "/v1/messages"): messages})


def ollama_stub(text: str = DIAGNOSIS_JSON) -> ApiStub:
    """``POST /api/chat`` (``stream: false``) as an Ollama server answers it."""
    def chat(call: Call) -> Answer:
        return 200, {"model": call.json["model"], "created_at": "2023-12-12T14:13:43.416799Z",
                     "message": {"role": "assistant", "content": text}, "done": True,
                     "done_reason": "stop", "total_duration": 5191566416,
                     "load_duration": 2154458, "prompt_eval_count": 26,
                     "eval_count": 298, "eval_duration": 4799921000}
    return ApiStub({("POST", "/api/chat"): chat})


# -- Git hosts ------------------------------------------------------------------------------

def _counter() -> Callable[[], int]:
    numbers = itertools.count(1001)
    return lambda: next(numbers)


def github_stub(prefix: str = "") -> ApiStub:
    """Commit statuses and issue comments of the GitHub REST API (also Gitea's, under
    ``prefix="/api/v1"``: Gitea copied these endpoints and bodies)."""
    new_id = _counter()

    def status(call: Call) -> Answer:
        return 201, {"id": new_id(), "state": call.json["state"],
                     "context": call.json.get("context"),
                     "description": call.json.get("description")}

    def comment(call: Call) -> Answer:
        return 201, {"id": new_id(), "body": call.json["body"]}

    def edit(call: Call) -> Answer:
        return 200, {"id": int(call.path.rsplit("/", 1)[1]), "body": call.json["body"]}

    def repo(call: Call) -> Answer:
        return 200, {"id": 1296269, "full_name": call.path.split("/repos/", 1)[1]}

    return ApiStub({
        ("POST", prefix + r"/repos/[^/]+/[^/]+/statuses/[0-9a-f]+"): status,
        ("POST", prefix + r"/repos/[^/]+/[^/]+/issues/\d+/comments"): comment,
        ("PATCH", prefix + r"/repos/[^/]+/[^/]+/issues/comments/\d+"): edit,
        ("GET", prefix + r"/repos/[^/]+/[^/]+"): repo,
    })


def gitea_stub() -> ApiStub:
    return github_stub("/api/v1")


def gitlab_stub() -> ApiStub:
    """Commit statuses and merge request notes of the GitLab REST API v4."""
    new_id = _counter()

    def status(call: Call) -> Answer:
        return 201, {"id": new_id(), "status": call.json["state"], "name": call.json["name"]}

    def note(call: Call) -> Answer:
        return 201, {"id": new_id(), "body": call.json["body"], "noteable_type": "MergeRequest"}

    def edit(call: Call) -> Answer:
        return 200, {"id": int(call.path.rsplit("/", 1)[1]), "body": call.json["body"]}

    return ApiStub({
        ("POST", r"/api/v4/projects/[^/]+/statuses/[0-9a-f]+"): status,
        ("POST", r"/api/v4/projects/[^/]+/merge_requests/\d+/notes"): note,
        ("PUT", r"/api/v4/projects/[^/]+/merge_requests/\d+/notes/\d+"): edit,
        ("GET", r"/api/v4/projects/[^/]+"): lambda call: (200, {"id": 3}),
    })
