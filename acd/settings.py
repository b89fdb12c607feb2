"""The ACD's policy settings; the models live on the config's ground floor
(``hotline/acd_settings.py``) so that ``hotline/config.py`` can hold them as its ``acd:``
section.  Imported from here by the ACD, the simulator and their tests."""

from hotline.acd_settings import (
    AGENT_ID,
    GENERAL,
    MAX_TIERS,
    SKILL,
    AcdSettings,
    AgentProfile,
    CallbackPolicy,
    SkillPolicy,
    Step,
)

__all__ = [
    "AGENT_ID",
    "GENERAL",
    "MAX_TIERS",
    "SKILL",
    "AcdSettings",
    "AgentProfile",
    "CallbackPolicy",
    "SkillPolicy",
    "Step",
]
