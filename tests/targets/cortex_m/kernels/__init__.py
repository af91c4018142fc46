"""Kernel tests, one module per operator family (a package: its module names, test_lstm.py say,
do not clash with test modules of the same name elsewhere under tests/)."""
