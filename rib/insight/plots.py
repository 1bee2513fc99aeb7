"""Training curves as matplotlib figures: logged to MLflow (`mlflow.log_figure`) and embedded in the report."""

from __future__ import annotations

import base64
import io


def training_curve(history: list[dict], k: int, title: str = "validation per epoch"):
    """Validation Recall@k and MRR@k per epoch (a matplotlib Figure; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3))
    ax = figure.subplots()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h[f"validation_recall@{k}"] for h in history], marker="o", label=f"Recall@{k}")
    ax.plot(epochs, [h[f"validation_mrr@{k}"] for h in history], marker="o", label=f"MRR@{k}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def png_data_uri(figure) -> str:
    """A figure as a data: URI, for a self-contained HTML page."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
