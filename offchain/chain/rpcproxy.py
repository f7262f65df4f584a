"""A JSON-RPC proxy that behaves like a public endpoint: it refuses ``eth_getLogs`` over wide ranges.

Public Polygon endpoints refuse a log query spanning more than some
thousands of blocks. Put this proxy in front of a local anvil to rehearse
against that limit: every request is forwarded unchanged, except an
``eth_getLogs`` whose block range exceeds ``max_log_blocks``, which gets the
error such endpoints return. It listens on 127.0.0.1 only.

Run on its own: ``python -m offchain.chain.rpcproxy http://127.0.0.1:8545 --max-range 10 [--port 8546]``
prints its URL and serves until interrupted (free tiers cap ``eth_getLogs`` at 5 to 10 blocks).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MAX_LOG_BLOCKS = 1000


class LogRangeProxy:
    """Forward JSON-RPC to ``upstream``; refuse ``eth_getLogs`` wider than ``max_log_blocks`` blocks."""

    def __init__(self, upstream: str, *, max_log_blocks: int = DEFAULT_MAX_LOG_BLOCKS, port: int = 0) -> None:
        self.upstream = upstream
        self.max_log_blocks = max_log_blocks
        self.refused = 0
        self.log_queries = 0
        self.widest_served = 0
        """The widest block range of an ``eth_getLogs`` passed on (0: none by range)."""
        self.log_ranges: list[tuple[int, int]] = []
        """Every ``eth_getLogs`` block range asked for (first, last), refused or not, in order."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = proxy._answer(json.loads(body))
                data = json.dumps(answer).encode() if answer is not None else proxy._forward(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> LogRangeProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _forward(self, body: bytes) -> bytes:
        request = urllib.request.Request(self.upstream, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()

    def _answer(self, message: Any) -> Any:
        """The proxy's own answer to ``message`` (a refusal), or None to forward it."""
        if isinstance(message, list):
            return None if all(self._answer(item) is None for item in message) else [
                self._answer(item) or json.loads(self._forward(json.dumps(item).encode())) for item in message
            ]
        if message.get("method") != "eth_getLogs":
            return None
        self.log_queries += 1
        query = (message.get("params") or [{}])[0]
        if "blockHash" in query:
            return None
        start, stop = (self._block(query.get(name, "latest")) for name in ("fromBlock", "toBlock"))
        self.log_ranges.append((start, stop))
        if stop - start + 1 <= self.max_log_blocks:
            self.widest_served = max(self.widest_served, stop - start + 1)
            return None
        self.refused += 1
        return {"jsonrpc": "2.0", "id": message.get("id"), "error": {
            "code": -32005, "message": f"block range is too wide: {stop - start + 1} > {self.max_log_blocks} blocks"}}

    def _block(self, tag: Any) -> int:
        if isinstance(tag, int):
            return tag
        if isinstance(tag, str) and tag.startswith("0x"):
            return int(tag, 16)
        if tag == "earliest":
            return 0
        head = json.loads(self._forward(json.dumps(
            {"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}).encode()))
        return int(head["result"], 16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offchain.chain.rpcproxy",
                                     description="A JSON-RPC proxy refusing eth_getLogs over wide block ranges.")
    parser.add_argument("upstream", help="the node's JSON-RPC URL (http://127.0.0.1:...)")
    parser.add_argument("--max-range", type=int, default=DEFAULT_MAX_LOG_BLOCKS, metavar="BLOCKS",
                        help=f"the widest eth_getLogs range served (default {DEFAULT_MAX_LOG_BLOCKS:,})")
    parser.add_argument("--port", type=int, default=0, help="the port to listen on, on 127.0.0.1 (default: any free)")
    options = parser.parse_args(argv)
    if options.max_range < 1:
        parser.error("--max-range must be at least 1 block")
    if not 0 <= options.port <= 65535:
        parser.error("--port must be from 0 to 65535")
    try:
        proxy = LogRangeProxy(options.upstream, max_log_blocks=options.max_range, port=options.port)
    except OSError as error:
        parser.error(f"--port {options.port}: {error.strerror}")
    with proxy:
        print(proxy.url, flush=True)
        try:
            proxy._thread.join()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
