"""The obvious way to write this load test, kept as the baseline the benchmarks compare against.

HttpUser (requests) for the token calls, a blocking websocket-client socket per user, pings
sent from the user's own loop, one greenlet per user and nothing shared. Only used by
bench/locust_capacity.py; not part of the product.

Run it with ``--stop-timeout``: websocket-client's ``close()`` swallows every exception while it
waits for the close echo (a bare ``except``), GreenletExit included, so a user that Locust kills
at that moment carries on with its next session and the run never ends.
"""

from __future__ import annotations

import json
import os
import time

import websocket
from locust import HttpUser, constant, task

ACCOUNT = os.environ.get("LP_ACCOUNT", "bench")
HOLD_S = float(os.environ.get("LP_HOLD", "0"))
PING_S = float(os.environ.get("LP_PING_INTERVAL", "60"))


class NaiveConsumer(HttpUser):
    wait_time = constant(0)

    @task
    def session(self) -> None:
        with self.client.post(f"/api/account/{ACCOUNT}/anonymous/authorize", name="anonymous-authorize", catch_response=True) as r:
            if r.status_code != 200:
                return
            anon = r.json()["jwt"]
        with self.client.post(f"/api/account/{ACCOUNT}/authenticate", json={"authCode": anon}, name="authenticate", catch_response=True) as r:
            if r.status_code != 200:
                return
            token = r.json()["jwt"]
        url = self.host.replace("http", "ws", 1) + f"/ws_api/account/{ACCOUNT}/messaging/consumer?v=3"
        start = time.perf_counter()
        ws = websocket.create_connection(url, header=[f"Authorization: jwt {token}"])
        self.environment.events.request.fire(request_type="WS", name="connect", response_time=(time.perf_counter() - start) * 1000, response_length=0, exception=None, context={})
        ws.send(json.dumps({"kind": "req", "id": 1, "type": "cm.ConsumerRequestConversation"}))
        conversation = json.loads(ws.recv())["body"]["conversationId"]
        deadline = time.monotonic() + HOLD_S
        while time.monotonic() < deadline:
            time.sleep(min(PING_S, max(0.0, deadline - time.monotonic())))
            if time.monotonic() < deadline:
                ws.ping()
        ws.send(json.dumps({"kind": "req", "id": 2, "type": "cm.UpdateConversationField", "body": {
            "conversationId": conversation, "conversationField": [{"field": "ConversationStateField", "conversationState": "CLOSE"}]}}))
        ws.recv()
        ws.close()
