"""Plots for the segmentation report: pure functions that return ``matplotlib.figure.Figure``.

Only the object API is used (no ``pyplot``): no global figure registry, no GUI backend, and
figures built in different threads do not share state. A figure is freed like any other Python
object once the last reference to it is dropped; there is nothing to ``close``.

The only I/O is :func:`figure_to_png`, which renders at a fixed ``PNG_DPI`` without tight
cropping, so a PNG is exactly ``figsize * PNG_DPI`` pixels (e.g. ``ELBOW_SIZE`` -> 1100 x 450).

Text is never parsed as math (``text.parse_math`` is off, below): a ``$`` in a header, a
segment name or a value is drawn as written.

Segment ids are ints ``1..k``; segment ``i`` is drawn in ``tab10[(i - 1) % 10]`` in every plot
(see :func:`segment_color`).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, StrMethodFormatter
from matplotlib.typing import ColorType
from sklearn.decomposition import PCA

from schemas.columns import AGE, ANNUAL_INCOME, CUSTOMER_ID, GENDER, SPENDING_SCORE
from tasks.errors import escaped_controls
from tasks.table import ColumnPlan, mall_table

if TYPE_CHECKING:
    from tasks.describe import Described
    from tasks.elbow import KChoice
    from tasks.fit import Segmentation

PNG_DPI = 100
PNG_COMPRESS_LEVEL = 1  # zlib level of the PNGs (Pillow's default is 6)

# Figure sizes in inches; pixels = inches * PNG_DPI.
ELBOW_SIZE = (11, 4.5)  # 1100 x 450 px
SEGMENTS_SIZE = (11, 7)  # 1100 x 700 px
PROFILES_SIZE = (16, 6)  # 1600 x 600 px
EDA_SIZE = (10, 8)  # 1000 x 800 px
TRANSITIONS_SIZE = (9, 7)  # 900 x 700 px

# Human-readable names (original units) for column names; anything else falls back to itself.
LABELS = {
    CUSTOMER_ID: "Customer id",
    GENDER: "Gender",
    AGE: "Age (years)",
    ANNUAL_INCOME: "Annual income (k$)",
    SPENDING_SCORE: "Spending score (1-100)",
}
GENDER_PREFIX = f"{GENDER}_"  # one-hot columns look like ``gender_Female``

# Every text on a figure (titles, labels, legends, ticks, annotations) is drawn as written,
# never as TeX math: headers such as ``income_$`` and ``spend_$`` hold two ``$``, and text
# between them would be parsed as math (a pyparsing error, or a formula instead of the name).
# Set here, before any text is made: tick labels are made while drawing, from this setting.
matplotlib.rcParams["text.parse_math"] = False

_SEGMENT_COLORS = matplotlib.color_sequences["tab10"]  # the colours of the tab10 colormap
_NEUTRAL = "slategray"  # for plots that are not about segments
_LEGEND_WRAP = 40  # characters per line of a legend entry
HIST_BINS = 30


def label_for(column: str, labels: Mapping[str, str] | None = None) -> str:
    """Human label for a column: ``labels`` (see ``column_labels``), else ``LABELS``, one-hot
    gender columns, else the name itself; as drawn (``shown``)."""
    if labels and column in labels:
        label = labels[column]
    elif column in LABELS:
        label = LABELS[column]
    elif column.startswith(GENDER_PREFIX):
        label = f"Gender: {column[len(GENDER_PREFIX) :]} (0/1)"
    else:
        label = column
    return shown(label)


def shown(text: str) -> str:
    """``text`` as drawn: a control character other than the line break (a tab in a header)
    has no glyph in the font (a box and a warning), so it is drawn as its escape, ``\\t``."""
    return escaped_controls(text, keep="\n", formats=False)


def column_labels(table: ColumnPlan, matrix_columns: Sequence[str] = ()) -> dict[str, str]:
    """Labels with units for the table's columns (``Annual income (k$)``) and for one-hot
    columns of its categorical features (``Gender: Female (0/1)``)."""
    labels = {CUSTOMER_ID: "Customer id"} | {c.name: c.titled() for c in table.columns}
    for name in matrix_columns:
        for column in table.columns:
            prefix = f"{column.name}_"
            if not column.numeric and name.startswith(prefix):
                labels[name] = f"{column.titled()}: {name[len(prefix) :]} (0/1)"
    return labels


def segment_color(segment_id: int) -> ColorType:
    """Colour of a segment (ids are 1-based), the same in every plot: ``tab10[(id - 1) % 10]``."""
    return _SEGMENT_COLORS[(int(segment_id) - 1) % len(_SEGMENT_COLORS)]


def _wrap(text: str) -> str:
    return textwrap.fill(shown(text), _LEGEND_WRAP)


def figure_to_png(fig: Figure) -> bytes:
    """Render ``fig`` as PNG bytes at ``PNG_DPI``; the image is exactly figsize * dpi pixels.

    Drawn once: ``savefig`` draws a figure with a layout engine twice (a pass that only lays it
    out, then the real one). Here the constrained layout runs once, is frozen, and the Agg
    canvas draws once; the zlib level ``PNG_COMPRESS_LEVEL`` trades ~15 % larger files for a
    faster encoding."""
    canvas = FigureCanvasAgg(fig)
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
        fig.set_layout_engine("none")
    canvas.draw()
    buffer = BytesIO()
    imsave(
        buffer,
        canvas.buffer_rgba(),
        format="png",
        dpi=PNG_DPI,
        pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL},
    )
    return buffer.getvalue()


def _new_figure(size: tuple[float, float]) -> Figure:
    return Figure(figsize=size, dpi=PNG_DPI, layout="constrained")


# --------------------------------------------------------------------------------------------
# Elbow
# --------------------------------------------------------------------------------------------


def _mark_chosen(ax: Axes, ks: np.ndarray, values: np.ndarray, chosen_k: int) -> None:
    """Red star + "chosen k=…" label at ``chosen_k``, or a dotted line if it has no value."""
    text = f"chosen k={chosen_k}"
    hit = np.flatnonzero((ks == chosen_k) & np.isfinite(values))
    if hit.size:
        y = values[hit[0]]
        ax.plot(
            [chosen_k],
            [y],
            linestyle="none",
            marker="*",
            markersize=18,
            color="tab:red",
            markeredgecolor="black",
            zorder=5,
            label=text,
        )
        at_right_end = chosen_k >= ks.max()  # put the label left of the star, inside the axes
        ax.annotate(
            text,
            xy=(chosen_k, y),
            xytext=(-10 if at_right_end else 10, 10),
            textcoords="offset points",
            ha="right" if at_right_end else "left",
            color="tab:red",
            fontweight="bold",
        )
    else:
        ax.axvline(chosen_k, linestyle=":", color="tab:red", label=text)
        ax.annotate(
            text,
            xy=(chosen_k, 0.5),
            xycoords=("data", "axes fraction"),
            xytext=(5, 0),
            textcoords="offset points",
            color="tab:red",
        )


def plot_elbow(elbow: pd.DataFrame, chosen_k: int, knee: int | None) -> Figure:
    """Inertia (with knee and chosen k) and silhouette by k. Size ``ELBOW_SIZE`` (1100 x 450 px).

    ``elbow`` has columns ``k``, ``inertia``, ``silhouette``, ``calinski_harabasz``,
    ``davies_bouldin`` and ``min_share`` (the scores are NaN for k=1). The knee, when given, is
    a vertical dashed line labelled "knee k=…"; the chosen k is a red star labelled "chosen k=…".
    """
    table = elbow.sort_values("k")
    ks = table["k"].to_numpy(dtype=int)
    inertia = table["inertia"].to_numpy(dtype=float)
    silhouette = table["silhouette"].to_numpy(dtype=float)

    fig = _new_figure(ELBOW_SIZE)
    ax_inertia, ax_silhouette = fig.subplots(1, 2)

    ax_inertia.plot(ks, inertia, marker="o", color=_NEUTRAL)
    if knee is not None:
        ax_inertia.axvline(knee, linestyle="--", color="black", linewidth=1, label=f"knee k={knee}")
        ax_inertia.annotate(
            f"knee k={knee}",
            xy=(knee, 0.97),
            xycoords=("data", "axes fraction"),
            xytext=(5, 0),
            textcoords="offset points",
            va="top",
        )
    _mark_chosen(ax_inertia, ks, inertia, chosen_k)
    ax_inertia.set_title("Elbow: inertia by k")
    ax_inertia.set_ylabel("Inertia (within-cluster sum of squares)")

    scored = (ks >= 2) & np.isfinite(silhouette)
    if scored.any():
        ax_silhouette.plot(ks[scored], silhouette[scored], marker="o", color=_NEUTRAL)
        _mark_chosen(ax_silhouette, ks, silhouette, chosen_k)
    else:
        ax_silhouette.text(
            0.5, 0.5, "no silhouette (needs k >= 2)", ha="center", transform=ax_silhouette.transAxes
        )
    ax_silhouette.set_title("Silhouette by k (higher is better)")
    ax_silhouette.set_ylabel("Mean silhouette")

    for ax in (ax_inertia, ax_silhouette):
        ax.set_xlabel("Number of segments k")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.margins(y=0.12)  # room for the labels above the markers
    return fig


# --------------------------------------------------------------------------------------------
# Segments scatter
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaledView:
    """Customers and centres on the clustering's scale, for a PCA view of more than two
    features: ``rows`` (one per plotted customer) and ``centroids`` (in the order of the
    centres' segment ids)."""

    rows: np.ndarray
    centroids: np.ndarray


def plot_segments(
    points: pd.DataFrame,
    labels: np.ndarray,
    centroids: pd.DataFrame,
    names: Mapping[int, str],
    *,
    scaled: ScaledView | None = None,
    max_points: int = 20_000,
    seed: int = 0,
    column_names: Mapping[str, str] | None = None,
) -> Figure:
    """Customers coloured by segment, centroids as X. Size ``SEGMENTS_SIZE`` (1100 x 700 px).

    ``points`` holds the feature columns in original units (one row per customer), ``labels``
    the segment id of each row and ``centroids`` the centres, indexed by segment id, with the
    same columns. With one feature it is the x axis and each segment a strip at its id on the
    y axis (see ``_strips``); with two the axes are those features; with more, ``scaled`` (its
    rows the same as ``points``, its centroids in ``centroids.index`` order) goes through a PCA
    fitted on the plotted rows. At most ``max_points`` rows are drawn, a seeded sample without
    replacement; the title then says "showing m of n customers". Legend counts (n=…) are over
    all customers.
    Customers are one scatter collection per segment; centroids are lines (markers only).
    """
    columns = list(points.columns)
    n_total = len(points)
    labels = np.asarray(labels).astype(int, copy=False)
    if not columns:
        raise ValueError("plot_segments needs at least 1 feature column")
    if len(labels) != n_total:
        raise ValueError(f"{len(labels)} labels for {n_total} points")

    if n_total > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(n_total, size=max_points, replace=False))
    else:
        rows = np.arange(n_total)
    shown_labels = labels[rows]

    title = "Customer segments"
    if len(columns) == 1:
        values = points.iloc[rows, 0].to_numpy(dtype=float)
        xy, centres = _strips(values, shown_labels, centroids[columns[0]], seed)
        x_label = label_for(columns[0], column_names)
        y_label = "Segment"
        title += " along one feature"
    elif len(columns) > 2:
        if scaled is None:
            raise ValueError("more than 2 features: pass scaled rows and centroids for PCA")
        matrix = np.asarray(scaled.rows, dtype=float)
        if len(matrix) != n_total:
            raise ValueError(f"scaled has {len(matrix)} rows, points has {n_total}")
        pca = PCA(n_components=2, random_state=seed).fit(matrix[rows])
        xy = pca.transform(matrix[rows])
        centres = pca.transform(np.asarray(scaled.centroids, dtype=float))
        ratios = pca.explained_variance_ratio_
        x_label = f"PC1 ({ratios[0]:.0%} of variance)"
        y_label = f"PC2 ({ratios[1]:.0%} of variance)"
        title += f" (PCA view of {len(columns)} scaled features)"
    else:
        xy = points.iloc[rows, :2].to_numpy(dtype=float)
        centres = centroids.loc[:, columns[:2]].to_numpy(dtype=float)
        x_label = label_for(columns[0], column_names)
        y_label = label_for(columns[1], column_names)
    centre_xy = dict(zip(centroids.index.astype(int), centres, strict=True))

    segment_ids = sorted({int(s) for s in np.unique(labels)} | {int(s) for s in centroids.index})
    counts = pd.Series(labels).value_counts()
    marker_size = 24 if len(rows) <= 2_000 else 8 if len(rows) <= 20_000 else 3
    alpha = 0.8 if len(rows) <= 2_000 else 0.5

    fig = _new_figure(SEGMENTS_SIZE)
    ax = fig.subplots()
    handles = []
    for segment in segment_ids:
        color = segment_color(segment)
        mine = shown_labels == segment
        ax.scatter(xy[mine, 0], xy[mine, 1], s=marker_size, color=color, alpha=alpha, linewidths=0)
        centre = centre_xy.get(segment)
        if centre is not None:
            ax.plot(
                [centre[0]],
                [centre[1]],
                linestyle="none",
                marker="X",
                markersize=16,
                markerfacecolor=color,
                markeredgecolor="black",
                markeredgewidth=1.5,
                zorder=5,
            )
        name = names.get(segment, f"Segment {segment}")
        entry = _wrap(f"{segment}: {name} (n={int(counts.get(segment, 0)):,})")
        handles.append(
            Line2D([], [], linestyle="none", marker="o", markersize=8, color=color, label=entry)
        )
    handles.append(
        Line2D(
            [],
            [],
            linestyle="none",
            marker="X",
            markersize=12,
            markerfacecolor="white",
            markeredgecolor="black",
            label="segment centre",
        )
    )
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0,
        title="Segment",
        alignment="left",
    )

    if len(rows) < n_total:
        title += f"\nshowing {len(rows):,} of {n_total:,} customers"
    else:
        title += f"\n{n_total:,} customers"
    ax.set_title(title)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if len(columns) == 1:
        ax.set_yticks(segment_ids, [str(segment) for segment in segment_ids])
    ax.grid(alpha=0.3)
    return fig


