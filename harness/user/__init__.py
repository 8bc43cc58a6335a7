"""The Locust side: the consumer user's journey, its steps' timing, phase accounting and reports.

``harness.user.consumer.ConsumerUser`` is the Locust user; ``harness.user.lifecycle`` wires the
harness into Locust's events (options, embedded emulator, worker->master merge, reports).
"""
