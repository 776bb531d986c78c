"""The worker processes of ``bench scale``: each runs ``orders.evaluation.evaluate_bar`` for
the (symbol, bar) jobs the stream sends (a Celery trader worker without the broker hop) and
reports the commit time of each order row it saves, and for live orders what
:mod:`bench.scale_live` times. Not a benchmark module of its own."""

from __future__ import annotations

import os
import time


def worker_main(database_url: str, jobs, done) -> None:
    """The worker process: ``evaluate_bar`` for each ``("eval", (symbol, bar))`` job, the
    commit time of each order row it saves sent back (wall ms), and for live orders the commit
    of the venue's answer (:mod:`bench.scale_live`); ``("warm", account id)`` warms the live
    path. Like one Celery worker, without the broker."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
    import django

    django.setup()
    from django.db import connection, transaction

    from bench import scale_live
    from bench.bench_trading import _inserted_rows, _strategy
    from orders import evaluation

    _strategy()
    from orders.tasks import warm_trading_path

    warm_trading_path()  # as a Celery worker does before its pool starts (worker_init)
    scale_live.worker_hooks(done)  # live orders to the simulator on 127.0.0.1 only
    while (job := jobs.get()) is not None:
        kind, key = job
        if kind == "warm":
            scale_live.warm(key)
            continue

        # Where the worker's part goes: the job picked (wall ms), then at each order row's
        # commit the worker's CPU time since the pick.
        cpu0 = time.process_time()
        done.put(("picked", key, time.time() * 1000, None))

        def committed(rows, key=key, cpu0=cpu0):
            done.put(("saved", key, time.time() * 1000, rows))
            done.put(("saved_cpu", key, (time.process_time() - cpu0) * 1000, None))

        def watch(execute, sql, params, many, context, key=key):
            result = execute(sql, params, many, context)
            if sql.startswith('INSERT INTO "orders_order"'):
                rows = _inserted_rows(sql, params, many)
                transaction.on_commit(lambda: committed(rows))
            return result

        scale_live.current["key"] = key
        with connection.execute_wrapper(watch):
            evaluation.evaluate_bar("scale", key[0], "1m", key[1])
    done.put(None)


def evaluator(probe, database_url: str):
    """A worker process (spawned) and a thread collecting its order times into ``probe``."""
    import multiprocessing
    import threading

    ctx = multiprocessing.get_context("spawn")
    jobs, done = ctx.Queue(), ctx.Queue()
    worker = ctx.Process(target=worker_main, args=(database_url, jobs, done), daemon=True)
    worker.start()

    def collect() -> None:
        while (item := done.get()) is not None:
            kind, key, at, rows = item
            if kind == "saved":
                probe.orders.extend([(tuple(key), at)] * rows)
            else:  # picked, CPU to saved; a live order's answer committed, a REST round trip
                probe.live.setdefault(kind, []).append((tuple(key), at))

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()

    def stop() -> None:
        jobs.put(None)
        worker.join(30)
        collector.join(5)

    return stop, lambda job: jobs.put(job)
