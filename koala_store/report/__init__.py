"""What a person reads about a replay run: values in JSON notation, body diffs, and the
self-contained HTML report (koala_store.report.html)."""
