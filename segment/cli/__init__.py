"""The ``segment`` command line: its commands (``main``), the options generated from the
settings model (``options``) and how a signal stops a run (``signals``)."""
