"""Accounts, passwords (argon2id), server-side sessions, CSRF tokens and the login rate limit.

A session is a random token in an HttpOnly, SameSite=Lax cookie; the database keeps only its
SHA-256, with the user (None before login) and the session's CSRF token, which every form
posts back. Logging in replaces the session (no fixation). Logins are refused for a while
after too many failures for the same user name or from the same address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from rules.cases.access import Actor, Role

from . import db

_hasher = PasswordHasher()
# a hash to verify against when the user does not exist, so both cases take as long
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD_LENGTH = 10


class AccountError(ValueError):
    """An account that cannot be created as asked (message names the field)."""


@dataclass(frozen=True)
class LoginLimit:
    max_failures: int = 5
    window_s: int = 900


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def add_user(
    s: Session,
    *,
    username: str,
    password: str,
    role: Role,
    now: datetime,
    display_name: str | None = None,
    districts: list[str] | None = None,
    enterprise: str | None = None,
) -> db.User:
    Actor(username, role, frozenset(districts or ()), enterprise)  # role rules: officer needs a district...
    if not username or len(username) > 64 or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise AccountError(f"username: {username!r} must be 1-64 letters, digits, '-', '_' or '.'")
    if s.scalar(select(db.User).where(db.User.username == username)) is not None:
        raise AccountError(f"username: {username!r} exists already")
    if any("," in d for d in districts or ()):
        raise AccountError("districts: a district name cannot contain ','")
    user = db.User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role.value,
        districts=",".join(districts or ()),
        enterprise=enterprise,
        active=True,
        created_at=now,
    )
    s.add(user)
    s.flush()
    return user


def set_password(s: Session, username: str, password: str) -> None:
    user = s.scalar(select(db.User).where(db.User.username == username))
    if user is None:
        raise AccountError(f"username: no user {username!r}")
    user.password_hash = hash_password(password)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_session(s: Session, user: db.User | None, now: datetime, lifetime: timedelta) -> tuple[str, db.WebSession]:
    """A new session; returns the cookie's token (never stored) and the row."""
    token = secrets.token_urlsafe(32)
    row = db.WebSession(
        token_hash=_digest(token),
        user_id=user.id if user else None,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + lifetime,
    )
    s.add(row)
    return token, row


def find_session(s: Session, token: str | None, now: datetime) -> db.WebSession | None:
    if not token:
        return None
    row = s.get(db.WebSession, _digest(token))
    if row is None or row.expires_at <= now:
        return None
    return row


def end_session(s: Session, token: str | None) -> None:
    if token:
        s.execute(delete(db.WebSession).where(db.WebSession.token_hash == _digest(token)))


def purge_sessions(s: Session, now: datetime) -> None:
    s.execute(delete(db.WebSession).where(db.WebSession.expires_at <= now))


def csrf_ok(session: db.WebSession | None, sent: str | None) -> bool:
    return session is not None and sent is not None and hmac.compare_digest(session.csrf_token, sent)


def login_blocked(s: Session, username: str, address: str, now: datetime, limit: LoginLimit) -> bool:
    since = now - timedelta(seconds=limit.window_s)
    for key in (f"user:{username}", f"ip:{address}"):
        failures = s.scalar(
            select(func.count())
            .select_from(db.LoginFailure)
            .where(db.LoginFailure.key == key, db.LoginFailure.at > since)
        )
        if (failures or 0) >= limit.max_failures:
            return True
    return False


def authenticate(s: Session, username: str, password: str, address: str, now: datetime) -> db.User | None:
    """The active user with this password, or None (a failure is recorded for the rate limit)."""
    user = s.scalar(select(db.User).where(db.User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None and user.active
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        s.add(db.LoginFailure(key=f"user:{username}", at=now))
        s.add(db.LoginFailure(key=f"ip:{address}", at=now))
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    s.execute(delete(db.LoginFailure).where(db.LoginFailure.key == f"user:{username}"))
    return user
