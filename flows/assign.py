"""The `assign-segments` flow: score a day's new customers into the latest run's segments.

A deployment runs it after the nightly re-segmentation, e.g. with ``model`` =
``outputs/latest`` and ``input`` = the day's file; it writes the assigned customers and the
quarantine beside them, as ``segment assign`` does. (``segment assign`` calls the same task
functions without Prefect: no server to start, which would cost more than scoring a million
customers.)
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.run_folder import configure_run_logging, fails_without_persisting, pipeline_task
from segment.settings import SegmentationSettings
from tasks.reporting.artifacts import assignment_markdown
from tasks.scoring.assign import (
    Model,
    assign_customers,
    read_model,
    read_new_customers,
    write_assignment,
)
from tasks.scoring.assign_lines import (
    LineOptions,
    NewOrderLines,
    assign_order_lines,
    read_new_order_lines,
)
from tasks.scoring.export import check_output_path
from tasks.table import ColumnPlan

load_model_task = pipeline_task("load-model")(read_model)
assign_task = pipeline_task("assign-customers")(assign_customers)
write_task = pipeline_task("write-assignments")(write_assignment)


# A wrapper for its return type: read_new_customers declares none.
@pipeline_task("read-new-customers")
def read_customers_task(
    source: Path, model: Model, sep: str | None
) -> tuple[pd.DataFrame, ColumnPlan]:
    """The new customers, their headers matched to the model's table."""
    return read_new_customers(source, model, sep)


@pipeline_task("read-new-order-lines")
def read_lines_task(
    source: Path, model: Model, sep: str | None, options: LineOptions
) -> NewOrderLines:
    """New order lines, derived into customers as the model's run derived its own."""
    return read_new_order_lines(source, model, sep, options)


assign_lines_task = pipeline_task("assign-customers")(assign_order_lines)


@flow(name="assign-segments", log_prints=True, persist_result=False)
@fails_without_persisting  # a failed run writes no pickle of its exception either
def assign_segments(
    model: Path,
    input: Path,  # noqa: A002 - the deployment parameter's name, as the CLI's --input
    output: Path,
    sep: str | None = None,
    max_quarantine_share: float | None = SegmentationSettings().max_quarantine_share,
    transactions: bool = False,
    as_of: date | None = None,
    date_format: str | None = None,
) -> dict:
    """Assign the customers of ``input`` to the segments of ``model`` (a run folder such as
    outputs/latest, or its model.json); write ``output`` (.parquet or .csv) and its
    quarantine. ``transactions``: ``input`` is order lines, derived as the model's run did
    (``as_of``, ``date_format``: as ``segment assign``'s options). Returns the row accounting
    and the files written (order lines: with their line accounting)."""
    configure_run_logging()
    output = check_output_path(output)
    loaded = load_model_task(model)
    if transactions:
        new = read_lines_task(input, loaded, sep, LineOptions(as_of, date_format))
        assignment = assign_lines_task(
            new, loaded, source=str(input), max_quarantine_share=max_quarantine_share
        )
    else:
        frame, table = read_customers_task(input, loaded, sep)
        assignment = assign_task(
            frame, loaded, table, source=str(input), max_quarantine_share=max_quarantine_share
        )
    written, quarantine = write_task(assignment, output)
    summary = {
        **assignment.accounting(),
        "outliers": assignment.outliers,
        "segments": assignment.sizes(),
        "model": str(loaded.path),
        "output": str(written),
        "quarantine": str(quarantine),
    }
    if assignment.order_lines is not None:
        summary["lines"] = assignment.order_lines["lines"]
    create_markdown_artifact(
        key="assign-segments-summary",
        markdown=assignment_markdown(summary, loaded.names),
        description="New customers assigned to the latest run's segments",
    )
    get_run_logger().info("Assigned %d customers to %s", assignment.rows_kept, written)
    return summary
