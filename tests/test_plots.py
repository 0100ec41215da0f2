"""Plots: figure contents (axes, labels, markers, counts) and exact PNG pixel sizes."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.text import Text
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler

from schemas.columns import AGE, ANNUAL_INCOME, GENDER, SPENDING_SCORE
from schemas.spec import ColumnSpec, TableSpec
from tasks.describe import Described
from tasks.elbow import KChoice
from tasks.fit import Segmentation
from tasks.identity import Identity
from tasks.reporting import plots
from tasks.table import mall_table, resolve_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = {1: "High income, low spending", 2: "Young spenders", 3: "Careful savers"}


# ------------------------------------------------------------------------------------ data


def make_elbow(max_k: int = 8) -> pd.DataFrame:
    ks = np.arange(1, max_k + 1)
    silhouette = np.linspace(0.3, 0.6, max_k)
    silhouette[0] = np.nan
    return pd.DataFrame(
        {
            "k": ks,
            "inertia": 1000.0 / ks,
            "silhouette": silhouette,
            "calinski_harabasz": np.where(ks == 1, np.nan, 100.0 * ks),
            "davies_bouldin": np.where(ks == 1, np.nan, 1.0 / ks),
            "min_share": 1.0 / ks,
        }
    )


def make_segments(n: int = 300, n_features: int = 2, k: int = 3):
    """Points in original units, 1-based labels (the blob ids), centroids and the scaled data."""
    columns = [ANNUAL_INCOME, SPENDING_SCORE, AGE][:n_features]
    x, blob = make_blobs(n_samples=n, centers=k, n_features=n_features, random_state=42)
    points = pd.DataFrame(x * 5 + 50, columns=columns)
    labels = blob + 1
    centroids = points.groupby(labels).mean()
    scaler = StandardScaler().fit(points)
    scaled = scaler.transform(points)
    scaled_centroids = scaler.transform(centroids)
    return points, labels, centroids, scaled, scaled_centroids


def make_profiles(k: int = 3) -> pd.DataFrame:
    ids = np.arange(1, k + 1)
    size = 100 * ids
    return pd.DataFrame(
        {
            "segment_id": ids,
            "segment_name": [NAMES.get(i, f"Segment {i}") for i in ids],
            "size": size,
            "share": size / size.sum(),
            "age_mean": 20.0 + ids,
            "age_median": 20.0 + ids,
            "annual_income_mean": 40.0 + ids,
            "annual_income_median": 40.0 + ids,
            "spending_score_mean": 50.0 + ids,
            "spending_score_median": 50.0 + ids,
            "gender_Female_share": np.full(k, 0.5),
            "gender_Male_share": np.full(k, 0.5),
        }
    )


def make_customers(n: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(42)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            GENDER: rng.choice(["Female", "Male"], size=n),
            AGE: rng.integers(18, 71, size=n).astype(float),
            ANNUAL_INCOME: rng.gamma(4.0, 15.0, size=n),
            SPENDING_SCORE: rng.integers(1, 101, size=n).astype(float),
        }
    )


def segments_figure(n_features: int) -> Figure:
    points, labels, centroids, scaled, scaled_centroids = make_segments(n_features=n_features)
    return plots.plot_segments(
        points, labels, centroids, NAMES, scaled=plots.ScaledView(scaled, scaled_centroids)
    )


FIGURES = {
    "elbow": (lambda: plots.plot_elbow(make_elbow(), chosen_k=4, knee=3), plots.ELBOW_SIZE),
    "segments-2d": (lambda: segments_figure(2), plots.SEGMENTS_SIZE),
    "segments-pca": (lambda: segments_figure(3), plots.SEGMENTS_SIZE),
    "profiles": (lambda: plots.plot_profiles(make_profiles()), plots.PROFILES_SIZE),
    "eda": (lambda: plots.plot_eda(make_customers()), plots.EDA_SIZE),
}


def texts(ax) -> list[str]:
    return [text.get_text() for text in ax.texts]


def legend_texts(legend) -> list[str]:
    return [text.get_text() for text in legend.get_texts()]


def vertical_lines_at(ax, x: float) -> list:
    return [
        line
        for line in ax.get_lines()
        if len(line.get_xdata()) == 2 and np.allclose(np.asarray(line.get_xdata(), float), x)
    ]


# ------------------------------------------------------------------------------------ PNG


@pytest.mark.parametrize("name", list(FIGURES))
def test_png_has_signature_and_exact_documented_size(name):
    build, (width_in, height_in) = FIGURES[name]
    fig = build()
    assert isinstance(fig, Figure)
    png = plots.figure_to_png(fig)
    assert png.startswith(PNG_SIGNATURE)
    image = mpimg.imread(BytesIO(png))
    assert image.shape[:2] == (round(height_in * plots.PNG_DPI), round(width_in * plots.PNG_DPI))


def test_figures_render_the_same_in_threads():
    builds = [build for build, _ in FIGURES.values()]
    serial = [plots.figure_to_png(build()) for build in builds]
    with ThreadPoolExecutor(max_workers=len(builds)) as pool:
        threaded = list(pool.map(lambda build: plots.figure_to_png(build()), builds))
    assert threaded == serial


# ------------------------------------------------------------------------------------ helpers


def test_labels_and_colors():
    assert plots.label_for(ANNUAL_INCOME) == "Annual income (k$)"
    assert plots.label_for("gender_Female").startswith("Gender: Female")
    assert plots.label_for("unknown_column") == "unknown_column"
    assert plots.segment_color(1) == plots.segment_color(11)
    assert plots.segment_color(1) != plots.segment_color(2)


# ------------------------------------------------------------------------------------ elbow


def test_elbow_marks_knee_and_chosen_k():
    elbow = make_elbow()
    fig = plots.plot_elbow(elbow, chosen_k=4, knee=3)
    ax_inertia, ax_silhouette = fig.axes
    assert ax_inertia.get_title() == "Elbow: inertia by k"
    assert ax_silhouette.get_title() == "Silhouette by k (higher is better)"

    knee_lines = vertical_lines_at(ax_inertia, 3)
    assert len(knee_lines) == 1 and knee_lines[0].get_linestyle() == "--"
    assert "knee k=3" in texts(ax_inertia)
    assert "chosen k=4" in texts(ax_inertia)
    assert "chosen k=4" in texts(ax_silhouette)

    # The chosen k is a separate star marker sitting on the curve, in both panels.
    for ax, column in ((ax_inertia, "inertia"), (ax_silhouette, "silhouette")):
        stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
        assert len(stars) == 1
        assert list(stars[0].get_xdata()) == [4]
        expected = elbow.loc[elbow["k"] == 4, column].item()
        assert stars[0].get_ydata()[0] == pytest.approx(expected)

    # Silhouette starts at k=2 (NaN at k=1 is not plotted).
    curve = ax_silhouette.get_lines()[0]
    assert list(curve.get_xdata()) == list(range(2, 9))


def test_elbow_without_knee_has_no_knee_line():
    fig = plots.plot_elbow(make_elbow(), chosen_k=4, knee=None)
    ax_inertia = fig.axes[0]
    assert not any(text.startswith("knee") for text in texts(ax_inertia))
    assert not [line for line in ax_inertia.get_lines() if line.get_linestyle() == "--"]
    assert "chosen k=4" in texts(ax_inertia)


def test_elbow_knee_equal_to_chosen_and_chosen_at_last_k():
    fig = plots.plot_elbow(make_elbow(), chosen_k=8, knee=8)
    ax_inertia = fig.axes[0]
    assert len(vertical_lines_at(ax_inertia, 8)) == 1
    assert {"knee k=8", "chosen k=8"} <= set(texts(ax_inertia))


# ------------------------------------------------------------------------------------ segments


def test_segments_two_features_uses_human_axis_labels_and_names():
    points, labels, centroids, _, _ = make_segments(n=300, n_features=2)
    fig = plots.plot_segments(points, labels, centroids, NAMES)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Annual income (k$)"
    assert ax.get_ylabel() == "Spending score (1-100)"
    assert "showing" not in ax.get_title()

    entries = legend_texts(ax.get_legend())
    for segment, name in NAMES.items():
        n = int((labels == segment).sum())
        assert f"{segment}: {name} (n={n:,})" in entries

    # All points drawn, one collection per segment, in that segment's colour.
    assert sum(len(c.get_offsets()) for c in ax.collections) == 300
    for segment, collection in zip(sorted(NAMES), ax.collections, strict=True):
        assert len(collection.get_offsets()) == int((labels == segment).sum())
        assert to_rgb(collection.get_facecolor()[0]) == pytest.approx(plots.segment_color(segment))

    # Centroids are X markers at the given centres (original units).
    crosses = [line for line in ax.get_lines() if line.get_marker() == "X"]
    drawn = sorted((line.get_xdata()[0], line.get_ydata()[0]) for line in crosses)
    expected = sorted(map(tuple, centroids.to_numpy()))
    assert np.allclose(drawn, expected)


def test_segments_more_than_two_features_uses_pca_axes():
    points, labels, centroids, scaled, scaled_centroids = make_segments(n=300, n_features=3)
    fig = plots.plot_segments(
        points, labels, centroids, NAMES, scaled=plots.ScaledView(scaled, scaled_centroids)
    )
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("PC1 (") and "% of variance" in ax.get_xlabel()
    assert ax.get_ylabel().startswith("PC2 (")
    assert sum(len(c.get_offsets()) for c in ax.collections) == 300
    assert len([line for line in ax.get_lines() if line.get_marker() == "X"]) == 3


def test_segments_more_than_two_features_needs_scaled_data():
    points, labels, centroids, _, _ = make_segments(n_features=3)
    with pytest.raises(ValueError, match="scaled"):
        plots.plot_segments(points, labels, centroids, NAMES)


@pytest.mark.parametrize("n_features", [2, 3])
def test_segments_downsamples_with_a_seed(n_features):
    points, labels, centroids, scaled, scaled_centroids = make_segments(
        n=1000, n_features=n_features
    )

    def draw(seed):
        fig = plots.plot_segments(
            points,
            labels,
            centroids,
            NAMES,
            scaled=plots.ScaledView(scaled, scaled_centroids),
            max_points=100,
            seed=seed,
        )
        return fig.axes[0]

    ax = draw(seed=0)
    assert sum(len(c.get_offsets()) for c in ax.collections) == 100
    assert "showing 100 of 1,000 customers" in ax.get_title()
    # Legend counts are over all customers, not the sample.
    n1 = int((labels == 1).sum())
    assert f"1: {NAMES[1]} (n={n1:,})" in legend_texts(ax.get_legend())

    def offsets(axes):
        return np.vstack([c.get_offsets() for c in axes.collections])

    assert np.array_equal(offsets(ax), offsets(draw(seed=0)))
    assert not np.array_equal(offsets(ax), offsets(draw(seed=1)))


# ------------------------------------------------------------------------------------ profiles


@pytest.mark.parametrize("k", [3, 10])
def test_profiles_has_four_panels_with_one_bar_per_segment(k):
    profiles = make_profiles(k)
    fig = plots.plot_profiles(profiles)
    assert len(fig.axes) == 4
    ids = [str(i) for i in range(1, k + 1)]
    for ax in fig.axes:
        assert len(ax.patches) == k
        assert [tick.get_text() for tick in ax.get_xticklabels()] == ids
        for segment, bar in enumerate(ax.patches, start=1):
            assert to_rgb(bar.get_facecolor()) == pytest.approx(plots.segment_color(segment))

    size_ax, age_ax = fig.axes[:2]
    assert [bar.get_height() for bar in size_ax.patches] == list(profiles["size"])
    assert [bar.get_height() for bar in age_ax.patches] == list(profiles["age_mean"])
    assert f"{profiles['share'].iloc[0]:.0%}" in texts(size_ax)

    (legend,) = fig.legends
    entries = legend_texts(legend)
    for segment, name in zip(profiles["segment_id"], profiles["segment_name"], strict=True):
        assert f"{segment}: {name}" in entries


def test_profiles_legend_fits_the_figure_for_ten_long_names():
    profiles = make_profiles(10)
    profiles["segment_name"] = [f"A rather long descriptive segment name {i}" for i in range(10)]
    fig = plots.plot_profiles(profiles)
    fig.draw_without_rendering()  # runs the constrained layout
    box = fig.legends[0].get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width


def test_profiles_rejects_missing_columns():
    with pytest.raises(ValueError, match="age_mean"):
        plots.plot_profiles(make_profiles().drop(columns=["age_mean"]))


# ------------------------------------------------------------------------------------ eda


def test_eda_has_four_panels_that_count_every_customer():
    customers = make_customers(500)
    fig = plots.plot_eda(customers)
    assert len(fig.axes) == 4
    assert fig.get_suptitle() == "Customer features (n=500)"

    histogram_axes = fig.axes[:3]
    for ax, column in zip(histogram_axes, (AGE, ANNUAL_INCOME, SPENDING_SCORE), strict=True):
        assert ax.get_xlabel() == plots.LABELS[column]
        (stairs,) = ax.patches
        counts = stairs.get_data().values
        assert counts.sum() == 500
        assert len(counts) <= plots.HIST_BINS

    gender_ax = fig.axes[3]
    expected = customers[GENDER].value_counts()
    assert [t.get_text() for t in gender_ax.get_xticklabels()] == ["Female", "Male"]
    assert [bar.get_height() for bar in gender_ax.patches] == [expected["Female"], expected["Male"]]


# ------------------------------------------------------------------------------------ a run


def test_run_figures_draws_every_plot_of_a_run_with_segments_under_their_stable_ids():
    points, provisional, _, scaled, _ = make_segments(n=300, n_features=2)
    keep = ~((provisional == 1) & (np.arange(300) % 2 == 0))  # segment sizes tell them apart
    points, provisional, scaled = (
        points[keep].reset_index(drop=True),
        provisional[keep],
        scaled[keep],
    )
    identity = Identity(ids=(3, 1, 2), kept_names={}, new_ids=(3, 1, 2), retired_ids=(), next_id=4)
    stable = identity.relabel(provisional)  # provisional segment 1 is segment 3 ...
    fitted = np.array([scaled[provisional == i].mean(axis=0) for i in (1, 2, 3)])
    no_moves = pd.DataFrame({"previous_segment_id": [], "segment_id": [], "customers": []})
    centroids = points.groupby(stable).mean()
    effects = pd.DataFrame(0.0, index=centroids.index, columns=centroids.columns)
    described = Described(
        identity, NAMES, centroids, None, make_profiles(), no_moves, None, {}, effects
    )
    figures = plots.run_figures(
        make_elbow(),
        KChoice(k=4, rule="knee", reason="", knee=3),
        Segmentation(provisional, fitted, np.zeros(len(points)), 1.0, 1),
        described,
        rows=plots.PlottedRows(customers=make_customers(), values=points, scaled=scaled),
        table=mall_table(),
        seed=0,
    )
    assert list(figures) == ["elbow.png", "segments.png", "profiles.png", "eda.png",
                             "transitions.png"]  # fmt: skip
    assert "chosen k=4" in texts(figures["elbow.png"].axes[0])
    entries = legend_texts(figures["segments.png"].axes[0].get_legend())[:3]  # then the centres
    assert entries == [f"{i}: {NAMES[i]} (n={int((stable == i).sum()):,})" for i in (1, 2, 3)]
    assert entries[2].endswith(f"(n={int((provisional == 1).sum())})")  # thinned out: 3 is 1


def test_segments_of_one_feature_are_strips_along_it():
    points, labels, centroids, _, _ = make_segments(n=300, n_features=1)
    fig = plots.plot_segments(points, labels, centroids, NAMES)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Annual income (k$)"
    assert ax.get_ylabel() == "Segment"
    assert [tick.get_text() for tick in ax.get_yticklabels()] == ["1", "2", "3"]
    for segment, collection in zip(sorted(NAMES), ax.collections, strict=True):
        xy = collection.get_offsets()
        assert np.array_equal(np.sort(xy[:, 0]), np.sort(points[ANNUAL_INCOME][labels == segment]))
        assert np.all(np.abs(xy[:, 1] - segment) <= 0.3)  # a strip at the segment's id
    crosses = sorted(
        (line.get_ydata()[0], line.get_xdata()[0])
        for line in ax.get_lines()
        if line.get_marker() == "X"
    )
    assert np.allclose(crosses, [(s, centroids.loc[s, ANNUAL_INCOME]) for s in (1, 2, 3)])
    assert plots.figure_to_png(fig).startswith(PNG_SIGNATURE)


# ------------------------------------------------------------------------------------ hostile text

HOSTILE_VALUES = ["$a$", "b_$", "\\$c^{d}$"]


def hostile_table():
    """Headers and categorical values full of ``$ _ ^ \\ { }`` (pairs of ``$`` included)."""
    rng = np.random.default_rng(3)
    n = 90
    customers = pd.DataFrame(
        {
            "id": [str(i) for i in range(n)],
            "income_$": rng.normal(50, 10, n),
            "spend_$": rng.normal(50, 10, n),
            "a^b \\c {d}": rng.normal(5, 1, n),
            "kind {$}": rng.choice(HOSTILE_VALUES, n),
        }
    )
    spec = TableSpec(
        features=("income_$", "spend_$", "a^b \\c {d}"),
        profile=("kind {$}",),
        columns={"spend_$": ColumnSpec(unit="k$", label="spend_$ {x}")},
    )
    return resolve_table(list(customers.columns), customers.astype("str"), spec), customers


def drawn_texts(fig: Figure) -> list[Text]:
    """Every text of ``fig`` once drawn (tick labels are made while drawing)."""
    assert plots.figure_to_png(fig).startswith(PNG_SIGNATURE)
    return [text for text in fig.findobj(Text) if text.get_text()]


def hostile_figures() -> dict[str, Figure]:
    table, customers = hostile_table()
    labels = plots.column_labels(table)
    features = list(table.feature_names)
    segment = np.arange(len(customers)) % 3 + 1
    points = customers[features]
    names = {1: "High income_$, low spend_$", 2: "$x^2$ \\alpha", 3: "{braces} ^caret"}
    profiles = make_profiles(3).assign(
        segment_name=list(names.values()), **{f"{c}_mean": [1.0, 2.0, 3.0] for c in features}
    )
    moves = pd.DataFrame(
        {"previous_segment_id": [1, 2, 3], "segment_id": [1, 3, 2], "customers": [5, 6, 7]}
    )
    scaled = StandardScaler().fit_transform(points)
    figures = {
        f"segments-{n}": plots.plot_segments(
            points.iloc[:, :n],
            segment,
            points.iloc[:, :n].groupby(segment).mean(),
            names,
            scaled=plots.ScaledView(
                scaled, pd.DataFrame(scaled).groupby(segment).mean().to_numpy()
            ),
            column_names=labels,
        )
        for n in (1, 2, 3)  # a strip, two features, a PCA view
    }
    return figures | {
        "profiles": plots.plot_profiles(profiles, features, labels),
        "eda": plots.plot_eda(customers, table),
        "transitions": plots.plot_transitions(moves, names),
    }


def test_every_text_on_a_figure_is_drawn_literally_never_as_math():
    """A header like ``income_$`` beside ``spend_$`` is not TeX math between the two ``$``
    (it crashed the run), nor is a name or value: each text keeps its string as written."""
    figures = hostile_figures()
    shown = {name: drawn_texts(fig) for name, fig in figures.items()}
    for name, texts_of in shown.items():
        assert all(not text.get_parse_math() for text in texts_of), name
    everything = " | ".join(t.get_text() for texts_of in shown.values() for t in texts_of)
    for expected in [
        "income_$",
        "Spend_$ {x} (k$)",
        "A^b \\c {d}",
        "$x^2$ \\alpha",
        "{braces} ^caret",
        *HOSTILE_VALUES,
    ]:
        assert expected in everything, expected


def test_a_tab_or_other_control_character_is_drawn_as_its_escape_not_a_missing_glyph():
    rng = np.random.default_rng(4)
    customers = pd.DataFrame(
        {
            "id": [str(i) for i in range(40)],
            "in\tcome": rng.normal(50, 10, 40),
            "kind": rng.choice(["a\tb", "bell\x07"], 40),
        }
    )
    spec = TableSpec(features=("in\tcome",), profile=("kind",))
    table = resolve_table(list(customers.columns), customers.astype("str"), spec)
    points = customers[["in\tcome"]]
    segment = np.arange(40) % 2 + 1
    names = {1: "low\tin\x07come", 2: "high"}
    profiles = make_profiles(2).assign(segment_name=list(names.values()), **{"in\tcome_mean": 1.0})
    moves = pd.DataFrame({"previous_segment_id": [1], "segment_id": [2], "customers": [5]})
    figures = [
        plots.plot_eda(customers, table),
        plots.plot_segments(points, segment, points.groupby(segment).mean(), names),
        plots.plot_profiles(profiles, ["in\tcome"]),
        plots.plot_transitions(moves, names),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph 9 (\t) missing from font(s)" was a warning
        everything = " | ".join(t.get_text() for fig in figures for t in drawn_texts(fig))
    for expected in ["In\\tcome", "a\\tb", "bell\\x07", "in\\tcome", "low\\tin\\x07come"]:
        assert expected in everything, expected
