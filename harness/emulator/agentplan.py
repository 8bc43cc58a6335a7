"""The agent side's configuration as one typed object: how many agents, for which skills, how they answer.

Set at start by the ``--agent*`` options (declared on :class:`~harness.emulator.config.EmulatorConfig`)
and replaced while running by ``PUT /admin/agents`` with the same keys. Plain Python: the desk
(:mod:`.agents`) draws from it; :meth:`AgentPlan.for_worker` is a ``--processes`` worker's share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from harness.protocol.latency import ConfigError, LatencySpec, latency_from_json, latency_from_text

DEFAULT_POOL = "default"  # the pool of conversations requested without a skill (or one with no agents of its own)
DEFAULT_REPLY_DELAY = "1000"  # ms
_SKILL_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_AGENTS = 100_000


@dataclass(frozen=True)
class AgentPlan:
    """``agents`` for the default pool, ``skills`` -> agents of that skill; each agent holds up to
    ``per_agent`` conversations and answers each consumer message with ``reply_probability``, after a
    delay drawn from ``reply_delay``, typing first when ``typing``."""

    agents: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    per_agent: int = 1
    reply_delay: LatencySpec = field(default_factory=lambda: latency_from_text(DEFAULT_REPLY_DELAY))
    reply_probability: float = 1.0
    typing: bool = False

    @property
    def active(self) -> bool:
        """Whether any agent is configured (default: none, and nobody answers)."""
        return self.agents > 0 or any(self.skills.values())

    def pools(self) -> dict[str, int]:
        """Pool name -> agents, only the pools that have some."""
        out = {DEFAULT_POOL: self.agents} if self.agents else {}
        out.update({skill: n for skill, n in self.skills.items() if n})
        return out

    @classmethod
    def from_config(cls, config: Any) -> AgentPlan:
        """From an :class:`EmulatorConfig`'s agent options; ConfigError saying what is wrong."""
        agents = _count(config.agents, "agents")
        skills: dict[str, int] = {}
        for text in config.agent_skills:
            name, sep, number = str(text).partition("=")
            name = name.strip()
            if not sep or not _SKILL_RE.match(name) or name == DEFAULT_POOL:
                raise ConfigError(f"agent-skill {text!r}: expected SKILL=N (SKILL: letters, digits, _.:-)")
            try:
                skills[name] = _count(int(number), f"agent-skill {name}")
            except ValueError:
                raise ConfigError(f"agent-skill {text!r}: N must be a whole number") from None
        per_agent = config.agent_conversations
        if not 1 <= per_agent <= 1000:
            raise ConfigError(f"agent-conversations must be 1..1000, got {per_agent}")
        probability = config.agent_reply_probability
        if not 0.0 <= probability <= 1.0:
            raise ConfigError(f"agent-reply-probability must be within 0..1, got {probability}")
        delay = latency_from_json(config.agent_reply_delay, "agent-reply-delay")
        plan = cls(agents, skills, per_agent, delay, probability, bool(config.agent_typing))
        plan.check_split(config.processes)
        return plan

    def check_split(self, processes: int) -> None:
        """Each worker has its own conversations, so each needs its own agents: a pool of fewer agents
        than workers would leave some workers' conversations unanswered."""
        if processes <= 1:
            return
        for name, n in self.pools().items():
            if n < processes:
                raise ConfigError(
                    f"{name} pool: {n} agents for {processes} processes; give at least one per worker process "
                    "(each worker has its own conversations and agents)"
                )

    def for_worker(self, index: int, processes: int) -> AgentPlan:
        """Worker ``index``'s share of the agents (the first ones get the remainder)."""
        if processes <= 1:
            return self

        def share(n: int) -> int:
            return n // processes + (1 if index < n % processes else 0)

        skills = {name: share(n) for name, n in self.skills.items()}
        return AgentPlan(share(self.agents), skills, self.per_agent, self.reply_delay, self.reply_probability, self.typing)

    def to_json(self) -> dict[str, Any]:
        """Under the options' config-file keys, as ``PUT /admin/agents`` takes them."""
        return {
            "agents": self.agents,
            "agent-skill": [f"{name}={n}" for name, n in self.skills.items()],
            "agent-conversations": self.per_agent,
            "agent-reply-delay": latency_text(self.reply_delay),
            "agent-reply-probability": self.reply_probability,
            "agent-typing": self.typing,
        }


def latency_text(spec: LatencySpec) -> str:
    """A spec in the text syntax it was given in (ms): ``500+uniform:1000``."""
    text = f"{spec.fixed_ms:g}"
    if spec.dist != "none":
        text += f"+{spec.dist}:{spec.jitter_ms:g}" + (f":{spec.sigma:g}" if spec.dist == "lognormal" else "")
    return text


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AGENTS:
        raise ConfigError(f"{what} must be a whole number 0..{MAX_AGENTS}, got {value!r}")
    return value
