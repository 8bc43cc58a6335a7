"""The emulated agent side: agents per skill that join conversations, read, type and reply, and a queue.

Each pool (the default one, one per configured skill) has a bounded number of agents, each
holding up to ``per_agent`` conversations. A new conversation is routed by its ``skillId`` (the
default pool when its skill has no agents of its own); it gets a free agent at once, else waits in
its pool's queue (first come, first served) until a conversation of that pool closes, so time to
the first reply grows under load as on a real account. An agent that joins is a participant
change (``ASSIGNED_AGENT`` in the conversation's UPSERT); it accepts and reads each consumer
message at once (``AcceptStatusEvent`` ACCEPT and READ; what came while the conversation waited,
all together when it joins), shows ``COMPOSING`` when told to, and answers each with a
``ContentEvent`` after a delay drawn from the reply-delay spec, with the reply probability,
in order. At the close it leaves and takes the next waiting conversation of its pool.

Plain Python: times are ``time.monotonic`` (precise), timers the loop's ``call_later``, and a reply
never goes out before its delay has passed on the precise clock (a loop's cached, millisecond
clock can fire a timer early). Nothing per conversation is kept once it closes (its assignment,
pending replies and queue entry go), so memory follows what is open.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.emulator.agentplan import DEFAULT_POOL, AgentPlan
from harness.emulator.state import Conversation, Notes, Registry, now_ms
from harness.emulator.talkstats import AgentStats
from harness.protocol import events
from harness.protocol.events import AcceptStatus, ChatState, Role

MAX_BACKLOG = 100  # consumer messages remembered per waiting conversation (as many as its transcript keeps)
_AGENT_NS = uuid.UUID("6b1d1a52-8f0e-4c55-9f43-6c7a0d2f4e11")  # agent ids: stable per (worker, pool, number)


class Handle(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """The event loop's timers (``asyncio.AbstractEventLoop`` is one)."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Handle: ...


@dataclass(eq=False, slots=True)
class Agent:
    id: str
    pool: str
    load: int = 0  # conversations it holds
    retired: bool = False  # no longer in the plan (PUT /admin/agents): it finishes its conversations, takes no more


@dataclass(eq=False, slots=True)
class Pool:
    name: str
    agents: list[Agent]
    free: deque[Agent] = field(default_factory=deque)  # one entry per free slot, spread over the agents
    queue: dict[str, Waiting] = field(default_factory=dict)  # conversation id -> its wait, oldest first

    def busy(self) -> int:
        return sum(a.load for a in self.agents)


@dataclass(eq=False, slots=True)
class Waiting:
    conv: Conversation
    since: float  # when it started waiting (monotonic)
    backlog: list[tuple[int, float]] = field(default_factory=list)  # (sequence, when read) of its messages


@dataclass(eq=False, slots=True)
class Due:
    """A reply an agent will send: to message ``seq`` read at ``read_at``, not before ``due`` (monotonic)."""

    seq: int
    read_at: float
    delay: float
    due: float
    handle: Handle | None = None  # its wake-up


@dataclass(eq=False, slots=True)
class Assignment:
    conv: Conversation
    agent: Agent
    pending: deque[Due] = field(default_factory=deque)  # its replies still due, in the order they go out
    last_due: float = 0.0  # replies go out in the order of the messages they answer


