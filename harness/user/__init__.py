"""The Locust side: the consumer user's journey, its steps' timing, phase accounting and reports.

``harness.user.consumer.ConsumerUser`` is the Locust user; ``harness.user.wiring`` attaches the
harness to Locust's events (options, target, worker->master merge, reports, the web UI tab).
The modules depend downward only: ``state`` (the run, per process) is read by ``collect``
(the live summary), ``gate`` (thresholds), ``reporting`` (the run folder), ``target`` and
``harness.webui``; ``wiring`` alone knows them all.
"""
