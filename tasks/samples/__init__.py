"""Generated data with known, planted segments: the default customers, other customer
tables, order lines."""
