"""The online commands: publish, rollback, get, serve (registered in cli.py)."""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os

import click

from .common import echo_progress, project_options
from ..errors import FeaturekitError
from ..online.store import OnlineStore, request_micros
from ..online.publish import DEFAULT_KEEP, publish, rollback
from ..online.http import DEFAULT_LIMITS, Limits, serve
from ..online.workers import listen, serve_workers
from ..online.server import FeatureServer, _json_default, check_token
from ..online.snapshots import default_online_dir


def online_dir_option(command):
    return click.option(
        "--online-dir",
        type=click.Path(file_okay=False),
        envvar="FEATUREKIT_ONLINE_DIR",
        help="The snapshot directory (default: $FEATUREKIT_ONLINE_DIR or online/ in the project).",
    )(command)


@click.command("publish")
@click.option("--keep", default=DEFAULT_KEEP, show_default=True, type=int, help="How many snapshots to keep.")
@click.option("--as-of", help="Publish the serving state as of this UTC time instead of the dbt-built online tables.")
@click.option("-q", "--quiet", is_flag=True, help="No progress messages.")
@online_dir_option
@project_options
def publish_command(keep, as_of, quiet, online_dir, project_dir, warehouse):
    """Publish the online tables (models/online/) as a new immutable snapshot and make it the
    one `featurekit get`, `featurekit serve` and OnlineStore read. Serving picks it up without
    a restart; a failed publish leaves the previous snapshot current.

    \b
    Example:
      featurekit publish
      featurekit publish --keep 10
      featurekit publish --as-of 2024-05-01T09:00:00Z   # the serving state at that time
    """
    publish(project_dir, warehouse, online_dir, keep=keep, as_of=as_of, progress=(lambda m: None) if quiet else echo_progress)


@click.command("rollback")
@click.option("--to", "to", help="The snapshot id to make current (default: the one before the current).")
@online_dir_option
@click.option("--project-dir", type=click.Path(file_okay=False), help="The dbt project (default: the current directory).")
def rollback_command(to, online_dir, project_dir):
    """Make the previous published snapshot current again (servers pick it up within a second).

    \b
    Example:
      featurekit rollback
      featurekit rollback --to 20240501T090000123456Z
    """
    snapshot_id = rollback(online_dir or default_online_dir(project_dir), to)
    echo_progress(f"snapshot {snapshot_id} is current")


@click.command("get")
@click.argument("keys", nargs=-1, required=True)
@click.option("--feature-set", required=True, help="The feature set, e.g. churn_model.")
@click.option("--request-ts", help="The request time (UTC; default now), e.g. 2024-05-01T09:00:00Z.")
@click.option("--snapshot", help="Read this snapshot id instead of the current one.")
@online_dir_option
@click.option("--project-dir", type=click.Path(file_okay=False), help="The dbt project (default: the current directory).")
def get_command(keys, feature_set, request_ts, snapshot, online_dir, project_dir):
    """Look up the features of KEYS (KEY=VALUE, or a bare value when the feature set has one
    key column) in the published snapshot, as JSON, for debugging.

    \b
    Example:
      featurekit get --feature-set churn_model customer_id=42
      featurekit get --feature-set churn_model 42 43 --request-ts 2024-05-01T09:00:00Z
    """
    store = OnlineStore(online_dir or default_online_dir(project_dir), snapshot=snapshot)
    parser = store.keys(feature_set)  # raises the unknown-feature-set error
    request_us = request_micros(request_ts) if request_ts is not None else None
    served = store.lookup(feature_set, [parser.from_text(text) for text in keys], request_us, parsed=True)
    click.echo(json.dumps(
        {
            "feature_set": feature_set,
            "snapshot_id": served.snapshot_id,
            "request_ts": served.request_ts,
            "results": served.dicts(),
        },
        indent=2,
        default=_json_default,
    ))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="The port (0: any free port).")
@click.option("--token", envvar="FEATUREKIT_TOKEN", help="Require Authorization: Bearer TOKEN on /v1/* and /metrics ($FEATUREKIT_TOKEN).")
@click.option("--max-batch", default=1000, show_default=True, type=int, help="Most keys per request (more: 413).")
@click.option("--max-connections", default=DEFAULT_LIMITS.max_connections, show_default=True, type=int,
              help="Most open connections (at the limit, the longest idle one is closed for a new one).")
@click.option("--client-timeout", default=DEFAULT_LIMITS.client_timeout, show_default=True, type=float,
              help="Seconds for a request's headers, and then its body, to arrive (else 408).")
@click.option("--idle-timeout", default=DEFAULT_LIMITS.idle_timeout, show_default=True, type=float,
              help="Seconds a keep-alive connection may wait for its next request.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port and the mapped snapshot (about one per core).")
@click.option("--log-dir", type=click.Path(file_okay=False), help="Log every served vector to Parquet files here.")
@online_dir_option
@click.option("--project-dir", type=click.Path(file_okay=False), help="The dbt project (default: the current directory).")
def serve_command(host, port, token, max_batch, max_connections, client_timeout, idle_timeout, workers, log_dir, online_dir, project_dir):
    """Serve published feature sets over HTTP JSON: POST /v1/features/{feature_set},
    GET /v1/feature-sets, GET /healthz, GET /metrics. Never opens the warehouse; follows newly
    published snapshots without a restart.

    \b
    Example:
      featurekit serve --port 8000 --workers 2
      curl -s localhost:8000/v1/features/churn_model -d '{"keys": [{"customer_id": 42}]}'
      curl -s localhost:8000/v1/features/churn_model -d '{"keys": [{"customer_id": 42}], "format": "rows"}'
    """
    if token is None and os.environ.get("FEATUREKIT_TOKEN") == "":
        raise FeaturekitError("$FEATUREKIT_TOKEN is set but empty, which would serve without a token: set a token, or unset it")
    check_token(token)
    handler = logging.StreamHandler()  # the store's reload errors and the server's, one line each
    handler.setFormatter(logging.Formatter("featurekit: %(message)s"))
    logging.getLogger("featurekit").addHandler(handler)
    logging.getLogger("featurekit").setLevel(logging.INFO)
    online = online_dir or default_online_dir(project_dir)
    store = OnlineStore(online, log_dir=log_dir if workers == 1 else None)  # fails here, once, if it cannot serve
    try:
        sock = listen(host, port, workers)
    except OSError as e:
        raise FeaturekitError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    bound_host, bound_port = sock.getsockname()[:2]
    limits = Limits(max_connections=max_connections, client_timeout=client_timeout, idle_timeout=idle_timeout)
    if token is None and not _loopback(bound_host):
        echo_progress(f"warning: serving on {bound_host} without a token: anyone who reaches this port reads every "
                      "feature; set --token or $FEATUREKIT_TOKEN")
    announce = functools.partial(echo_progress, f"serving snapshot {store.snapshot_id} on http://{bound_host}:{bound_port}"
                                 + (f" with {workers} workers" if workers > 1 else "") + " (Ctrl-C to stop)")
    # on SIGTERM as on Ctrl-C: stop, then finish the served-feature log
    if workers == 1:
        announce()
        serve(sock, FeatureServer(store, token=token, max_batch=max_batch), limits, on_stop=store.close)
        return

    def worker():
        own = OnlineStore(online, log_dir=log_dir)  # maps the same files: the pages are shared
        return FeatureServer(own, token=token, max_batch=max_batch), own.close

    del store
    serve_workers(sock, worker, workers, limits, ready=announce)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
