"""`rib serve`: the registered model behind a lean HTTP server that batches concurrent requests.

The model is the same MLflow pyfunc that `mlflow models serve` runs (rib/ops/pyfunc_model.py,
loaded from the registry by MLflow: models:/rib@champion); what changes is the server around it.
MLflow's scoring server turns each request into a pandas frame and checks it against the model's
signature before the model sees it, one request at a time; on this 2-core machine it saturates near
150 requests/s (benchmarks/serve_load.py). Here uvicorn reads the body, the records go to the
pyfunc's own `predict` as they are, and the requests that arrive while a forward pass runs are
answered together by the next one (one pass for up to `max_batch` sessions).

The API is MLflow's: POST /invocations with {"dataframe_records" or "inputs": [{"session": [...]}],
"params": {"k": 20}} answers {"predictions": [{"skus", "scores", "attention"}, ...]}; GET /ping.
Bad input is a 400 with {"error_code", "message"} (a body nested past JSON's depth too, which
MLflow's server answers with a 500); a body over `max_body_bytes` a 413. A request that fails
inside a batch is retried alone, so one bad request never fails the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from dataclasses import dataclass, field

from rib.config import ServingConfig
from rib.ops.registry import DEFAULT_TOP_K

INVALID = "INVALID_PARAMETER_VALUE"


class BadRequestError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_request(body: bytes) -> tuple[list, int]:
    """(records, k) from an MLflow-style JSON body, or BadRequestError saying what is wrong."""
    try:
        document = json.loads(body)
    except RecursionError:
        raise BadRequestError("the JSON body is nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequestError(f"the body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise BadRequestError("the body must be a JSON object with 'dataframe_records' or 'inputs'")
    records = document.get("dataframe_records", document.get("inputs"))
    if not isinstance(records, list) or not records:
        raise BadRequestError("'dataframe_records' (or 'inputs') must be a non-empty list of {'session': [...]}")
    params = document.get("params") or {}
    k = params.get("k", DEFAULT_TOP_K) if isinstance(params, dict) else None
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise BadRequestError(f"params.k must be a positive integer, got {k!r}")
    return records, k


@dataclass
class _Pending:
    records: list
    k: int
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Answers queued requests in batches: each forward pass takes every request waiting (up to
    `max_batch` sessions) with the same k, in a worker thread so the server keeps reading."""

    def __init__(self, python_model, max_batch: int) -> None:
        self.model, self.max_batch = python_model, max_batch
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()

    async def submit(self, records: list, k: int) -> list[dict]:
        pending = _Pending(records, k, asyncio.get_running_loop().create_future())
        await self.queue.put(pending)
        return await pending.future

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            sessions = len(batch[0].records)
            while not self.queue.empty() and sessions < self.max_batch:
                batch.append(self.queue.get_nowait())
                sessions += len(batch[-1].records)
            for k in {p.k for p in batch}:
                group = [p for p in batch if p.k == k]
                try:
                    answers = await asyncio.to_thread(self._answer, group, k)
                except Exception as failure:  # a fault of the server, not of a request: a 500, and go on
                    answers = [failure] * len(group)
                for pending, answer in zip(group, answers, strict=True):
                    if pending.future.done():
                        continue
                    if isinstance(answer, Exception) and not isinstance(answer, BadRequestError):
                        pending.future.set_exception(answer)
                    else:
                        pending.future.set_result(answer)

    def _answer(self, group: list[_Pending], k: int) -> list:
        """Each request's predictions (or its BadRequestError): one pass for the group, one each on failure."""
        if len(group) == 1:
            return [self._answer_alone(group[0], k)]
        try:
            rows = self._predict([r for p in group for r in p.records], k)
        except BadRequestError:
            return [self._answer_alone(p, k) for p in group]
        answers, start = [], 0
        for pending in group:
            answers.append(rows[start : start + len(pending.records)])
            start += len(pending.records)
        return answers

    def _answer_alone(self, pending: _Pending, k: int):
        try:
            return self._predict(pending.records, k)
        except BadRequestError as error:
            return error

    def _predict(self, records: list, k: int) -> list[dict]:
        from mlflow.exceptions import MlflowException

        try:
            frame = self.model.predict(None, records, {"k": k})
        except MlflowException as error:
            raise BadRequestError(error.message) from None
        return frame.to_dict("records")


def build_app(python_model, config: ServingConfig):
    """The Starlette app: /ping and /invocations around a Batcher of `python_model`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    batcher = Batcher(python_model, config.max_batch)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error_code": INVALID, "message": message}, status_code=status)

    async def ping(request: Request) -> Response:
        return Response("\n", media_type="application/json")

    async def invocations(request: Request) -> Response:
        body, size = bytearray(), 0
        async for chunk in request.stream():  # read to the end (a client cut off mid-send sees a reset), keep the head
            size += len(chunk)
            if size <= config.max_body_bytes:
                body += chunk
        if size > config.max_body_bytes:
            return error(413, f"the body is over {config.max_body_bytes} bytes")
        try:
            records, k = parse_request(bytes(body))
            answer = await batcher.submit(records, k)
        except BadRequestError as bad:
            return error(bad.status, str(bad))
        if isinstance(answer, BadRequestError):
            return error(answer.status, str(answer))
        return JSONResponse({"predictions": answer})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    routes = [Route("/ping", ping, methods=["GET"]), Route("/invocations", invocations, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


def load_registered(model_uri: str):
    """The registered pyfunc, running the code it was registered with. The rib package travels with
    the model (rib/ops/registry.py: code_paths), and `mlflow models serve` imports that copy in a
    fresh process; this process has imported its own rib, so that is set aside first: the model's
    copy is imported afresh and stays (its predict imports lazily), while this module keeps the
    objects it already holds."""
    import mlflow

    for name in [n for n in sys.modules if n == "rib" or n.startswith("rib.")]:
        del sys.modules[name]
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model()


def serve(config: ServingConfig, tracking_uri: str | None = None) -> None:
    """Load the pyfunc from MLflow (`tracking_uri`, else $MLFLOW_TRACKING_URI, else the project's
    SQLite store) and serve it until interrupted."""
    import mlflow
    import torch
    import uvicorn

    from rib.ops.tracking import TrackingConfig

    torch.set_num_threads(config.torch_threads)
    mlflow.set_tracking_uri(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or TrackingConfig.tracking_uri)
    python_model = load_registered(config.model_uri)
    uvicorn.run(
        build_app(python_model, config), host=config.host, port=config.port, log_level="warning", access_log=False
    )
