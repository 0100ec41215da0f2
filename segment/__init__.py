"""The command line and the plan of a run, before any orchestration: ``segment.cli`` (the
``segment`` commands and the options generated from the settings), ``segment.settings`` (the
one settings model) and ``segment.plan`` (what a run will do, resolved and checked up front).
Neither the settings nor the plan imports Prefect; the flows in ``flows/`` run the plan."""
