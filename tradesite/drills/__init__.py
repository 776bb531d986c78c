"""Fault drills (issue 21): the stack's processes started on their own on 127.0.0.1 with a
private Redis and a scratch SQLite database; each drill injects one fault and checks that the
stack heals by itself. ``make drills`` / ``python -m tradesite.drills``; see README "Fault drills".

- :mod:`tradesite.drills.stack`: the processes (subprocesses in their own process groups).
- :mod:`tradesite.drills.checks`: candle comparison, ``/health``, login, chart sockets.
- :mod:`tradesite.drills.ledger`: signal outcomes against order rows, a live account's order
  rows against the simulator's own order list; the live account and manual live orders.
- :mod:`tradesite.drills.drills`, :mod:`~tradesite.drills.kills`,
  :mod:`~tradesite.drills.order_drills`: the drills themselves.
- :mod:`tradesite.drills.runner`: set-up, the drills in order, one line each, exit status.
"""
