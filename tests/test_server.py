"""`featurekit serve` on 127.0.0.1 and `featurekit get`: real processes, real sockets."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pyarrow.parquet as pq
import pytest

from featurekit import OnlineStore
from featurekit.online.publish import publish
from featurekit.online.snapshots import SnapshotDir
from conftest import featurekit_cli
from online_helpers import copy_built_project, running_server

TOKEN = "s3cret-token"
AT = "2024-10-20T12:00:00+00:00"


def jsonable(row: dict) -> dict:
    return {k: (v.isoformat() + "+00:00" if hasattr(v, "isoformat") else v) for k, v in row.items()}


class Client:
    """One keep-alive connection, as a production client would hold."""

    def __init__(self, url: str):
        parsed = urlparse(url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)

    def request(self, method: str, path: str, body=None, token: str | None = TOKEN, raw: bytes | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        kind = response.getheader("Content-Type", "")
        return response.status, (json.loads(payload) if kind.startswith("application/json") else payload.decode())


@pytest.fixture(scope="module")
def server(built_project, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("served")
    with running_server("--project-dir", str(built_project), "--token", TOKEN, "--max-batch", "5",
                        "--log-dir", str(log_dir)) as (url, process):
        yield url, log_dir, process


@pytest.mark.slow
def test_features_over_http_equal_the_online_store(server, built_project):
    url, _, _ = server
    client = Client(url)
    status, body = client.request("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 5}, {"customer_id": 9}], "request_ts": AT})
    assert status == 200
    expected = OnlineStore(built_project / "online").get("churn_model", [5, 9], request_ts=AT)
    assert body["results"] == [jsonable(row) for row in expected]
    assert body["request_ts"] == AT and body["columns"] == list(expected[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, path, body, token, status, message",
    [
        ("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 1}]}, None, 401, "missing or wrong bearer token"),
        ("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 1}]}, "wrong", 401, "missing or wrong bearer token"),
        ("POST", "/v1/features/nope", {"keys": [{"customer_id": 1}]}, TOKEN, 404, "unknown feature set 'nope'"),
        ("POST", "/v1/features/churn_model", b"{not json", TOKEN, 400, "body is not valid JSON"),
        ("POST", "/v1/features/churn_model", [1, 2], TOKEN, 400, "the body must be a JSON object"),
        ("POST", "/v1/features/churn_model", {"keys": [{"customer_id": "1"}]}, TOKEN, 400, 'keys[0].customer_id must be an integer, not "1"'),
        ("POST", "/v1/features/churn_model", {"keys": [{"customer_id": True}]}, TOKEN, 400, "keys[0].customer_id must be an integer"),
        ("POST", "/v1/features/churn_model", {"keys": [{"id": 1}]}, TOKEN, 400, "keys[0] must be an object with exactly customer_id"),
        ("POST", "/v1/features/churn_model", {"keys": []}, TOKEN, 400, "keys must be a non-empty list"),
        ("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 1}], "ts": 1}, TOKEN, 400, "unknown field(s) ts"),
        ("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 1}], "request_ts": "soon"}, TOKEN, 400, "request_ts 'soon' is not a timestamp"),
        ("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 1}], "request_ts": 5}, TOKEN, 400, "request_ts must be an ISO 8601 string"),
        ("POST", "/v1/features/churn_model", {"keys": [{"customer_id": i} for i in range(6)]}, TOKEN, 413, "6 keys is over the limit of 5"),
        ("GET", "/v1/features/churn_model", None, TOKEN, 405, "GET is not allowed"),
        ("GET", "/v2/nothing", None, TOKEN, 404, "no route /v2/nothing"),
        ("GET", "/metrics", None, None, 401, "missing or wrong bearer token"),
    ],
)
def test_bad_requests_get_a_4xx_and_the_server_keeps_serving(server, method, path, body, token, status, message):
    url, _, process = server
    client = Client(url)
    raw = body if isinstance(body, bytes) else None
    got_status, got = client.request(method, path, None if raw else body, token=token, raw=raw)
    assert (got_status, message in got["error"]) == (status, True), got
    # The same connection (or a new one after a body-less error) still answers.
    status_ok, ok = Client(url).request("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 1}]})
    assert status_ok == 200 and ok["results"][0]["customer_id"] == 1
    assert process.poll() is None


def health_views(sets: dict, name: str) -> list[dict]:
    return [{"view": ref} for s in sets["feature_sets"] if s["name"] == name for ref in s["views"]]


@pytest.mark.slow
def test_health_feature_sets_and_metrics(server, built_project):
    url, _, _ = server
    client = Client(url)
    status, health = client.request("GET", "/healthz", token=None)
    current = (built_project / "online" / "CURRENT").read_text().strip()
    assert status == 200 and health["status"] == "ok" and health["snapshot_id"] == current
    assert health["snapshot_age_seconds"] >= 0 and set(health["views"]) >= {"customer_orders_v1", "login_activity_v1"}
    # the example's data ends in 2024: every view is past its SLA today, and says so
    orders = health["views"]["customer_orders_v1"]
    assert orders["stale"] is True and orders["status"] == "error" and orders["age_seconds"] > 86400
    status, sets = client.request("GET", "/v1/feature-sets")
    assert status == 200 and [s["name"] for s in sets["feature_sets"]] == ["churn_model", "churn_model_v2"]
    assert sets["feature_sets"][0]["key_types"] == {"customer_id": "BIGINT"}
    status, served = client.request("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 3}]})
    assert served["stale_views"] == [v["view"] for v in health_views(sets, "churn_model")]
    status, metrics = client.request("GET", "/metrics")
    assert status == 200
    assert 'featurekit_requests_total{route="/v1/features",code="200"}' in metrics
    assert 'featurekit_request_duration_seconds_bucket{le="+Inf"}' in metrics
    assert f'featurekit_snapshot_age_seconds{{snapshot_id="{current}"}}' in metrics


@pytest.mark.slow
def test_served_log_of_the_server(built_project, tmp_path):
    log_dir = tmp_path / "log"
    with running_server("--project-dir", str(built_project), "--log-dir", str(log_dir)) as (url, _):
        client = Client(url)
        for k in range(1, 11):
            assert client.request("POST", "/v1/features/churn_model", {"keys": [{"customer_id": k}], "request_ts": AT})[0] == 200
    files = list((log_dir / "churn_model").glob("served-*.parquet"))
    assert len(files) == 1  # written out when the server stopped
    table = pq.read_table(files[0])
    assert table.num_rows == 10 and table.column("customer_id").to_pylist() == list(range(1, 11))


@pytest.mark.slow
def test_get_cli_prints_the_online_vectors(built_project):
    result = featurekit_cli("get", "--feature-set", "churn_model", "customer_id=5", "9", "--request-ts", AT,
                            "--project-dir", str(built_project))
    body = json.loads(result.stdout)
    expected = OnlineStore(built_project / "online").get("churn_model", [5, 9], request_ts=AT)
    assert body["results"] == [jsonable(row) for row in expected]
    assert body["snapshot_id"] == (built_project / "online" / "CURRENT").read_text().strip()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["--feature-set", "nope", "1"], "Error: unknown feature set 'nope'; known feature sets: churn_model, churn_model_v2"),
        (["--feature-set", "churn_model", "customer_id=x"], "Error: key 'customer_id=x': customer_id must be an integer"),
        (["--feature-set", "churn_model", "id=1"], "Error: key 'id=1': 'id' is not a key column of churn_model (customer_id)"),
        (["--feature-set", "churn_model", "1", "--request-ts", "later"], "Error: request_ts 'later' is not a timestamp; write e.g. 2024-05-01T09:00:00Z"),
    ],
)
def test_get_cli_bad_input(built_project, args, message):
    result = featurekit_cli("get", *args, "--project-dir", str(built_project), check=False)
    assert result.returncode == 2 and result.stderr.strip() == message and result.stdout == ""


def wait_for(check, seconds: float = 20.0):
    """Polls check() until it returns something true; returns that."""
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


@pytest.mark.slow
def test_health_is_503_while_the_current_snapshot_cannot_be_loaded(built_project, tmp_path):
    """A current snapshot that is damaged: the server keeps answering from the one it has,
    /healthz says 503 unhealthy without naming any file, the log says why in one line; once
    the pointer is back on a good snapshot, healthy again."""
    project = copy_built_project(built_project, tmp_path / "project")
    snapshots = SnapshotDir(project / "online")
    served = snapshots.current_id()
    damaged = served[:-2] + ("8" if served[-2] == "9" else "9") + "Z"  # a snapshot id beside it
    shutil.copy(snapshots.manifest_path(served), snapshots.manifest_path(damaged))
    snapshots.database(damaged).write_bytes(b"not a database" * 100)
    with running_server("--project-dir", str(project)) as (url, process):
        client = Client(url)
        snapshots.switch(damaged)
        status, health = wait_for(lambda: (r := client.request("GET", "/healthz", token=None))[0] == 503 and r)
        assert health["status"] == "unhealthy" and health["snapshot_id"] == served
        assert damaged in health["reload_error"] and served in health["reload_error"]
        assert "/" not in health["reload_error"] and str(tmp_path) not in json.dumps(health)
        status, body = client.request("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 3}]}, token=None)
        assert status == 200 and body["snapshot_id"] == served
        snapshots.switch(served)
        status, health = wait_for(lambda: (r := client.request("GET", "/healthz", token=None))[0] == 200 and r)
        assert health["status"] == "ok" and health["reload_error"] is None
    lines = [line for line in process.stderr.read().splitlines() if damaged in line]
    assert len(lines) == 1 and lines[0].startswith(f"featurekit: cannot load snapshot {damaged}, still serving {served}: "), lines


def threads_of(process) -> int:
    with open(f"/proc/{process.pid}/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


def raw_connection(url: str, data: bytes = b"") -> socket.socket:
    parsed = urlparse(url)
    connection = socket.create_connection((parsed.hostname, parsed.port), timeout=10)
    if data:
        connection.sendall(data)
    return connection


def read_all(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.slow
def test_idle_connections_past_the_open_files_limit_do_not_starve_requests(built_project):
    """400 idle keep-alive connections to a server allowed 256 open files: new requests are
    still answered at once (the longest idle connection is closed for them), on a few threads."""
    with running_server("--project-dir", str(built_project), open_files=256) as (url, process):
        idle = [raw_connection(url) for _ in range(400)]
        try:
            started = time.monotonic()
            for k in range(1, 6):
                status, body = Client(url).request("POST", "/v1/features/churn_model", {"keys": [{"customer_id": k}]})
                assert status == 200 and body["results"][0]["customer_id"] == k
            assert time.monotonic() - started < 5
            assert threads_of(process) <= 10  # not one per connection
        finally:
            for connection in idle:
                connection.close()


@pytest.mark.slow
def test_slow_and_idle_clients_time_out_while_others_are_served(built_project):
    with running_server("--project-dir", str(built_project), "--client-timeout", "1", "--idle-timeout", "2") as (url, process):
        request = "POST /v1/features/churn_model HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        half_head = raw_connection(url, request.encode())
        half_body = raw_connection(url, (request + "Content-Length: 100\r\n\r\n" + '{"keys": [').encode())
        idle = raw_connection(url)
        started = time.monotonic()
        status, _ = Client(url).request("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 1}]})
        assert status == 200 and time.monotonic() - started < 1
        for connection in (half_head, half_body):
            answer = read_all(connection)
            assert answer.startswith(b"HTTP/1.1 408 ") and b'"error": "the request did not arrive within 1 s"' in answer
        assert 1 <= time.monotonic() - started < 3
        assert read_all(idle) == b"" and time.monotonic() - started < 4  # closed without a word
        assert threads_of(process) <= 10  # not one per connection


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, body, status, message",
    [
        ("POST", {"keys": [{"customer_id": 1}], "request_ts": "0001-01-01T00:00:00+01:00"}, 400, "request_ts '0001-01-01T00:00:00+01:00' is outside the years 1 to 9999 in UTC"),
        ("POST", b"[" * 100_000, 400, "body is not valid JSON"),
        ("POST", {"keys": [{"customer_id": [1]}]}, 400, "keys[0].customer_id must be an integer"),
        ("OPTIONS", None, 405, "OPTIONS is not allowed on /v1/features/churn_model; use POST"),
        ("PATCH", None, 405, "PATCH is not allowed on /v1/features/churn_model; use POST"),
        ("DELETE", None, 405, "DELETE is not allowed on /v1/features/churn_model; use POST"),
    ],
)
def test_every_bad_request_is_a_json_4xx(server, method, body, status, message):
    url, _, process = server
    raw = body if isinstance(body, bytes) else None
    got_status, got = Client(url).request(method, "/v1/features/churn_model", None if raw else body, raw=raw)
    assert got_status == status and isinstance(got, dict) and message in got["error"], got
    assert process.poll() is None


@pytest.mark.slow
def test_head_is_a_405_without_a_body_and_two_content_lengths_a_400(server):
    url, _, _ = server
    connection = raw_connection(url, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = connection.recv(65536)
    assert head.startswith(b"HTTP/1.1 405 ") and b"Content-Type: application/json" in head and head.endswith(b"\r\n\r\n")
    connection.close()
    body = b'{"keys": [{"customer_id": 1}]}'
    request = b"POST /v1/features/churn_model HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
    request += b"\r\nContent-Length: %d\r\nContent-Length: 5\r\n\r\n" % len(body) + body
    answer = read_all(raw_connection(url, request))
    assert answer.startswith(b"HTTP/1.1 400 ") and b'{"error": "more than one Content-Length header"}' in answer


@pytest.mark.slow
def test_clients_gone_before_their_answer_are_one_line_each_not_tracebacks(built_project):
    keys = json.dumps({"keys": [{"customer_id": k} for k in range(1000)]}).encode()
    request = b"POST /v1/features/churn_model HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(keys) + keys
    with running_server("--project-dir", str(built_project)) as (url, process):
        for _ in range(20):
            connection = raw_connection(url, request)
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()  # a reset, before the answer is written
        assert Client(url).request("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 1}]}, token=None)[0] == 200
    errors = process.stderr.read()
    assert "Traceback" not in errors and len(errors.splitlines()) <= 20, errors


@pytest.mark.slow
def test_the_bearer_scheme_is_case_insensitive(server):
    url, _, _ = server
    client = Client(url)
    client.connection.request("POST", "/v1/features/churn_model", body=json.dumps({"keys": [{"customer_id": 1}]}),
                              headers={"Authorization": f"bearer {TOKEN}", "Content-Type": "application/json"})
    response = client.connection.getresponse()
    assert response.status == 200, response.read()
    response.read()
    assert client.request("POST", "/v1/features/churn_model", {"keys": [{"customer_id": 1}]}, token=" ")[0] == 401


@pytest.mark.parametrize("args, environment, message", [
    (["--token", ""], {}, "Error: the token is empty, which would let anyone in: give a token, or none to serve without one"),
    ([], {"FEATUREKIT_TOKEN": ""}, "Error: $FEATUREKIT_TOKEN is set but empty, which would serve without a token: set a token, or unset it"),
])
def test_an_empty_token_is_refused(tmp_path, args, environment, message):
    result = subprocess.run([sys.executable, "-m", "featurekit", "serve", "--port", "0", "--online-dir", str(tmp_path), *args],
                            capture_output=True, text=True, env={**os.environ, **environment}, timeout=60)
    assert result.returncode == 2 and result.stderr.strip() == message


@pytest.mark.slow
def test_serving_beyond_loopback_without_a_token_warns(built_project):
    process = subprocess.Popen([sys.executable, "-m", "featurekit", "serve", "--host", "0.0.0.0", "--port", "0",
                                "--project-dir", str(built_project)], stderr=subprocess.PIPE, text=True,
                               env={k: v for k, v in os.environ.items() if k != "FEATUREKIT_TOKEN"})
    try:
        warning = process.stderr.readline()
    finally:
        process.terminate()
        process.communicate(timeout=20)
    assert warning.startswith("featurekit: warning: serving on 0.0.0.0 without a token: anyone who reaches this port"), warning


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.mark.slow
def test_two_workers_answer_every_lookup_from_one_snapshot_during_20_publishes(built_project, tmp_path):
    """`serve --workers 2` while the snapshot is published 20 times, each with its own marker
    in two views (plan = 'm<m>', a last purchase m days before the request): no request fails,
    every response shows one marker throughout, that of the snapshot it names, and both
    workers answered."""
    project = copy_built_project(built_project, tmp_path / "project")
    markers: dict[str, int] = {}

    def mark_and_publish(marker: int) -> None:
        with duckdb.connect(str(project / "warehouse.duckdb")) as con:
            con.execute(f"UPDATE online_customer_profile_v1 SET plan = 'm{marker}'")
            con.execute(f"UPDATE online_last_purchase_v1 SET last_purchase_ts = TIMESTAMP '2024-10-20 12:00:00' - INTERVAL {marker} DAYS")
        markers[publish(project, keep=25)["snapshot_id"]] = marker

    mark_and_publish(100)
    keys = [{"customer_id": k} for k in range(1, 30)]
    responses, failures, done = [], [], threading.Event()
    with running_server("--project-dir", str(project), "--workers", "2") as (url, process):
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        workers = wait_for(lambda: len(pids := [int(pid) for pid in children.read_text().split()]) == 2 and pids)
        ticks = [cpu_ticks(pid) for pid in workers]

        def read() -> None:
            sent = 0
            while not done.is_set():
                # a new connection every 25 requests: the kernel puts each on one worker, and
                # four held for the whole test all land on the same one in 1 run of 8
                client = Client(url) if sent % 25 == 0 else client
                sent += 1
                try:
                    status, body = client.request("POST", "/v1/features/churn_model", {"keys": keys, "request_ts": AT, "format": "rows"})
                except Exception as e:  # counted: the test fails on any
                    failures.append(repr(e))
                    sent = 0
                    continue
                (responses if status == 200 else failures).append(body)

        readers = [threading.Thread(target=read) for _ in range(4)]
        for reader in readers:
            reader.start()
        try:
            for marker in range(101, 121):
                mark_and_publish(marker)
            time.sleep(2)  # the workers pick up the last one
        finally:
            done.set()
            for reader in readers:
                reader.join()
        assert all(cpu_ticks(pid) > before for pid, before in zip(workers, ticks))
    assert failures == []
    assert len({r["snapshot_id"] for r in responses}) >= 3, "the workers should have served several snapshots"
    columns = responses[0]["columns"]
    plan, signed_up, days, bought = (columns.index(c) for c in (
        "plan", "customer_profile_v1__feature_ts", "days_since_last_purchase", "last_purchase_v1__feature_ts"))
    for response in responses:
        marker = markers[response["snapshot_id"]]
        assert {row[plan] for row in response["rows"] if row[signed_up] is not None} == {f"m{marker}"}
        assert {row[days] for row in response["rows"] if row[bought] is not None} == {marker}


def open_sockets(pid: int) -> int:
    return sum(os.readlink(fd).startswith("socket:") for fd in Path(f"/proc/{pid}/fd").iterdir() if fd.is_symlink())


@pytest.mark.slow
def test_two_workers_share_keep_alive_connections(built_project):
    """Each worker listens on its own socket at the one address (SO_REUSEPORT), so the
    kernel spreads connections over the workers: with one shared socket, the first worker
    to wake took 15 of 16 and served them on one core. 32 connections opened at once, one
    request each, stay open: each worker holds at least 4 (a fair split leaves fewer with odds of about
    one in 300,000)."""
    with running_server("--project-dir", str(built_project), "--workers", "2") as (url, process):
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        workers = wait_for(lambda: len(pids := [int(pid) for pid in children.read_text().split()]) == 2 and pids)
        before = {pid: open_sockets(pid) for pid in workers}
        clients = [Client(url) for _ in range(32)]
        for client in clients:  # all at once, as a client's connection pool opens them
            client.connection.connect()
        for client in clients:
            assert client.request("GET", "/healthz")[0] == 200
        held = {pid: open_sockets(pid) - before[pid] for pid in workers}
        assert sum(held.values()) >= 32 and min(held.values()) >= 4, held  # (a worker may open a socket of its own meanwhile)
