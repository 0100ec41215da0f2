"""The pipeline's steps as plain functions (no Prefect here: the flows in ``flows/`` call them).

The stages, in the order a run takes them: ``ingest`` (read a file; ``table`` decides which
columns play which role), ``clean`` (validate, quarantine, drop duplicates), ``scale``,
``elbow`` (sweep k and choose it), ``fit`` (K-Means), ``identity`` (keep ids and names across
runs), ``describe`` and ``profile`` (segments table, names, profiles), ``gates`` (quality
gates), ``model`` (model.json), then ``reporting/`` (plots, report.html, Prefect artifacts).
Beside them: ``orders/`` (order lines -> one row per customer: RFM), ``scoring/`` (``segment
assign``), ``partitioned`` (the same stages on Dask collections), ``spec_init`` (``segment
init``), ``sample_data`` (the default customers, with planted segments), and ``store/`` (the
run store's plumbing: run folders and their lock, manifest, history, snapshots, retries, memory).
"""
