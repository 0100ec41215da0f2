"""The contracts schemas/ builds from a column plan: here the profiles table's, whose columns
depend on the plan (and, for a column without allowed values or a 0/1 flag, on the values)."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from schemas.outputs import profiles_schema
from schemas.spec import parse_spec
from tasks.table import mall_table, resolve_table

REFUSED = (pa.errors.SchemaError, pa.errors.SchemaErrors)  # a column not in the schema: Errors


def mall_profiles() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "segment_id": [1, 2],
            "segment_name": ["Low income", "High income"],
            "size": [3, 1],
            "share": [0.75, 0.25],
            "gender_Female_share": [1 / 3, 1.0],
            "gender_Male_share": [2 / 3, 0.0],
            **{
                f"{name}_{statistic}": [10.0, 20.0]
                for name in ("age", "annual_income", "spending_score")
                for statistic in ("mean", "median")
            },
        }
    )


def test_mall_profiles_validate_with_or_without_summary_and_stability():
    schema = profiles_schema(mall_table())
    schema.validate(mall_profiles())
    schema.validate(mall_profiles().assign(summary=["a", "b"], stability=[0.9, 1.0]))


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.drop(columns="gender_Male_share"),  # every allowed value has its share
        lambda p: p.drop(columns="age_median"),  # every numeric column its mean and median
        lambda p: p.assign(gender_Other_share=0.0),  # no value outside the allowed ones
        lambda p: p.assign(age_1_share=0.5),  # age is no 0/1 flag in the Mall plan
        lambda p: p.assign(region="North"),  # strict: no column the plan does not make
        lambda p: p.assign(age_mean=[10.0, None]),  # age is never missing in a clean row
        lambda p: p.assign(share=[1.5, 0.25]),
    ],
)
def test_mall_profiles_schema_refuses_what_a_mall_run_cannot_write(change):
    with pytest.raises(REFUSED):
        profiles_schema(mall_table()).validate(change(mall_profiles()))


def test_shares_of_found_values_are_checked_for_columns_without_allowed_values():
    spec = parse_spec('id_column = "none"\nfeatures = ["spend"]\nprofile = ["region", "member"]')
    values = pd.DataFrame(
        {"spend": ["1", "2"], "region": ["North", "South\n($)"], "member": ["0", "1"]}
    )
    table = resolve_table(list(values.columns), values, spec)
    profiles = pd.DataFrame(
        {
            "segment_id": [1],
            "segment_name": ["All"],
            "size": [2],
            "share": [1.0],
            "spend_mean": [1.5],
            "spend_median": [1.5],
            "region_North_share": [0.5],
            "region_South\n($)_share": [0.5],  # values as found, line breaks and all
            "member_mean": [None],  # a profile column may be missing in every row of a segment
            "member_median": [None],
            "member_0_share": [0.5],
            "member_1_share": [0.5],
        }
    )
    schema = profiles_schema(table)
    schema.validate(profiles)
    with pytest.raises(REFUSED):
        schema.validate(profiles.assign(region_North_share=1.5))
    with pytest.raises(REFUSED):
        schema.validate(profiles.assign(spend_1_share=0.5))  # a feature is never a flag