def _strips(
    values: np.ndarray, labels: np.ndarray, centres: pd.Series, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The 1-D view of one feature: (x, y) of each customer and of each centre, x the value and
    y the segment id, customers jittered (seeded, +-0.3) so that equal values stay visible."""
    jitter = np.random.default_rng(seed).uniform(-0.3, 0.3, size=len(values))
    xy = np.column_stack([values, labels + jitter])
    centre_xy = np.column_stack([centres.to_numpy(dtype=float), centres.index.astype(float)])
    return xy, centre_xy


# --------------------------------------------------------------------------------------------
# Segment profiles
# --------------------------------------------------------------------------------------------

_MALL_PANELS = (AGE, ANNUAL_INCOME, SPENDING_SCORE)
MAX_PROFILE_PANELS = 5  # mean panels besides the size panel


def profile_panels(table: ColumnPlan) -> list[str]:
    """Columns whose per-segment means ``plot_profiles`` draws: numeric features first, then
    numeric profile columns, at most ``MAX_PROFILE_PANELS``."""
    return [c.name for c in (*table.features, *table.profile) if c.numeric][:MAX_PROFILE_PANELS]


def plot_profiles(
    profiles: pd.DataFrame,
    columns: Sequence[str] = _MALL_PANELS,
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """Size and the mean of each of ``columns`` per segment (default: the Mall's age, income
    and spending). Size ``PROFILES_SIZE`` (1600 x 600 px).

    Bar panels in one row, one bar per segment (x = segment id, coloured by segment); the
    size bars are labelled with the share, the others with the value. A legend below maps
    segment id -> name. ``profiles`` has one row per segment with ``segment_id``,
    ``segment_name``, ``size``, ``share`` and ``<feature>_mean`` / ``_median`` columns.
    """
    panels = [("size", "Segment size (share of customers)", "Customers")]
    for column in columns:
        label = label_for(column, labels)
        panels.append((f"{column}_mean", f"Mean {_lower_first(label)}", label))
    needed = ["segment_id", "segment_name", "share"] + [column for column, _, _ in panels]
    missing = [column for column in needed if column not in profiles.columns]
    if missing:
        raise ValueError(f"profiles is missing columns {missing}")
    table = profiles.sort_values("segment_id")
    ids = table["segment_id"].astype(int).tolist()
    colors = [segment_color(segment) for segment in ids]
    positions = np.arange(len(ids))

    fig = _new_figure(PROFILES_SIZE)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (column, title, unit) in zip(axes, panels, strict=True):
        values = table[column].to_numpy(dtype=float)
        bars = ax.bar(positions, values, color=colors, edgecolor="black", linewidth=0.5)
        if column == "size":
            bar_text = [f"{share:.0%}" for share in table["share"]]
            ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        else:
            bar_text = [_short_number(value) for value in values]
        ax.bar_label(bars, labels=bar_text, padding=2, fontsize=9 if len(ids) <= 6 else 7)
        ax.set_xticks(positions, [str(segment) for segment in ids])
        ax.set_xlabel("Segment")
        ax.set_ylabel(unit)
        ax.set_title(_wrap_title(title))
        ax.margins(y=0.12)
        ax.grid(axis="y", alpha=0.3)

    entries = [
        _wrap(f"{segment}: {name}")
        for segment, name in zip(ids, table["segment_name"], strict=True)
    ]
    handles = [
        Patch(facecolor=color, edgecolor="black", linewidth=0.5, label=entry)
        for entry, color in zip(entries, colors, strict=True)
    ]
    # As many columns as fit the width (about 8 px per character plus the patch).
    widest = max((len(line) for entry in entries for line in entry.splitlines()), default=1)
    fits = int(PROFILES_SIZE[0] * PNG_DPI * 0.95) // (8 * widest + 50)
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=max(1, min(len(ids), fits)),
        frameon=False,
    )
    return fig


# --------------------------------------------------------------------------------------------
# Exploratory view of the clean customers
# --------------------------------------------------------------------------------------------


def _bin_edges(data: np.ndarray) -> np.ndarray | int:
    """``HIST_BINS`` bins; whole-number data get integer-aligned bins (at most ``HIST_BINS``).

    Plain 30 bins over, say, ages 18-70 put two ages in some bins and one in others, which
    draws a comb of fake dips; bins of a whole number of units centred on integers do not.
    """
    low, high = data.min(), data.max()
    if high > low and np.array_equal(data, np.round(data)):
        width = max(1, math.ceil((high - low + 1) / HIST_BINS))
        edges = np.arange(low - 0.5, high + 0.5 + width, width)
        edges[-1] = high + 0.5  # a last, partial bin is drawn narrower, not as a fake dip
        return edges
    return HIST_BINS


def _histogram(ax: Axes, values: pd.Series, label: str) -> None:
    data = values.dropna().to_numpy(dtype=float)
    data = data[np.isfinite(data)]
    if data.size:
        counts, edges = np.histogram(data, bins=_bin_edges(data))
        ax.stairs(counts, edges, fill=True, color=_NEUTRAL, alpha=0.85)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)
    ax.set_xlabel(label)


def _bars(ax: Axes, values: pd.Series, label: str) -> None:
    counts = values.astype("str").map(shown, na_action="ignore").value_counts()
    order = sorted(counts.index, key=lambda v: (-counts[v], v))[:MAX_BARS]
    heights = [int(counts[v]) for v in order]
    bars = ax.bar(order, heights, color=_NEUTRAL, edgecolor="black", linewidth=0.5)
    ax.bar_label(bars, labels=[f"{h:,}" for h in heights], padding=2, fontsize=8)
    ax.tick_params(axis="x", labelrotation=30 if len(order) > 4 else 0, labelsize=8)
    ax.margins(y=0.12)


MAX_EDA_PANELS = 9
MAX_BARS = 12


def plot_eda(customers: pd.DataFrame, table: ColumnPlan | None = None) -> Figure:
    """One panel per column of ``table`` (features first, then profile columns; at most
    ``MAX_EDA_PANELS``): histograms of numeric columns, bars of categorical ones (the
    ``MAX_BARS`` most frequent values). Size ``EDA_SIZE`` (1000 x 800 px).

    Histograms have ``HIST_BINS`` (30) bins, or at most 30 integer-aligned bins for
    whole-number data (see ``_bin_edges``), computed with numpy: millions of rows are fine and
    nothing is downsampled. Default table: the Mall preset (age, income, spending, gender).
    """
    table = table or mall_table()
    labels = column_labels(table)
    ordered = list(table.features) + list(table.profile)
    if table.preset == "mall":  # the tutorial's order: the three numbers, then gender
        ordered = sorted(table.columns, key=lambda c: not c.numeric)
    shown = ordered[:MAX_EDA_PANELS]
    n_cols = 2 if len(shown) <= 4 else 3
    n_rows = max(1, math.ceil(len(shown) / n_cols))
    fig = _new_figure(EDA_SIZE)
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols)).ravel()
    for ax, column in zip(axes, shown, strict=False):
        label = label_for(column.name, labels)
        draw = _histogram if column.numeric else _bars
        draw(ax, customers[column.name], label)
        ax.set_title(_wrap_title(label))
        ax.set_ylabel("Customers")
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    more = len(ordered) - len(shown)
    title = f"Customer features (n={len(customers):,})"
    if more:
        title += f"; {more} more columns not shown"
    fig.suptitle(title, fontsize="x-large")
    return fig


def _lower_first(label: str) -> str:
    """``Annual income (k$)`` -> ``annual income (k$)``; ``BALANCE``, ``MntWines`` unchanged."""
    if (
        len(label) > 1
        and label[0].isupper()
        and label[1].islower()
        and not any(c.isupper() for c in label.split(" ")[0][1:])
    ):
        return label[:1].lower() + label[1:]
    return label


def _wrap_title(text: str) -> str:
    return "\n".join(textwrap.wrap(shown(text), 28)) or text


def _short_number(value: float) -> str:
    if not np.isfinite(value):
        return ""
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.1f}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.0f}k"
    if magnitude >= 10 or value == round(value):
        return f"{value:.0f}"
    return f"{value:.2f}"


# --------------------------------------------------------------------------------------------
# Transitions
# --------------------------------------------------------------------------------------------


def plot_transitions(table: pd.DataFrame, names: Mapping[int, str]) -> Figure:
    """Heatmap of customers by previous segment (rows) and current segment (columns).

    ``table`` has columns ``previous_segment_id``, ``segment_id``, ``customers``; cells show the
    count and the share of the previous segment's customers. With no previous run the figure
    says so. Size ``TRANSITIONS_SIZE`` (900 x 700 px).
    """
    fig = _new_figure(TRANSITIONS_SIZE)
    ax = fig.add_subplot()
    if table.empty:
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            "First run: no previous run to compare with",
            ha="center",
            va="center",
            fontsize=14,
            transform=ax.transAxes,
        )
        return fig
    matrix = table.pivot_table(
        index="previous_segment_id",
        columns="segment_id",
        values="customers",
        aggfunc="sum",
        fill_value=0,
    )
    counts = matrix.to_numpy()
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), count in np.ndenumerate(counts):
        if count:
            ax.text(
                j,
                i,
                f"{count:,}\n{shares[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if shares[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(matrix.columns)), [str(c) for c in matrix.columns])
    ax.set_yticks(
        range(len(matrix.index)),
        [
            textwrap.fill(shown(f"{r}: {names.get(int(r), f'Segment {r}')}"), 26)
            for r in matrix.index
        ],
    )
    ax.set_xlabel("Segment now (id)")
    ax.set_ylabel("Segment in the previous run")
    moved = table.loc[table["previous_segment_id"] != table["segment_id"], "customers"].sum()
    ax.set_title(f"Where customers went ({moved:,} of {counts.sum():,} moved)")
    fig.colorbar(image, ax=ax, label="share of the previous segment")
    return fig


@dataclass(frozen=True)
class PlottedRows:
    """The rows of a run's fit, as its plots draw them: every customer of an in-memory run, a
    partitioned run's seeded sample; as read (``customers``), their feature columns in original
    units (``values``) and the rows K-Means saw (``scaled``)."""

    customers: pd.DataFrame
    values: pd.DataFrame
    scaled: np.ndarray


def run_figures(
    elbow: pd.DataFrame,
    choice: KChoice,
    segmentation: Segmentation,
    described: Described,
    *,
    rows: PlottedRows,
    table: ColumnPlan,
    seed: int,
) -> dict[str, Figure]:
    """The PNGs of a run, by file name; ``rows`` are the rows of ``segmentation``."""
    values = rows.values
    identity = described.identity
    labels_of = column_labels(table, values.columns)
    return {
        "elbow.png": plot_elbow(elbow, choice.k, choice.knee),
        "segments.png": plot_segments(
            values,
            identity.relabel(segmentation.labels),
            described.centroids,
            described.names,
            # the centroids in id order
            scaled=ScaledView(rows.scaled, segmentation.centroids[np.argsort(identity.ids)]),
            seed=seed,
            column_names=labels_of,
        ),
        "profiles.png": plot_profiles(described.profiles, profile_panels(table), labels_of),
        "eda.png": plot_eda(rows.customers, table),
        "transitions.png": plot_transitions(described.transitions, described.names),
    }
