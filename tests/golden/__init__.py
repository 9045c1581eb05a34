"""The golden output file of the round: a seeded scenario, its recorded outputs, and the replay
that compares them record by record (``tests/unit/test_golden.py``; re-record with
``python -m tests.golden.record``)."""
