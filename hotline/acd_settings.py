"""The ACD's policy settings: pydantic models, validated like the rest of the config.

On the config's ground floor: ``hotline/config.py``'s ``acd:`` section builds an
:class:`AcdSettings` from them (``HotlineConfig.acd_settings()``; see docs/acd.md).  Skill ids
are the seat ids of the config (``gjj``, ``zonghe`` …).

A skill's ``steps`` say who may take its calls, in order: a step ``{level: 1, after_s: 0}``
lets level-1 specialists take a call at once, ``{level: 2, after_s: 20}`` level-2
specialists after 20 s, ``{level: general, after_s: 45}`` the 综合席 after 45 s.  Each step
is a *tier*; an agent's tier for a skill is the first step whose level is at least the
agent's level (the general step for 综合席 agents without that skill).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SKILL = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
AGENT_ID = Annotated[str, Field(pattern=r"^[0-9]{3,8}$")]
GENERAL = "general"
MAX_TIERS = 9


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Model):
    """One escalation step: agents of ``level`` (or the 综合席) become eligible ``after_s``
    seconds into the call's wait."""

    level: int | Literal["general"]
    after_s: float = Field(ge=0, le=3600, allow_inf_nan=False)

    @field_validator("level")
    @classmethod
    def _level_range(cls, level: int | str) -> int | str:
        if isinstance(level, int) and not 1 <= level <= 9:
            raise ValueError(f"level must be 1..9 or 'general', got {level}")
        return level


class SkillPolicy(_Model):
    """How one skill's calls are routed."""

    service_level_s: float = Field(default=20.0, gt=0, le=3600, allow_inf_nan=False)
    """The service-level target (answered within this many seconds); urgency is wait ÷ this."""
    steps: tuple[Step, ...] = Field(min_length=1, max_length=MAX_TIERS)

    @model_validator(mode="after")
    def _ordered(self) -> SkillPolicy:
        if self.steps[0].after_s != 0:
            raise ValueError("the first step must start at after_s 0 (someone takes the call)")
        times = [s.after_s for s in self.steps]
        if times != sorted(times):
            raise ValueError(f"steps must be in order of after_s, got {times}")
        levels = [s.level for s in self.steps if s.level != GENERAL]
        if levels != sorted(set(levels)):
            raise ValueError(f"specialist levels must rise step by step, got {levels}")
        if sum(s.level == GENERAL for s in self.steps) > 1:
            raise ValueError("at most one 'general' step")
        if GENERAL in [s.level for s in self.steps[:-1]]:
            raise ValueError("the 'general' step must be the last")
        return self

    @property
    def general_tier(self) -> int | None:
        last = len(self.steps) - 1
        return last if self.steps[last].level == GENERAL else None

    def tier_of_level(self, level: int) -> int | None:
        """The tier of a specialist of ``level``: the first specialist step at or above it,
        else the general step, else none (not eligible)."""
        for i, step in enumerate(self.steps):
            if step.level != GENERAL and step.level >= level:
                return i
        return self.general_tier


def _default_skills() -> dict[str, SkillPolicy]:
    specialist = SkillPolicy(
        steps=(
            Step(level=1, after_s=0),
            Step(level=2, after_s=20),
            Step(level=GENERAL, after_s=45),
        )
    )
    skills = {s: specialist for s in ("renshe", "gjj", "jiaotong", "sifa", "yingshang")}
    skills |= {s: specialist for s in ("wangshang", "yibao", "jiaoyu")}
    skills["zonghe"] = SkillPolicy(steps=(Step(level=GENERAL, after_s=0),))
    return skills


class CallbackPolicy(_Model):
    """Callbacks instead of waiting (docs/acd.md "Callbacks"): what the engine needs."""

    ring_s: float = Field(default=45.0, gt=0, le=600, allow_inf_nan=False)
    """An offer of a callback holds its agent this long beyond ``ring_timeout_s`` (the
    caller's phone rings, hears the greeting, then the agent rings): the safety-net timer."""
    retries: int = Field(default=2, ge=0, le=10)
    """Failed callbacks (no answer, busy) tried again this many times, then given up."""
    retry_after_s: float = Field(default=120.0, ge=1, le=86_400, allow_inf_nan=False)
    """A failed callback goes back to its place in the queue after this long."""


class AcdSettings(_Model):
    """Routing policy: escalation per skill, priorities and aging, agent timers."""

    skills: dict[SKILL, SkillPolicy] = Field(
        default_factory=_default_skills, min_length=1, max_length=1000
    )
    priority_boost: float = Field(default=1.0, ge=0, le=100, allow_inf_nan=False)
    """One priority step counts as this many service-level targets of waiting: a normal call
    that has waited ``priority_boost × service_level_s`` longer overtakes a priority-1 call
    (aging: no call waits forever behind higher priorities)."""
    max_priority: int = Field(default=9, ge=0, le=100)
    wrapup_s: float = Field(default=15.0, ge=0, le=3600, allow_inf_nan=False)
    """Wrap-up after each call (整理); the agent may end it early."""
    ring_timeout_s: float = Field(default=15.0, gt=0, le=300, allow_inf_nan=False)
    """Ring-no-answer: an offer not accepted in this time makes the agent not ready."""
    reentry_s: float = Field(default=120.0, ge=0, le=86_400, allow_inf_nan=False)
    """A caller who hung up while waiting and calls again within this time gets the old place."""
    fallback_skill: SKILL = "zonghe"
    """Where a call with an unknown skill goes (the 综合席)."""
    callback: CallbackPolicy = Field(default_factory=CallbackPolicy)

    @model_validator(mode="after")
    def _fallback_known(self) -> AcdSettings:
        if self.fallback_skill not in self.skills:
            raise ValueError(f"fallback_skill {self.fallback_skill!r} is not one of the skills")
        return self


class AgentProfile(_Model):
    """What an agent may answer: skill → level (1 = primary), and whether it is a 综合席 agent
    (takes any skill at that skill's general step)."""

    skills: dict[SKILL, int] = Field(default_factory=dict, max_length=1000)
    general: bool = False

    @field_validator("skills")
    @classmethod
    def _levels(cls, skills: dict[str, int]) -> dict[str, int]:
        bad = {s: lv for s, lv in skills.items() if not 1 <= lv <= 9}
        if bad:
            raise ValueError(f"skill levels must be 1..9, got {bad}")
        return skills

    @model_validator(mode="after")
    def _something(self) -> AgentProfile:
        if not self.skills and not self.general:
            raise ValueError("an agent needs at least one skill or general: true")
        return self

    def tiers(self, settings: AcdSettings) -> list[tuple[str, int]]:
        """``(skill, tier)`` for every skill this agent may take, in the settings' order."""
        out: list[tuple[str, int]] = []
        for skill, policy in settings.skills.items():
            tier = None
            if skill in self.skills:
                tier = policy.tier_of_level(self.skills[skill])
                if tier == policy.general_tier and not self.general:
                    tier = None  # the general step is for 综合席 agents only
            if tier is None and self.general:
                tier = policy.general_tier
            if tier is not None:
                out.append((skill, tier))
        return out

    def unknown_skills(self, settings: AcdSettings) -> list[str]:
        return [s for s in self.skills if s not in settings.skills]
