"""lp-harness: LivePerson consumer messaging (unauthenticated flow) under Locust.

    locust -f locustfile.py --headless -u 50 -r 10 -t 1m     # against the embedded emulator
    LP_ACCOUNT=... LP_IDP=... LP_ASYNCMESSAGINGENT=... locust -f locustfile.py   # a real account, web UI

Options: ``lp-harness run --help`` (Locust's and the ``--lp-*`` ones), README.md for the rest.
The wiring lives in harness/user/locustfile.py, which ``lp-harness run`` uses too.
"""

from harness.user.locustfile import ConsumerUser

__all__ = ["ConsumerUser"]
