"""What a run shows people: plots, report.html (with ``explain``'s numbers) and the Prefect
UI's artifacts."""
