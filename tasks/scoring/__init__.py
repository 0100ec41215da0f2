"""``segment assign``: new customers scored into a finished run's segments, and the export
of the result (Parquet, or spreadsheet-safe CSV)."""
