"""Demo accounts for a registry: a supervisor, an officer per district, an account per
enterprise, all with one password (for ``./scripts/run.sh`` and the browser tests)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from contracts.registry import Registry
from rules.cases.access import Role

from . import db
from .auth import add_user, set_password
from .store import CaseStore


def demo_accounts(registry: Registry) -> list[tuple[str, Role, list[str], str | None, str]]:
    """(username, role, districts, enterprise, display name) for every demo account."""
    districts = sorted({e.district for e in registry.enterprises})
    accounts: list[tuple[str, Role, list[str], str | None, str]] = [
        ("chief", Role.SUPERVISOR, [], None, "Section chief"),
        ("admin", Role.ADMIN, [], None, "Administrator"),
    ]
    accounts += [(f"officer-{i}", Role.OFFICER, [d], None, f"Officer, {d}") for i, d in enumerate(districts, 1)]
    accounts += [(e.id, Role.ENTERPRISE, [], e.id, e.name) for e in registry.enterprises]
    return accounts


def ensure_demo_users(store: CaseStore, registry: Registry, password: str) -> list[str]:
    """Create the demo accounts that are missing and reset the password of those that exist;
    returns one line per account."""
    lines = []
    now = datetime.now(UTC)
    with store.session() as s:
        for username, role, districts, enterprise, name in demo_accounts(registry):
            exists = s.scalar(select(db.User).where(db.User.username == username)) is not None
            if exists:
                set_password(s, username, password)
            else:
                add_user(s, username=username, password=password, role=role, now=now, display_name=name,
                         districts=districts, enterprise=enterprise)  # fmt: skip
            where = ", ".join(districts) or enterprise or "all districts"
            lines.append(f"{username:<16} {role.value:<11} {where}")
    return lines
