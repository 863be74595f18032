"""HTTP load for bench/online.py: POST lookups of random keys against a feature server on
127.0.0.1, in two modes.

  open    each request has its own send time (`rate` per second over all connections): the
          latency a service level is about. A Python client in its own process (so that it
          does not share the server's GIL), raw sockets, requests encoded beforehand, the
          answer read by its Content-Length and not parsed.
  closed  each connection sends its next request as soon as the answer is in: throughput.
          With `wrk` on PATH (apt-get install wrk) it drives the load: one C thread uses a
          few percent of a core, where the Python client needs most of one and caps what
          two server workers on a 2-core machine can show. Without it, the Python client.

Every run returns {"p50_ms", "p99_ms", "rps", "errors", "late", "client"}.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_PYTHON_CLIENT = r"""
import json, socket, sys, threading, time
host, port, mode, rate, seconds, connections, path = sys.argv[1:8]
port, rate, seconds, connections = int(port), float(rate), float(seconds), int(connections)
requests = [r.encode() for r in json.load(open(path))]
latencies, errors, late = [], [], []
start = time.perf_counter() + 0.3
def answer(sock, buffer):
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head[9:12]), rest[length:]
def worker(i):
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n, buffer = 0, b""
    while True:
        due = start + (n * connections + i) / rate if mode == "open" else time.perf_counter()
        if (due if mode == "open" else time.perf_counter()) > start + seconds:
            return
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sent = time.perf_counter()
        try:
            sock.sendall(requests[(n * connections + i) % len(requests)])
            status, buffer = answer(sock, buffer)
            if status != 200:
                errors.append(status)
        except Exception as e:
            errors.append(repr(e)); sock = socket.create_connection((host, port)); buffer = b""
        if sent >= start:
            latencies.append(time.perf_counter() - sent)
            late.append(mode == "open" and sent - due > 0.001)
        n += 1
workers = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
[w.start() for w in workers]; [w.join() for w in workers]
print(json.dumps({"latencies": latencies, "errors": len(errors), "late": sum(late), "elapsed": seconds}))
"""

# wrk's script: the same requests, in turn; one JSON line of results at the end
_WRK_SCRIPT = """
local requests = {%s}
local n = 0
request = function()
  n = n + 1
  return requests[(n %% #requests) + 1]
end
done = function(summary, latency, _)
  local e = summary.errors
  io.write(string.format('{"requests": %%d, "errors": %%d, "p50": %%d, "p99": %%d, "duration_us": %%d}\\n',
    summary.requests, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration))
end
"""


def bodies(size: int, max_key: int, kind: str, feast_features: list[str], count: int = 2000) -> list[tuple[str, str]]:
    """(path, JSON body) of `count` lookups of `size` random keys in 1..max_key."""
    rng = random.Random(7)
    out = []
    for _ in range(count):
        ids = [rng.randint(1, max_key) for _ in range(size)]
        if kind == "feast":  # Feast's feature server: POST /get-online-features
            out.append(("/get-online-features", json.dumps({"features": feast_features, "entities": {"customer_id": ids}})))
        else:
            body = {"keys": [{"customer_id": i} for i in ids]}
            if size > 1:
                body["format"] = "rows"  # the compact answer: one row of values per key
            out.append(("/v1/features/churn_model", json.dumps(body)))
    return out


def run(port: int, mode: str, rate: float, seconds: float, connections: int, requests: list[tuple[str, str]]) -> dict:
    if mode == "closed" and shutil.which("wrk"):
        return _wrk(port, seconds, connections, requests)
    return _python(port, mode, rate, seconds, connections, requests)


def _python(port, mode, rate, seconds, connections, requests) -> dict:
    raw = [f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
           for path, body in requests]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(raw, f)
        f.flush()
        out = subprocess.run([sys.executable, "-c", _PYTHON_CLIENT, "127.0.0.1", str(port), mode, str(rate), str(seconds),
                              str(connections), f.name], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    latencies = np.array(result["latencies"]) * 1000
    return {"p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "rps": len(latencies) / result["elapsed"], "errors": result["errors"], "late": result["late"], "client": "python"}


def _wrk(port, seconds, connections, requests) -> dict:
    formatted = ",\n".join(
        f'wrk.format("POST", {_lua(path)}, {{["Content-Type"] = "application/json"}}, {_lua(body)})'
        for path, body in requests[:500])
    with tempfile.TemporaryDirectory() as directory:
        script = Path(directory) / "lookups.lua"
        script.write_text(_WRK_SCRIPT % formatted)
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script),
                              f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"p50_ms": result["p50"] / 1000, "p99_ms": result["p99"] / 1000,
            "rps": result["requests"] / (result["duration_us"] / 1e6), "errors": result["errors"], "late": 0, "client": "wrk"}


def _lua(text: str) -> str:
    """A Lua string literal of `text` (JSON: no newlines)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
