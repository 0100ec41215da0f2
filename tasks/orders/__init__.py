"""Order lines -> one row per customer (recency, frequency, monetary value), RFM scores and
the derived table's spec."""
