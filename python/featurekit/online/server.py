"""`featurekit serve`: the online store over HTTP/1.1 JSON (the transport: online/http.py).

    POST /v1/features/{feature_set}  {"keys": [{"customer_id": 42}], "request_ts": "...Z"}
                                     answers "results": an object per key, in request order;
                                     with "format": "rows", "rows": a list of values per key
                                     under "columns" (compact, for batches)
    GET  /v1/feature-sets            the feature sets, their keys and columns
    GET  /healthz                    the snapshot served and its age (never needs a token)
    GET  /metrics                    Prometheus text format

Every answer is JSON (Prometheus text for /metrics), errors included: {"error": "..."}
with a 4xx status for anything wrong with the request, 500 only for a bug.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from datetime import date, datetime, timezone
from decimal import Decimal

import orjson

from ..errors import FeaturekitError
from .http import Request, Response
from .keys import KeyParser
from .store import OnlineStore, request_micros
from ..timestamps import iso

log = logging.getLogger("featurekit.online")
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


ROUTES = ("/healthz", "/metrics", "/v1/feature-sets")
FORMATS = ("objects", "rows")  # "results": an object per key (the default), or "rows": a list of values per key


def check_token(token: str | None) -> None:
    """An empty token would accept `Authorization: Bearer ` from anyone."""
    if token is not None and not token.strip():
        raise FeaturekitError("the token is empty, which would let anyone in: give a token, or none to serve without one")


class FeatureServer:
    """The HTTP API as a function of a request (an online/http.py app)."""

    def __init__(self, store: OnlineStore, token: str | None = None, max_batch: int = 1000):
        check_token(token)
        self.store = store
        self.token = token
        self.max_batch = max_batch
        self.metrics = Metrics()
        self._stale_views, self._stale_until, self._stale_of = set(), 0.0, None

    def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        path = request.path
        route = "/v1/features" if path.startswith("/v1/features/") else path if path in ROUTES else "other"
        try:
            status, payload = self.handle(request.method, path, request.headers, request.body)
        except HTTPError as e:
            status, payload = e.status, {"error": str(e)}
        except FeaturekitError as e:
            status, payload = 400, {"error": str(e)}
        except Exception as e:  # a bug: answer 500 and keep serving
            log.exception("internal error answering %s %s", request.method, path)
            status, payload = 500, {"error": f"internal error: {type(e).__name__}: {e}"}
        if isinstance(payload, str):
            response = Response(status, "text/plain; version=0.0.4", payload.encode())
        else:
            response = Response(status, "application/json", to_json(payload),
                                (("WWW-Authenticate", "Bearer"),) if status == 401 else ())
        self.metrics.observe(route, status, time.perf_counter() - started)
        return response

    def handle(self, method: str, path: str, headers, body: bytes) -> tuple[int, object]:
        """(status, JSON-able body or Prometheus text) for one request."""
        if path == "/healthz" and method == "GET":
            health = self.health()
            return (200 if health["status"] == "ok" else 503), health
        if path.startswith("/v1/") or path == "/metrics":
            self._check_token(headers)
        if path == "/metrics" and method == "GET":
            return 200, self.metrics.render(self.store)
        if path == "/v1/feature-sets" and method == "GET":
            return 200, {"feature_sets": [_describe(spec) for spec in self.store.feature_sets().values()]}
        if path.startswith("/v1/features/") and method == "POST":
            return 200, self.features(path[len("/v1/features/"):], body)
        if path in ROUTES or path.startswith("/v1/features/"):
            allowed = "POST" if path.startswith("/v1/features/") else "GET"
            raise HTTPError(405, f"{method} is not allowed on {path}; use {allowed}")
        raise HTTPError(404, f"no route {path}; see GET /v1/feature-sets")

    def features(self, name: str, body: bytes | None) -> dict:
        sets = self.store.feature_sets()
        if name not in sets:
            raise HTTPError(404, f"unknown feature set '{name}'; known feature sets: {', '.join(sorted(sets))}")
        request = _parse_body(body)
        keys = _parse_keys(request.get("keys"), self.store.keys(name), self.max_batch)
        request_ts = request.get("request_ts")
        if request_ts is not None:
            if not isinstance(request_ts, str):
                raise HTTPError(400, "request_ts must be an ISO 8601 string such as 2024-05-01T09:00:00Z")
            request_ts = request_micros(request_ts)
        served = self.store.lookup(name, keys, request_ts, parsed=True)
        self.metrics.keys_served += len(keys)
        stale = self._stale()
        answer = {
            "feature_set": name,
            "snapshot_id": served.snapshot_id,
            "stale_views": [v["ref"] for v in sets[name]["views"] if v["ref"] in stale],
            "request_ts": iso(served.request_ts),
            "columns": served.columns,
        }
        if request.get("format") == "rows":  # compact: one row of values per key, under "columns"
            answer["rows"] = served.rows
        else:
            answer["results"] = served.dicts()
        return answer

    def _stale(self) -> set[str]:
        """The views past their freshness SLA, judged at most once a second (not per request)."""
        now = time.monotonic()
        if now >= self._stale_until or self._stale_of != self.store.snapshot_id:
            self._stale_views = {ref for ref, view in self.store.freshness().items() if view["stale"]}
            self._stale_until, self._stale_of = now + 1.0, self.store.snapshot_id
        return self._stale_views

    def health(self) -> dict:
        """What is served and how old it is. A current snapshot that cannot be loaded makes
        it unhealthy (the previous one still answers); the reason, which may name files, is
        in the server's log, not here: /healthz needs no token."""
        manifest = self.store.manifest
        now = datetime.now(timezone.utc)
        failed = self.store.reload_error is not None
        return {
            "status": "unhealthy" if failed else "ok",
            "snapshot_id": manifest["snapshot_id"],
            "built_at": manifest["built_at"],
            "as_of": manifest["as_of"],
            "snapshot_age_seconds": _age(manifest["built_at"], now),
            "data_age_seconds": _age(manifest["as_of"], now),
            "views": self.store.freshness(),
            "reload_error": (
                f"the current snapshot {self.store.failed_snapshot} cannot be loaded; still serving "
                f"{manifest['snapshot_id']} (the server's log says why)" if failed else None
            ),
        }

    def _check_token(self, headers) -> None:
        if self.token is None:
            return
        scheme, _, given = headers.get("authorization", "").strip().partition(" ")
        if not (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())):
            raise HTTPError(401, "missing or wrong bearer token (send Authorization: Bearer <token>)")


