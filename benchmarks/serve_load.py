"""Benchmark: the served champion under load, on loopback.

Starts a server on the registered `champion` (after `make run`: models:/rib@champion in mlflow.db):
`--server mlflow` is `mlflow models serve -w N`, `--server rib` is `rib serve` (the same pyfunc
behind uvicorn with micro-batching, rib/ops/serve.py; N processes on N ports, the load spread over
them as a balancer would), then offers single-session requests at fixed rates (open loop: each request is sent
at its scheduled time whatever the earlier ones are doing, and its latency counts from that time,
so a saturated server shows as latency rather than as a lower offered rate) and prints, per rate,
the throughput, p50 / p95 / p99 latency and the errors.

    .venv/bin/python benchmarks/serve_load.py --server mlflow --rates 50 100 200 --seconds 30
    .venv/bin/python benchmarks/serve_load.py --server rib --rates 50 100 200 400 --seconds 30

Target on the 2-core machine: p99 under 50 ms at 200 requests/s, no errors.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, model_uri: str, tracking_uri: str, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if kind == "mlflow":
        command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                   "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]  # fmt: skip
    else:
        command = [sys.executable, "-m", "rib.cli", "serve", "--model-uri", model_uri, "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as response:
                if response.status == 200:
                    return server, url
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(server.stderr.read().decode()[-2000:]) from None
            time.sleep(0.5)
    raise TimeoutError("the server did not start")


def example_body(tracking_uri: str, model_uri: str) -> bytes:
    """One session of three known products, as a shop's front end would send it."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    folder = Path(mlflow.artifacts.download_artifacts(model_uri))
    vocab = json.loads(next(folder.rglob("vocab.json")).read_text())
    session = [{"sku": sku, "activity": 5, "dwell": 30.0} for sku in vocab["sku"][2:5]]
    return json.dumps({"inputs": [{"session": session}], "params": {"k": 20}}).encode()


def offer(urls: list[str], body: bytes, rate: float, seconds: float) -> dict:
    latencies, errors, lock = [], [], threading.Lock()

    def send(scheduled: float, url: str) -> None:
        request = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
                ok = response.status == 200
        except (urllib.error.URLError, OSError) as error:
            ok = False
            with lock:
                errors.append(str(error)[:80])
        with lock:
            if ok:
                latencies.append(time.perf_counter() - scheduled)

    started = time.perf_counter()
    n = int(rate * seconds)
    with ThreadPoolExecutor(max_workers=256) as pool:
        for i in range(n):
            scheduled = started + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, scheduled, urls[i % len(urls)])
    elapsed = time.perf_counter() - started
    latencies.sort()

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {"offered": rate, "sent": n, "answered": len(latencies), "throughput": len(latencies) / elapsed,
            "p50": quantile(0.50), "p95": quantile(0.95), "p99": quantile(0.99), "errors": len(errors)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="models:/rib@champion")
    parser.add_argument("--tracking-uri", default="sqlite:///" + str(REPO / "mlflow.db"))
    parser.add_argument("--rates", type=float, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--server", choices=["mlflow", "rib"], default="mlflow")
    parser.add_argument("--workers", type=int, default=1, help="mlflow: serve -w N; rib: N processes")
    args = parser.parse_args()
    body = example_body(args.tracking_uri, args.model)
    if args.server == "mlflow":
        servers = [start_server("mlflow", args.model, args.tracking_uri, args.workers)]
        label = f"mlflow models serve -w {args.workers}"
    else:
        servers = [start_server("rib", args.model, args.tracking_uri, 1) for _ in range(args.workers)]
        label = f"rib serve x {args.workers} (micro-batching, 1 torch thread each)"
    urls = [url for _, url in servers]
    try:
        for url in urls * 20:  # warm-up
            urllib.request.urlopen(urllib.request.Request(url + "/invocations", data=body,
                                   headers={"Content-Type": "application/json"}), timeout=30).read()  # fmt: skip
        print(f"{label}, {os.cpu_count()} CPUs, {args.seconds:.0f} s per rate")
        print("| offered req/s | answered | throughput req/s | p50 ms | p95 ms | p99 ms | errors |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for rate in args.rates:
            r = offer(urls, body, rate, args.seconds)
            print(f"| {rate:.0f} | {r['answered']}/{r['sent']} | {r['throughput']:.1f} | {r['p50']:.1f} "
                  f"| {r['p95']:.1f} | {r['p99']:.1f} | {r['errors']} |", flush=True)  # fmt: skip
    finally:
        for server, _ in servers:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
