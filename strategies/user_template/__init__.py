"""The files ``manage.py new_strategy`` writes: a strategy module and its test (``*.py.tmpl``)."""