def _parse_body(body: bytes | None) -> dict:
    if not body:
        raise HTTPError(400, 'empty body; send JSON like {"keys": [{"customer_id": 42}]}')
    try:
        request = orjson.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"body is not valid JSON: {e}") from None
    except RecursionError:
        raise HTTPError(400, "body is not valid JSON: nested too deeply") from None
    if not isinstance(request, dict):
        raise HTTPError(400, 'the body must be a JSON object like {"keys": [{"customer_id": 42}]}')
    unknown = sorted(set(request) - {"keys", "request_ts", "format"})
    if unknown:
        raise HTTPError(400, f"unknown field(s) {', '.join(unknown)}; the body takes keys, request_ts and format")
    if request.get("format", "objects") not in FORMATS:
        raise HTTPError(400, f"format {json.dumps(request['format'])[:40]} is not one of {', '.join(FORMATS)}")
    return request


def _parse_keys(keys, parser: KeyParser, max_batch: int) -> list[tuple]:
    if not isinstance(keys, list) or not keys:
        raise HTTPError(400, f"keys must be a non-empty list of objects with {', '.join(parser.names)}")
    if len(keys) > max_batch:
        raise HTTPError(413, f"{len(keys)} keys is over the limit of {max_batch} per request; split the batch")
    return parser.many_from_json(keys)


def _describe(spec: dict) -> dict:
    return {
        "name": spec["name"],
        "description": spec.get("description"),
        "keys": spec["keys"],
        "key_types": spec["key_types"],
        "columns": spec["columns"],
        "types": spec["types"],
        "views": [view["ref"] for view in spec["views"]],
    }


def _age(timestamp: str | None, now: datetime) -> float | None:
    return None if timestamp is None else round((now - datetime.fromisoformat(timestamp)).total_seconds(), 3)


def _json_default(value):
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (date, Decimal)):
        return str(value) if isinstance(value, date) else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(payload) -> bytes:
    """JSON in C (orjson: datetimes as ISO 8601 with +00:00, as iso() writes them): a batch's
    hundreds of timestamps cost 0.37 ms through json's Python fallback. Integers beyond 64
    bits, which orjson refuses, go through json."""
    try:
        return orjson.dumps(payload, default=_json_default, option=orjson.OPT_NAIVE_UTC)
    except TypeError:
        return json.dumps(payload, default=_json_default).encode()


class Metrics:
    """Request counts and a latency histogram, rendered in Prometheus text format."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.buckets = [0] * len(BUCKETS)
        self.count = 0
        self.total = 0.0
        self.keys_served = 0

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] = self.requests.get((route, status), 0) + 1
            self.count += 1
            self.total += seconds
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1

    def render(self, store: OnlineStore) -> str:
        manifest = store.manifest
        now = datetime.now(timezone.utc)
        with self._lock:
            lines = ["# HELP featurekit_requests_total HTTP requests by route and status.", "# TYPE featurekit_requests_total counter"]
            for (route, status), n in sorted(self.requests.items()):
                lines.append(f'featurekit_requests_total{{route="{route}",code="{status}"}} {n}')
            lines += ["# HELP featurekit_request_duration_seconds Time to answer a request.", "# TYPE featurekit_request_duration_seconds histogram"]
            for bound, n in zip(BUCKETS, self.buckets):
                lines.append(f'featurekit_request_duration_seconds_bucket{{le="{bound}"}} {n}')
            lines.append(f'featurekit_request_duration_seconds_bucket{{le="+Inf"}} {self.count}')
            lines.append(f"featurekit_request_duration_seconds_sum {self.total:.6f}")
            lines.append(f"featurekit_request_duration_seconds_count {self.count}")
            keys = self.keys_served
        lines += [
            "# HELP featurekit_keys_served_total Feature vectors served.", "# TYPE featurekit_keys_served_total counter",
            f"featurekit_keys_served_total {keys}",
            "# HELP featurekit_snapshot_age_seconds Seconds since the served snapshot was published.",
            "# TYPE featurekit_snapshot_age_seconds gauge",
            f'featurekit_snapshot_age_seconds{{snapshot_id="{manifest["snapshot_id"]}"}} {_age(manifest["built_at"], now)}',
            "# HELP featurekit_snapshot_data_age_seconds Seconds since the served snapshot's as-of time.",
            "# TYPE featurekit_snapshot_data_age_seconds gauge",
            f"featurekit_snapshot_data_age_seconds {_age(manifest['as_of'], now)}",
        ]
        if store.log is not None:
            lines += [
                "# HELP featurekit_served_log_dropped_total Vectors not logged because the log queue was full.",
                "# TYPE featurekit_served_log_dropped_total counter",
                f"featurekit_served_log_dropped_total {store.log.dropped}",
            ]
        return "\n".join(lines) + "\n"
