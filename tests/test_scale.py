"""Tests for tasks.scale: feature selection, the four scalers and their inverses."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from schemas.columns import AGE, ANNUAL_INCOME, GENDER, SPENDING_SCORE
from schemas.spec import parse_spec
from tasks.scale import FeatureTransform, feature_frame, fit_transforms, scale_features
from tasks.table import resolve_table


def customers(**overrides) -> pd.DataFrame:
    """Five clean customers with hand-checkable numbers."""
    data = {
        "customer_id": pd.Series(["1", "2", "3", "4", "5"], dtype="str"),
        GENDER: pd.Series(["Female", "Male", "Female", "Female", "Male"], dtype="str"),
        AGE: [20.0, 30.0, 40.0, 50.0, 60.0],
        # log1p of these is log(1), log(2), log(4), log(8), log(16): equally spaced
        ANNUAL_INCOME: [0.0, 1.0, 3.0, 7.0, 15.0],
        SPENDING_SCORE: [1.0, 2.0, 3.0, 4.0, 100.0],
    }
    data.update(overrides)
    return pd.DataFrame(data)


NUMERIC = [ANNUAL_INCOME, SPENDING_SCORE, AGE]


def test_standard_scaler_gives_mean_zero_and_std_one():
    scaled = scale_features(customers(), [AGE], "standard")
    # age 20..60: mean 40, population std sqrt(200)
    assert scaled.transforms[0].center == pytest.approx(40.0)
    assert scaled.transforms[0].scale == pytest.approx(np.sqrt(200.0))
    expected = np.array([-2, -1, 0, 1, 2]) * 10 / np.sqrt(200.0)
    np.testing.assert_allclose(scaled.matrix[:, 0], expected, atol=1e-12)
    full = scale_features(customers(), NUMERIC, "standard").matrix
    np.testing.assert_allclose(full.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(full.std(axis=0), 1.0)


def test_robust_scaler_gives_median_zero_and_iqr_one():
    scaled = scale_features(customers(), [SPENDING_SCORE], "robust")
    # score 1, 2, 3, 4, 100: median 3, quartiles 2 and 4; the outlier does not move them
    assert (scaled.transforms[0].center, scaled.transforms[0].scale) == (3.0, 2.0)
    np.testing.assert_allclose(scaled.matrix[:, 0], [-1.0, -0.5, 0.0, 0.5, 48.5])
    full = scale_features(customers(), NUMERIC, "robust").matrix
    np.testing.assert_allclose(np.median(full, axis=0), 0.0, atol=1e-12)
    q1, q3 = np.percentile(full, [25, 75], axis=0)
    np.testing.assert_allclose(q3 - q1, 1.0)


def test_minmax_scaler_maps_to_zero_one():
    scaled = scale_features(customers(), [ANNUAL_INCOME, AGE], "minmax")
    np.testing.assert_allclose(scaled.matrix[:, 0], np.array([0, 1, 3, 7, 15]) / 15)
    np.testing.assert_allclose(scaled.matrix[:, 1], [0.0, 0.25, 0.5, 0.75, 1.0])
    assert scaled.matrix.min(axis=0).tolist() == [0.0, 0.0]
    assert scaled.matrix.max(axis=0).tolist() == [1.0, 1.0]


def test_log_standard_logs_every_column_without_negative_values_then_standardises():
    # any table: no unit or spec needed; a column with a negative value is left as it is
    frame = customers(**{AGE: [-20.0, 30.0, 40.0, 50.0, 60.0]})
    scaled = scale_features(frame, NUMERIC, "log-standard")
    income, score, age = scaled.transforms
    assert (income.log, score.log, age.log) == (True, True, False)
    assert (income.kind, score.kind, age.kind) == ("log1p", "log1p", "none")
    # log1p(income) is equally spaced, so its z-scores equal those of 0, 1, 2, 3, 4
    expected = (np.arange(5) - 2) / np.sqrt(2.0)
    np.testing.assert_allclose(scaled.matrix[:, 0], expected, atol=1e-12)
    assert income.center == pytest.approx(2 * np.log(2))
    # the column with a negative value is scaled exactly as the standard scaler does
    standard = scale_features(frame, NUMERIC, "standard").matrix
    np.testing.assert_allclose(scaled.matrix[:, 2], standard[:, 2])


@pytest.mark.parametrize("scaler", ["standard", "robust", "minmax", "log-standard"])
def test_invert_undoes_apply(scaler):
    values = customers()[NUMERIC]
    for transform in fit_transforms(values, scaler):
        x = values[transform.column].to_numpy()
        np.testing.assert_allclose(transform.invert(transform.apply(x)), x, atol=1e-12)


def test_feature_transform_formula_with_log():
    transform = FeatureTransform("annual_income", log=True, center=1.0, scale=2.0)
    x = np.array([0.0, np.e - 1])  # log1p: 0 and 1
    np.testing.assert_allclose(transform.apply(x), [-0.5, 0.0])
    np.testing.assert_allclose(transform.invert(np.array([-0.5, 0.0])), x)


@pytest.mark.parametrize("scaler", ["standard", "robust", "minmax", "log-standard"])
def test_constant_column_does_not_divide_by_zero(scaler):
    frame = customers(**{AGE: [33.0] * 5, ANNUAL_INCOME: [7.0] * 5})
    with np.errstate(all="raise"):
        scaled = scale_features(frame, [AGE, ANNUAL_INCOME], scaler)
    assert np.isfinite(scaled.matrix).all()
    np.testing.assert_array_equal(scaled.matrix, 0.0)
    assert [t.scale for t in scaled.transforms] == [1.0, 1.0]


def test_gender_becomes_female_and_male_zero_one_columns():
    frame = feature_frame(customers(), [GENDER])
    assert list(frame.columns) == ["gender_Female", "gender_Male"]
    assert frame["gender_Female"].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert frame["gender_Male"].tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]
    scaled = scale_features(customers(), [GENDER, AGE], "minmax")
    assert scaled.columns == ("gender_Female", "gender_Male", AGE)
    # centred on the shares (3/5 female) and scaled together: whatever the scaler, the two
    # columns of one categorical feature have a total variance of 1
    shares = np.array([0.6, 0.4])
    expected = (frame.to_numpy() - shares) / np.sqrt(np.sum(shares * (1 - shares)))
    np.testing.assert_allclose(scaled.matrix[:, :2], expected)
    assert scaled.matrix[:, :2].var(axis=0).sum() == pytest.approx(1.0)


def test_values_keep_the_one_hot_columns_of_the_scaling_for_customers_without_a_value():
    table = resolve_table(
        list(customers()), customers(), parse_spec('features = ["gender", "age"]')
    )
    scaled = scale_features(customers(), None, "standard", table)
    women = customers().iloc[[0, 2]]  # no "Male" among them
    values = scaled.values(women, table)
    assert list(values.columns) == ["gender_Female", "gender_Male", AGE]
    assert values["gender_Male"].tolist() == [0.0, 0.0]
    assert list(feature_frame(women, None, table).columns) == ["gender_Female", AGE]


def test_a_categorical_feature_weighs_as_much_as_one_numeric_feature_however_many_values():
    rng = np.random.default_rng(0)
    data = customers()
    many = pd.DataFrame(
        {
            "customer_id": [str(i) for i in range(600)],
            GENDER: rng.choice(["Female", "Male"], 600),
            AGE: rng.normal(40, 10, 600),
            ANNUAL_INCOME: rng.normal(60, 20, 600),
            SPENDING_SCORE: rng.uniform(1, 100, 600),
        }
    ).astype({"customer_id": "str", GENDER: "str"})
    scaled = scale_features(many, [GENDER, AGE], "standard")
    variances = scaled.matrix.var(axis=0)
    assert variances[:2].sum() == pytest.approx(1.0)  # gender as a whole
    assert variances[2] == pytest.approx(1.0)  # age
    assert len(data) == 5


def test_unknown_feature_raises_value_error():
    with pytest.raises(ValueError, match="unknown features"):
        scale_features(customers(), [AGE, "height"])


def test_no_feature_raises_value_error():
    with pytest.raises(ValueError, match="at least one feature"):
        scale_features(customers(), [])


def test_unknown_scaler_raises_value_error():
    with pytest.raises(ValueError, match="unknown scaler 'zscore'"):
        scale_features(customers(), [AGE], "zscore")


def test_matrix_is_c_contiguous_float64_in_requested_column_order():
    features = [SPENDING_SCORE, AGE, ANNUAL_INCOME]
    scaled = scale_features(customers(), features, "minmax")
    assert scaled.matrix.dtype == np.float64
    assert scaled.matrix.flags["C_CONTIGUOUS"]
    assert scaled.matrix.shape == (5, 3)
    assert scaled.columns == tuple(features)
    assert [t.column for t in scaled.transforms] == features
    assert scaled.scaler == "minmax"
    # the first column really is the spending score: 1..4 then 100
    np.testing.assert_allclose(scaled.matrix[:, 0], np.array([0, 1, 2, 3, 99]) / 99)


@pytest.mark.parametrize("magnitude", [1.0, 1e160])
def test_moments_of_parts_combine_to_the_moments_of_the_whole(magnitude):
    from tasks.scale import Moments

    rng = np.random.default_rng(1)
    whole = pd.DataFrame({"a": rng.normal(5, 2, 1000) * magnitude, "b": rng.gamma(2, 3, 1000)})
    cuts = [0, 1, 400, 400, 1000]  # parts of one row and of none, too
    parts = [Moments.of(whole.iloc[lo:hi]) for lo, hi in itertools.pairwise(cuts)]
    combined, direct = Moments.combine(parts), Moments.of(whole)
    for j, column in enumerate(whole.columns):
        center, scale = combined.center_and_scale(j)
        unit = magnitude if column == "a" else 1.0  # pandas' own std overflows at 1e160
        assert center == pytest.approx((whole[column] / unit).mean() * unit, rel=1e-12)
        assert scale == pytest.approx((whole[column] / unit).std(ddof=0) * unit, rel=1e-12)
        assert direct.center_and_scale(j) == pytest.approx((center, scale), rel=1e-12)
    assert combined.low.tolist() == whole.min().tolist()
    assert combined.high.tolist() == whole.max().tolist()


def test_transforms_from_partition_statistics_equal_the_in_memory_fit():
    from tasks.scale import Moments, finish_transforms, fit_shapes, fit_transforms, prepare_frame

    rng = np.random.default_rng(2)
    customers = pd.DataFrame(
        {"annual_income": rng.gamma(3, 20, 900), "spending_score": rng.uniform(1, 100, 900)}
    )
    for scaler in ("standard", "minmax", "log-standard"):
        expected = fit_transforms(customers, scaler)
        shapes = fit_shapes(customers, scaler)
        parts = [customers.iloc[i : i + 300] for i in range(0, 900, 300)]
        moments = Moments.combine([Moments.of(prepare_frame(p, shapes)) for p in parts])
        got = finish_transforms(shapes, moments, prepare_frame(customers, shapes), scaler)
        for mine, theirs in zip(got, expected, strict=True):
            assert mine.column == theirs.column and mine.log == theirs.log
            assert mine.center == pytest.approx(theirs.center, rel=1e-12)
            assert mine.scale == pytest.approx(theirs.scale, rel=1e-12)


def test_the_scaling_log_line_names_the_transforms_applied_first(caplog):
    customers = pd.DataFrame(
        {ANNUAL_INCOME: [15.0, 40.0, 70.0, 137.0], SPENDING_SCORE: [39.0, 81.0, 6.0, 77.0]}
    )
    with caplog.at_level("INFO", logger="tasks.scale"):
        scale_features(customers, (ANNUAL_INCOME, SPENDING_SCORE), "log-standard")
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Scaled"))
    assert "log-standard scaler (log1p on annual_income, log1p on spending_score first)" in line


def test_a_constant_feature_is_refused_with_its_value_as_written_not_a_python_repr():
    from tasks.errors import InputError
    from tasks.scale import check_features_vary

    table = resolve_table(["id", "spend", "visits"], None, parse_spec('features = ["spend"]'))
    customers = pd.DataFrame({"spend": np.full(4, 1.0), "visits": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(InputError) as error:
        check_features_vary(customers, table)
    message = str(error.value)
    assert "has one value (1) for all 4 valid customers" in message
    assert "np." not in message and "float64" not in message
