"""An OpenAI-compatible embedding server on CPU, the workflow's embedder.serve in tests: POST /v1/embeddings
answers with the hashing embedder's vectors (atommem/memory/embedders.py), GET /v1/models lists the served
name. It prints its pid at start and one line per embeddings request, so a test reads what the jobs asked.

    python tests/embedding_server.py --port 8001 --name NAME [--dim 64] [--startup-delay 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from atommem.memory.embedders import HashingEmbedder


def handler(name: str, embedder: HashingEmbedder):
    class Handler(BaseHTTPRequestHandler):
        def reply(self, payload: dict, status: int = 200) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                self.reply({"object": "list", "data": [{"id": name, "object": "model"}]})
            else:
                self.reply({"error": {"message": f"no route {self.path}"}}, 404)

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path.rstrip("/") != "/v1/embeddings" or request.get("model") != name:
                self.reply({"error": {"message": f"no route {self.path} for model {request.get('model')!r}"}}, 404)
                return
            texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
            vectors = embedder.embed_documents(texts)
            print(f"embeddings: {len(texts)} inputs", flush=True)
            self.reply({"object": "list", "model": name,
                        "data": [{"object": "embedding", "index": i, "embedding": v.tolist()}
                                 for i, v in enumerate(vectors)]})

        def log_message(self, *args):
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True, help="the served model name (embedder.name)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--startup-delay", type=float, default=0.0, help="seconds before it listens (a model loading)")
    args = parser.parse_args()
    print(f"pid {os.getpid()}", flush=True)
    time.sleep(args.startup_delay)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(args.name, HashingEmbedder(args.dim)))
    print(f"listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
