"""The classic Kaggle Mall tutorial as one plain pandas + scikit-learn script (no Prefect).

Reads a CSV, drops rows whose income or score is missing or not a number (the only cleaning),
standard-scales the two features, runs the elbow over k=1..10, picks k with Kneedle, fits the
final K-Means and saves two PNGs (``elbow.png``, ``segments.png``) in ``--output``.

The last line on stdout is one JSON object:
``{"work_seconds": ..., "k": ..., "inertia": ..., "rows": ...}`` where ``work_seconds`` runs from
just after the imports to the end (so the interpreter start and imports are left out).

    python benchmarks/plain_tutorial.py --input data/customers.csv --output /tmp/plain
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
from kneed import KneeLocator
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

DEFAULT_INCOME = "Annual Income (k$)"
DEFAULT_SCORE = "Spending Score (1-100)"
K_RANGE = range(1, 11)
DPI = 100


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="customer CSV")
    parser.add_argument("--output", required=True, type=Path, help="folder for the two PNGs")
    parser.add_argument("--income-col", help=f"income column (default: {DEFAULT_INCOME!r})")
    parser.add_argument("--score-col", help=f"spending score column (default: {DEFAULT_SCORE!r})")
    return parser.parse_args(argv)


def _find_column(columns: pd.Index, wanted: str | None, default: str, keyword: str) -> str:
    """The given column, else the default name, else the first column mentioning ``keyword``."""
    if wanted is not None:
        if wanted not in columns:
            sys.exit(f"error: column {wanted!r} not in {list(columns)}")
        return wanted
    if default in columns:
        return default
    for column in columns:
        if keyword in str(column).lower():
            return str(column)
    sys.exit(f"error: no {keyword} column in {list(columns)}; pass it explicitly")


def load_features(path: Path, income_col: str | None, score_col: str | None) -> pd.DataFrame:
    """Income and score as numbers; rows with a missing or non-numeric value are dropped."""
    raw = pd.read_csv(path)
    income = _find_column(raw.columns, income_col, DEFAULT_INCOME, "income")
    score = _find_column(raw.columns, score_col, DEFAULT_SCORE, "score")
    features = raw[[income, score]].apply(pd.to_numeric, errors="coerce")
    return features.dropna()


def elbow(features, k_range: range) -> list[float]:
    """K-Means inertia for each k."""
    return [
        KMeans(k, init="k-means++", n_init=10, random_state=42).fit(features).inertia_
        for k in k_range
    ]


def pick_k(k_range: range, inertias: list[float]) -> int:
    """The Kneedle knee of the elbow curve (fails clearly if there is none)."""
    knee = KneeLocator(list(k_range), inertias, curve="convex", direction="decreasing").knee
    if knee is None:
        sys.exit("error: no knee in the elbow curve; cannot choose k")
    return int(knee)


def save_elbow(k_range: range, inertias: list[float], k: int, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(list(k_range), inertias, "o-")
    ax.axvline(k, color="grey", linestyle="--", label=f"k = {k}")
    ax.set(xlabel="number of clusters k", ylabel="inertia", title="Elbow method")
    ax.legend()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def save_scatter(features: pd.DataFrame, labels, path: Path) -> None:
    income, score = features.columns
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(features[income], features[score], c=labels, cmap="tab10", s=12)
    ax.set(xlabel=income, ylabel=score, title="Customer segments")
    ax.legend(*points.legend_elements(), title="segment")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    start = time.perf_counter()
    args = parse_args(argv)
    features = load_features(args.input, args.income_col, args.score_col)
    scaled = StandardScaler().fit_transform(features)

    inertias = elbow(scaled, K_RANGE)
    k = pick_k(K_RANGE, inertias)
    model = KMeans(k, init="k-means++", n_init=10, random_state=42).fit(scaled)

    args.output.mkdir(parents=True, exist_ok=True)
    save_elbow(K_RANGE, inertias, k, args.output / "elbow.png")
    save_scatter(features, model.labels_, args.output / "segments.png")

    result = {
        "work_seconds": round(time.perf_counter() - start, 4),
        "k": k,
        "inertia": float(model.inertia_),
        "rows": len(features),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
