"""A churn model on featurekit: trained on a `featurekit train-set` file, served from the
online store. Training and serving share this file's `FEATURE_SET` and `model_input`, and
featurekit guarantees the columns have the same names, types and values at both ends.

    python churn.py train train.parquet -o model.pkl
    python churn.py predict model.pkl 42 43 [--online-dir ../../online] [--request-ts 2024-10-01T00:00:00Z]
    python churn.py serve model.pkl [--port 8010]     # POST /predict {"customer_id": 42}
"""

from __future__ import annotations

import argparse
import json
import pickle
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from featurekit import OnlineStore

FEATURE_SET = "churn_model"
KEY = "customer_id"
CATEGORICAL = ["plan"]


def model_input(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The model's input: the feature set's features, in order (timestamps and ages are for
    monitoring, not for the model)."""
    return frame[features]


def train(train_path: str, output: str) -> None:
    frame = pd.read_parquet(train_path)
    sidecar = json.loads(open(train_path + ".featureset.json").read())
    assert sidecar["feature_set"] == FEATURE_SET, f"{train_path} is a training set of {sidecar['feature_set']}"
    features = [f["name"] for view in sidecar["views"] for f in view["features"]]
    encode = ColumnTransformer([("plan", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)], remainder="passthrough")
    model = make_pipeline(encode, HistGradientBoostingClassifier(random_state=0))
    model.fit(model_input(frame, features), frame["churned"])
    with open(output, "wb") as f:
        pickle.dump({"model": model, "features": features, "feature_set": FEATURE_SET}, f)
    print(f"trained on {len(frame):,} rows and {len(features)} features; wrote {output}")


def load(path: str) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f)


def predict(store: OnlineStore, trained: dict, customer_ids: list[int], request_ts=None) -> list[dict]:
    frame = store.get_frame(trained["feature_set"], customer_ids, request_ts=request_ts)
    probabilities = trained["model"].predict_proba(model_input(frame, trained["features"]))[:, 1]
    return [{KEY: int(c), "churn_probability": float(p)} for c, p in zip(frame[KEY], probabilities)]


def serve(store: OnlineStore, trained: dict, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                status, answer = 200, {"snapshot_id": store.snapshot_id, **predict(store, trained, [int(body[KEY])])[0]}
            except (ValueError, KeyError, TypeError) as e:
                status, answer = 400, {"error": f'send {{"{KEY}": 42}}: {e}'}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"predicting on http://127.0.0.1:{server.server_address[1]}/predict (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("train", help="train on a train-set Parquet file")
    p.add_argument("train_set")
    p.add_argument("-o", "--output", default="model.pkl")
    for name in ("predict", "serve"):
        p = commands.add_parser(name)
        p.add_argument("model")
        p.add_argument("--online-dir", default="online", help="the snapshot directory `featurekit publish` writes")
        if name == "predict":
            p.add_argument("customer_ids", nargs="+", type=int)
            p.add_argument("--request-ts", help="UTC time to predict at (default: now)")
        else:
            p.add_argument("--port", type=int, default=8010)
    args = parser.parse_args(argv)
    if args.command == "train":
        train(args.train_set, args.output)
    elif args.command == "predict":
        for row in predict(OnlineStore(args.online_dir), load(args.model), args.customer_ids, args.request_ts):
            print(json.dumps(row))
    else:
        serve(OnlineStore(args.online_dir), load(args.model), args.port)


if __name__ == "__main__":
    main()
