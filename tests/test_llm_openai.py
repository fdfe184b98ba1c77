import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from atommem.llm.base import ModelConfig, SamplingConfig, build_llm, chat_prompt_ids
from atommem.llm.openai_api import OpenAIBackend, wait_until_ready

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Say hello."}],
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeServer:
    """A local OpenAI-compatible endpoint: fails the first `failures` requests with 503, then echoes."""

    def __init__(self, failures=0, usage=True):
        self.requests = []
        self.failures = failures
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                if server.failures > 0:
                    server.failures -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                reply = {"choices": [{"message": {"content": "echo " + body["messages"][-1]["content"]},
                                      "finish_reason": "length"}]}
                if usage:
                    reply["usage"] = {"prompt_tokens": 11, "completion_tokens": 3}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    servers = []

    def start(**kwargs):
        servers.append(FakeServer(**kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_payload_order_and_usage(fake, tiny_model_dir):
    server = fake()
    llm = build_llm(ModelConfig(name=tiny_model_dir, backend="openai", base_url=server.base_url))
    sampling = SamplingConfig(temperature=0.7, top_p=0.9, max_new_tokens=5, seed=1)
    gens = llm.generate(CHATS * 3, sampling)
    assert [g.text for g in gens] == ["echo " + c[-1]["content"] for c in CHATS * 3]  # order kept
    assert all((g.prompt_tokens, g.completion_tokens, g.finish_reason) == (11, 3, "length") for g in gens)
    sent = server.requests[0]
    assert sent["model"] == tiny_model_dir and sent["max_tokens"] == 5 and sent["top_p"] == 0.9
    assert "top_k" not in sent  # 0 = off; some servers reject the field
    assert len({r["seed"] for r in server.requests}) == 6  # identical chats in one batch must not share a seed


def test_token_counts_fall_back_to_the_local_tokenizer(fake, tiny_model_dir):
    server = fake(usage=False)
    llm = OpenAIBackend(ModelConfig(name=tiny_model_dir, backend="openai", base_url=server.base_url))
    gen = llm.generate(CHATS[:1], SamplingConfig())[0]
    assert gen.prompt_tokens == len(chat_prompt_ids(llm.tokenizer, CHATS[0]))
    assert gen.completion_tokens == len(llm.tokenizer.encode(gen.text, add_special_tokens=False))


def test_retries_server_errors_then_succeeds(fake, tiny_model_dir):
    server = fake(failures=2)
    llm = OpenAIBackend(ModelConfig(name=tiny_model_dir, backend="openai", base_url=server.base_url, max_retries=2))
    assert llm.generate(CHATS[:1], SamplingConfig())[0].text.startswith("echo")
    assert len(server.requests) == 3


def test_closed_port_error_names_base_url(tiny_model_dir):
    base_url = f"http://127.0.0.1:{_free_port()}/v1"
    llm = OpenAIBackend(ModelConfig(name=tiny_model_dir, backend="openai", base_url=base_url, max_retries=1))
    with pytest.raises(RuntimeError, match=f"model.base_url={base_url}"):
        llm.generate(CHATS[:1], SamplingConfig())
    with pytest.raises(TimeoutError, match=base_url):
        wait_until_ready(base_url, timeout=1)


def test_base_url_is_required():
    with pytest.raises(ValueError, match="model.base_url"):
        build_llm(ModelConfig(backend="openai"))


@pytest.mark.slow
def test_against_a_real_transformers_serve(smollm2_dir, tmp_path):
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    cli = Path(sys.executable).parent / "transformers"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(tmp_path / "serve.log", "w") as log:
        server = subprocess.Popen([str(cli), "serve", smollm2_dir, "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_ready(base_url, timeout=90)
        llm = build_llm(ModelConfig(name=smollm2_dir, backend="openai", base_url=base_url))
        gens = llm.generate(CHATS, SamplingConfig(max_new_tokens=16))
        assert len(gens) == 2
        assert all(g.text.strip() and g.prompt_tokens > 0 and 0 < g.completion_tokens <= 16 for g in gens)
        assert "Paris" in gens[0].text
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
