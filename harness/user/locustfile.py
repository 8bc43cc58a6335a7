"""The locustfile ``lp-harness run`` hands to Locust; the repository's locustfile.py is the same wiring."""

from locust import events

from harness.user import wiring
from harness.user.consumer import ConsumerUser

wiring.register(events)

__all__ = ["ConsumerUser"]
