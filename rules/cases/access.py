"""Who may see which case and do what. Pure.

Officers see and act on the cases of their own districts; supervisors and admins on all (only
they assign and close without verification); an enterprise account sees only its own
enterprise's cases and can only file responses and comments. A case a user may not see does
not exist for them: the console answers 404, never 403, so ids reveal nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .machine import Action


class Role(StrEnum):
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    ENTERPRISE = "enterprise"


@dataclass(frozen=True)
class Actor:
    username: str
    role: Role
    #: an officer's districts (others: empty)
    districts: frozenset[str] = field(default_factory=frozenset)
    #: an enterprise account's enterprise id (others: None)
    enterprise: str | None = None

    def __post_init__(self) -> None:
        if self.role is Role.ENTERPRISE and not self.enterprise:
            raise ValueError(f"enterprise account {self.username!r} has no enterprise")
        if self.role is Role.OFFICER and not self.districts:
            raise ValueError(f"officer {self.username!r} has no district")


@dataclass(frozen=True)
class Scope:
    """What a user may see, as filters: None = no restriction."""

    districts: frozenset[str] | None
    enterprise: str | None


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ENTERPRISE: frozenset({Action.RESPOND, Action.COMMENT}),
    Role.OFFICER: frozenset(
        {Action.SET_DEADLINE, Action.RESPOND, Action.VERIFY, Action.REOPEN, Action.ACKNOWLEDGE, Action.COMMENT}
    ),
    Role.SUPERVISOR: frozenset(a for a in Action if a.manual),
    Role.ADMIN: frozenset(a for a in Action if a.manual),
}


def scope(actor: Actor) -> Scope:
    if actor.role is Role.ENTERPRISE:
        return Scope(districts=None, enterprise=actor.enterprise)
    if actor.role is Role.OFFICER:
        return Scope(districts=actor.districts, enterprise=None)
    return Scope(districts=None, enterprise=None)


def can_see(actor: Actor, *, district: str, enterprise: str) -> bool:
    s = scope(actor)
    return (s.districts is None or district in s.districts) and (s.enterprise is None or enterprise == s.enterprise)


def refusal(actor: Actor, action: Action, *, district: str, enterprise: str) -> str | None:
    """Why ``actor`` may not take ``action`` on a case of this district and enterprise, or None."""
    if not can_see(actor, district=district, enterprise=enterprise):
        return "not_visible"
    if action not in ROLE_ACTIONS[actor.role]:
        return f"role_{actor.role.value}_cannot_{action.value}"
    return None


def can_assign_to(actor: Actor, assignee: Actor, *, district: str) -> str | None:
    """An assignee must be an officer of the case's district, or a supervisor."""
    if assignee.role is Role.SUPERVISOR:
        return None
    if assignee.role is Role.OFFICER and district in assignee.districts:
        return None
    return "assignee_not_responsible_for_district"
