"""segment.cli.options: the command-line options, their parsing and the README's option table are
generated from the settings model (each setting declared once)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from flows.deployment import _parser as serve_parser
from segment.cli.options import (
    add_options,
    given_settings,
    option_specs,
    options_markdown,
    usage_error,
)
from segment.settings import SegmentationSettings

README = Path(__file__).resolve().parents[1] / "README.md"


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths = set()
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            paths |= _leaves(kind, (*prefix, name))
        else:
            paths.add((*prefix, name))
    return paths


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segment run", exit_on_error=False)
    add_options(parser, SegmentationSettings)
    return parser


def _settings(argv: list[str]) -> SegmentationSettings:
    args = _run_parser().parse_args(argv)
    return SegmentationSettings.model_validate(given_settings(args, SegmentationSettings))


def test_every_setting_has_exactly_one_option_with_its_help():
    specs = option_specs(SegmentationSettings)
    assert {s.path for s in specs} == _leaves(SegmentationSettings)
    flags = [s.flag for s in specs]
    assert len(flags) == len(set(flags))
    assert all(s.help for s in specs), [s.flag for s in specs if not s.help]
    # the existing spellings stay (scripts and the acceptance checks call them)
    for flag in ("--input", "--output", "--column", "--sweep", "--gate-silhouette-floor",
                 "--k-margin", "--identity-max-shift", "--dask-address", "--transactions",
                 "--as-of", "--date-format", "--features", "--profile", "--id-column"):  # fmt: skip
        assert flag in flags


def test_no_options_give_the_models_defaults():
    assert _settings([]) == SegmentationSettings()
    assert given_settings(_run_parser().parse_args([]), SegmentationSettings) == {}


def test_options_fill_nested_settings():
    settings = _settings(
        [
            "--sweep",
            "2-8",
            "--gate-silhouette-floor",
            "off",
            "--gate-max-moved-share",
            "0.4",
            "--dask-address",
            "tcp://10.0.0.5:8786",
            "--column",
            "age=Alter",
            "--column",
            "annual_income=Income",
            "--features",
            "age",
            "annual_income",
            "--k-margin",
            "0.1",
            "--transactions",
            "--as-of",
            "2026-11-01",
            "--output",
            "out",
            "--sweep-sample-size",
            "5000",
            "--sweep-sample-threshold",
            "6000",
        ]
    )
    assert settings.sweep.k_range == (2, 8) and settings.k_values == range(2, 9)
    assert settings.gates.silhouette_floor is None and settings.gates.max_moved_share == 0.4
    assert settings.gates.min_segment_share == 0.01  # not given: the default
    assert settings.dask.address == "tcp://10.0.0.5:8786"
    assert settings.columns == {"age": "Alter", "annual_income": "Income"}
    assert settings.features == ["age", "annual_income"]
    assert settings.identity.k_margin == 0.1 and settings.transactions
    assert str(settings.as_of) == "2026-11-01"
    assert settings.output_dir == Path("out").absolute()  # paths absolute, as the run stores them
    assert (settings.sweep.sample_size, settings.sweep.sample_threshold) == (5000, 6000)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--gate-silhouette-floor", "2"], "--gate-silhouette-floor: Input should be less than"),
        (["--k", "0"], "--k: Input should be greater than or equal to 1"),
        (["--sweep", "5-3"], "--sweep: 5-3: needs 1 <= LOW <= HIGH"),
        (["--k-min", "5", "--k-max", "3"], "--k-min 5 > --k-max 3"),
        (["--features", "a", "a"], "--features listed twice: ['a', 'a']"),
        (["--sweep-sample-size", "300000"], "--sweep-sample-size 300000 > --sweep-sample-thr"),
        (["--publish-db", "segments.db"], "--publish-db: expected a database URL such as sqlite"),
    ],
)
def test_invalid_values_name_the_option(argv, expected):
    with pytest.raises(ValidationError) as caught:
        _settings(argv)
    assert usage_error(caught.value, SegmentationSettings).startswith(expected)


@pytest.mark.parametrize("argv", [["--sweep", "a-b"], ["--column", "noequals"], ["--k", "x"]])
def test_unparseable_options_are_argparse_errors(argv):
    with pytest.raises(argparse.ArgumentError):
        _run_parser().parse_args(argv)


def test_serve_takes_the_same_settings_as_run():
    args = serve_parser("segment serve").parse_args(
        ["--cron", "0 3 * * *", "--k", "4", "--gate-max-moved-share", "off", "--sweep", "2-6"]
    )
    settings = SegmentationSettings.model_validate(given_settings(args, SegmentationSettings))
    assert (settings.k, settings.gates.max_moved_share, settings.sweep.k_range) == (4, None, (2, 6))
    run_flags = {s.flag for s in option_specs(SegmentationSettings)}
    serve_flags = {f for a in serve_parser("segment serve")._actions for f in a.option_strings}
    # a nightly run names its own folder and runs in the worker's process
    assert run_flags - serve_flags == {"--run-id", "--runner", "--dask-address", "--dask-workers"}


def test_readme_option_table_is_the_generated_one():
    """The README's table is generated (`python -m segment.cli.options`): it cannot drift from
    `segment run --help`."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- options:begin -->\n(.*?)\n<!-- options:end -->", text, re.S)
    assert block is not None, "README has no generated option table"
    assert block.group(1) == options_markdown(SegmentationSettings), (
        "README's option table is out of date: run `.venv/bin/python -m segment.cli.options` and "
        "paste its output between the markers"
    )


def test_segment_run_help_lists_every_generated_option():
    from segment.cli.main import _parser

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = commands.choices["run"].format_help()
    for spec in option_specs(SegmentationSettings):
        assert spec.flag in text
    assert "--quiet" in text and "(default: 0.01)" in text


def test_the_deployment_form_is_generated_from_the_same_fields():
    """The Prefect UI builds the deployment's parameter form from the flow's parameter schema:
    the settings model's fields, nested groups and descriptions."""
    from prefect.utilities.callables import parameter_schema

    from flows.segmentation import segment_customers

    schema = parameter_schema(segment_customers).model_dump_for_openapi()
    definitions = schema["definitions"]
    settings = definitions["SegmentationSettings"]["properties"]
    assert set(settings) == set(SegmentationSettings.model_fields)
    gates = definitions["Gates"]["properties"]
    floor = SegmentationSettings.model_fields["gates"].default_factory().silhouette_floor
    assert gates["silhouette_floor"]["default"] == floor
    assert (
        gates["silhouette_floor"]["description"]
        == (
            SegmentationSettings.model_fields["gates"].annotation.model_fields["silhouette_floor"]
        ).description
    )
