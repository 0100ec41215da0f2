"""The run store's plumbing: run folders and the output lock (``run_files``, ``runlock``),
the checks that keep its paths from being written through links (``paths``), the manifest,
the previous run (``history``), dated input snapshots, transient-error retries, and returning
freed memory."""
