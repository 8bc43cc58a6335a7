"""What every part of one emulator process shares: its options, IDP, ledger, conversations, agents, fault plan.

The HTTP endpoints, the socket layer, the admin API and the fast lane each hold this one object
(not each other), so a fault plan replaced by ``PUT /admin/faults`` (or agents by
``PUT /admin/agents``) is the one all of them use at their next request.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from harness.emulator.agentplan import AgentPlan
from harness.emulator.agents import AgentDesk
from harness.emulator.config import EmulatorConfig
from harness.emulator.faults import FaultPlan
from harness.emulator.idp import ANON_KID, Idp
from harness.emulator.ledger import Ledger
from harness.emulator.ratelimit import RateLimiter
from harness.emulator.state import Registry
from harness.protocol import tokens


class Core:
    """The shared state of one emulator process (a ``--processes`` worker is one process)."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        lp_key: tokens.SigningKey | None = None,
        anon_key: tokens.SigningKey | None = None,
    ) -> None:
        self.config = config
        trusted = [tokens.load_public_key(Path(p).read_bytes()) for p in config.trust_keys]
        if config.trust_tutorial_key:
            trusted.append(tokens.load_public_key(tokens.TUTORIAL_PUBLIC_KEY_PEM))
        self.ledger = Ledger()
        self.idp = Idp(
            lp_key=lp_key or tokens.generate_signing_key(config.key_bits),
            anon_key=anon_key or tokens.generate_signing_key(config.key_bits, kid=ANON_KID),
            trusted_keys=trusted,
            anon_lifetime_s=config.anon_token_lifetime,
            anon_refresh_window_s=config.anon_refresh_window,
            lp_lifetime_s=config.lp_token_lifetime,
            token_cache_s=config.token_cache_s,
            account=config.account,
            on_identity=self.ledger.identity,
        )
        self.registry = Registry(self.ledger)
        self.plan: FaultPlan = config.plan  # what the draws use (a worker's is reseeded)
        self.public_plan: FaultPlan = config.plan  # what GET /admin/faults shows
        self.limiter = RateLimiter(config.rate_limit) if config.rate_limit > 0 else None
        self.public_host = config.host  # host:port as CSDS answers it; set once bound
        self.url = ""
        self.tls_cert: str | None = None
        self.started = time.time()
        self.worker_index = 0
        self.peers: list[str] = []  # admin URLs of sibling workers (--processes)
        self.agents = AgentDesk(self.registry, asyncio.get_running_loop, seed=config.plan.seed)
        self.agent_plan = config.agent_plan()  # what GET /admin/agents shows (all workers' agents)
        self.agents.configure(self.agent_plan.for_worker(0, config.processes))

    def injects(self, target: str) -> bool:
        """Whether latency, a fault or the rate limit applies to ``target`` now (the fast lane then steps aside)."""
        return self.limiter is not None or self.plan.has_any(target)

    def throttled(self, account: str) -> int | None:
        """None when ``account`` may make a request now; else it is counted as limited, and the Retry-After."""
        if self.limiter is None:
            return None
        wait = self.limiter.check(account)
        if wait is not None:
            self.ledger.rate_limited += 1
        return wait

    def use_plan(self, plan: FaultPlan, *, worker: int | None = None) -> None:
        """Draw from ``plan`` from now on; a worker (``--processes``) draws with its own seed."""
        if worker is not None:
            self.worker_index = worker
            self.agents.set_worker(worker, plan.seed)
            self.use_agents(self.agent_plan)
        reseed = worker is not None or bool(self.peers)
        self.plan = plan.with_worker(self.worker_index) if reseed else plan
        self.public_plan = plan

    def use_agents(self, plan: AgentPlan) -> None:
        """The agents of ``plan`` from now on (this worker's share of them)."""
        self.agent_plan = plan
        self.agents.configure(plan.for_worker(self.worker_index, self.config.processes))
