"""Fault drills (issue 21): the stack's processes started on their own on 127.0.0.1 with a
private Redis and a scratch SQLite database; each drill injects one fault and checks that the
stack heals by itself. ``make drills`` / ``python -m tradesite.drills``; see README "Fault drills".

- :mod:`tradesite.drills.stack`: the processes (subprocesses in their own process groups).
- :mod:`tradesite.drills.checks`: candle comparison, ``/health``, login, chart sockets.
- :mod:`tradesite.drills.drills`: the drills themselves.
- :mod:`tradesite.drills.runner`: set-up, one line per drill, exit status.
"""
