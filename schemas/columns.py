"""The names of the columns a run reads and writes: defined here once, imported everywhere."""

CUSTOMER_ID = "customer_id"  # the id's name in every table a run writes
SOURCE_ROW = "source_row"  # 1-based data row in the input file (row 1 = first row after the header)
SEGMENT_ID = "segment_id"
PREVIOUS_SEGMENT_ID = "previous_segment_id"
SEGMENT_NAME = "segment_name"
DISTANCE = "distance_to_centroid"
OUTLIER = "outlier"
REASON = "reason"  # a quarantined row's every failed check

# The Mall preset's columns (schemas/presets/mall.toml): the plots give them their classic labels.
GENDER = "gender"
AGE = "age"
ANNUAL_INCOME = "annual_income"
SPENDING_SCORE = "spending_score"
