"""The ground every other package stands on: the exception root and the settings object.

It imports nothing of the project; :mod:`schemas`, :mod:`scorers`, :mod:`streams` and the
:mod:`crm_score` CLI import it (``tests/unit/test_import_rules.py`` holds that order).
"""