class AgentDesk:
    """The agents of one process, their queues, and the conversations they hold."""

    def __init__(
        self,
        registry: Registry,
        timers: Callable[[], Timers],
        seed: int | None = None,
        worker: int = 0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.timers = timers  # called when needed: the running loop
        self.now = now
        self.worker = worker
        self.rng = random.Random(None if seed is None else f"{seed}:agents:{worker}")
        self.plan = AgentPlan()
        self.pools: dict[str, Pool] = {}
        self.assignments: dict[str, Assignment] = {}  # conversation id -> the agent holding it
        self.waiting: dict[str, Pool] = {}  # conversation id -> the pool it waits in
        self.stats = AgentStats(self.gauges)
        registry.ledger.add_section("agents", self.stats)
        registry.agents = self

    # ------------------------------------------------------------------ configuration
    def set_worker(self, worker: int, seed: int | None) -> None:
        """A ``--processes`` worker: its agents have ids of their own, its draws a seed of their own."""
        self.worker = worker
        self.rng = random.Random(None if seed is None else f"{seed}:agents:{worker}")

    def configure(self, plan: AgentPlan) -> None:
        """Use ``plan`` from now on. Conversations keep the agents they have (an agent of the new plan with
        the same pool and number is the same agent, its load counted); waiting ones are routed again."""
        waiting = sorted((w for pool in self.pools.values() for w in pool.queue.values()), key=lambda w: w.since)
        for old in self.pools.values():
            for agent in old.agents:
                agent.retired = True
        self.plan = plan
        self.pools = {}
        by_id: dict[str, Agent] = {}
        for name, n in plan.pools().items():
            agents = [Agent(str(uuid.uuid5(_AGENT_NS, f"{self.worker}/{name}/{i}")), name) for i in range(n)]
            by_id.update((a.id, a) for a in agents)
            self.pools[name] = Pool(name, agents)
        for held in self.assignments.values():
            same = by_id.get(held.agent.id)
            if same is not None:
                same.load += 1
                held.agent = same
        for pool in self.pools.values():
            for k in range(plan.per_agent):
                pool.free.extend(a for a in pool.agents if a.load <= k)
        self.waiting = {}
        notes: Notes = []
        for wait in waiting:
            pool = self._route(wait.conv)
            if pool is None:
                self.stats.queue_dropped += 1
                continue
            self.waiting[wait.conv.id] = pool
            pool.queue[wait.conv.id] = wait
        for pool in self.pools.values():
            notes += self._drain(pool)
        self.registry.deliver(notes)

    def gauges(self) -> dict[str, Any]:
        """What the desk holds now (the ledger's live numbers)."""
        skills = {
            name: {
                "agents": len(p.agents),
                "slots": len(p.agents) * self.plan.per_agent,
                "busy": p.busy(),
                "queued": len(p.queue),
            }
            for name, p in self.pools.items()
        }
        return {
            "agents": sum(s["agents"] for s in skills.values()),
            "slots": sum(s["slots"] for s in skills.values()),
            "busy": len(self.assignments),
            "queued": len(self.waiting),
            "skills": skills,
        }

    def held(self) -> int:
        """Conversations the desk keeps something for (held by an agent or waiting): all of them open."""
        return len(self.assignments) + len(self.waiting)

    # ------------------------------------------------------------------ the registry's calls
    def opened(self, conv: Conversation) -> Notes:
        pool = self._route(conv)
        if pool is None:
            self.stats.unrouted += 1
            return []
        wait = Waiting(conv, self.now())
        if pool.free:
            return self._assign(pool, wait)
        pool.queue[conv.id] = wait
        self.waiting[conv.id] = pool
        self.stats.queued(len(self.waiting))
        return []

    def published(self, conv: Conversation, change: Mapping[str, Any]) -> Notes:
        event = change.get("event")
        sequence = change.get("sequence")
        if not isinstance(event, dict) or event.get("type") not in events.CONTENT_EVENTS or not isinstance(sequence, int):
            return []  # receipts and typing from the consumer: counted, nothing to answer
        held = self.assignments.get(conv.id)
        now = self.now()
        if held is not None:
            return self._read(held, [(sequence, now)])
        pool = self.waiting.get(conv.id)
        if pool is not None:
            backlog = pool.queue[conv.id].backlog
            if len(backlog) < MAX_BACKLOG:
                backlog.append((sequence, now))
        return []

    def closed(self, conv: Conversation) -> Notes:
        held = self.assignments.pop(conv.id, None)
        if held is None:
            pool = self.waiting.pop(conv.id, None)
            if pool is not None:
                pool.queue.pop(conv.id, None)
                self.stats.queue_abandoned += 1
            return []
        for reply in held.pending:
            if reply.handle is not None:
                reply.handle.cancel()
        self.stats.replies_cancelled += len(held.pending)
        held.pending.clear()
        agent = held.agent
        agent.load -= 1
        self.stats.released += 1
        pool = self.pools.get(agent.pool)
        if pool is None or agent.retired:
            return []  # an agent of an older plan: its slot goes with it
        pool.free.append(agent)
        return self._drain(pool)

    # ------------------------------------------------------------------ what agents do
    def _route(self, conv: Conversation) -> Pool | None:
        return self.pools.get(conv.skill_id) or self.pools.get(DEFAULT_POOL)

    def _drain(self, pool: Pool) -> Notes:
        """Give free agents of ``pool`` to its waiting conversations, oldest first."""
        notes: Notes = []
        while pool.free and pool.queue:
            conv_id = next(iter(pool.queue))
            wait = pool.queue.pop(conv_id)
            del self.waiting[conv_id]
            self.stats.queue_left += 1
            notes += self._assign(pool, wait)
        return notes

    def _assign(self, pool: Pool, wait: Waiting) -> Notes:
        agent = pool.free.popleft()
        agent.load += 1
        conv = wait.conv
        held = self.assignments[conv.id] = Assignment(conv, agent)
        conv.agent_id = agent.id
        conv.last_update = now_ms()
        stats = self.stats
        stats.assigned += 1
        stats.wait.add((self.now() - wait.since) * 1000.0)
        notes = self.registry.changed(conv, conv.state)  # the participant change: the agent joined
        if wait.backlog:
            notes += self._read(held, wait.backlog)
        return notes

    def _read(self, held: Assignment, messages: list[tuple[int, float]]) -> Notes:
        """Accept and read these consumer messages now (typing, if told to), and line up their replies."""
        sequences = [seq for seq, _ in messages]
        published = [
            events.accept_status_event(AcceptStatus.ACCEPT, sequences),
            events.accept_status_event(AcceptStatus.READ, sequences),
        ]
        plan = self.plan
        if plan.typing:
            published.append(events.chat_state_event(ChatState.COMPOSING))
        _changes, notes = self.registry.emit(held.conv, held.agent.id, Role.ASSIGNED_AGENT, published)
        timers = self.timers()
        for seq, read_at in messages:
            if plan.reply_probability < 1.0 and self.rng.random() >= plan.reply_probability:
                self.stats.replies_declined += 1
                continue
            delay = plan.reply_delay.sample_s(self.rng)
            reply = Due(seq, read_at, delay, max(self.now() + delay, held.last_due))
            held.last_due = reply.due
            reply.handle = timers.call_later(reply.due - self.now(), self._flush, held)
            held.pending.append(reply)
            self.stats.replies_due += 1
        return notes

    def _flush(self, held: Assignment) -> None:
        """A wake-up: send the replies that are due, oldest first. One that came early (the loop's
        clock is cached and in milliseconds) finds nothing due and waits for the first one again."""
        if self.assignments.get(held.conv.id) is not held:
            return
        now = self.now()
        notes: Notes = []
        stats = self.stats
        while held.pending and held.pending[0].due <= now:
            reply = held.pending.popleft()
            held.conv.awaiting_since = None  # answered: the TTR clock stops until the consumer writes again
            content = events.content_event(f"reply to message {reply.seq}")
            notes += self.registry.emit(held.conv, held.agent.id, Role.ASSIGNED_AGENT, [content])[1]
            stats.replies_sent += 1
            stats.reply_latency.add((now - reply.read_at) * 1000.0)
            stats.reply_delay.add(reply.delay * 1000.0)
        if held.pending and not notes:
            first = held.pending[0]
            first.handle = self.timers().call_later(first.due - now, self._flush, held)
        self.registry.deliver(notes)
