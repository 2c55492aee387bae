"""Dashboard accounts: names, roles and password hashes in a JSON file outside the data folder.

Someone who can write into the data folder is trusted with data, never with access (see
``docs/security.md``), so the accounts file lives elsewhere: ``$DEEPSCOPE_AUTH_FILE`` or
``~/.config/deepscope/auth.json``, written with mode 0600. Passwords are stored as werkzeug
scrypt hashes; the file also holds the secret that signs session cookies, so sessions survive
a restart and every gunicorn worker accepts the others' cookies.

Example::

    accounts = Accounts.load("/tmp/auth.json")
    accounts.add("ada", "correct horse battery", role="operator")   # writes the file
    accounts.check("ada", "correct horse battery")                  # -> "operator"
    accounts.check("ada", "wrong")                                  # -> None
"""
from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

ROLES = ("viewer", "operator")
MIN_PASSWORD = 8
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# A hash to compare against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("deepscope-no-such-user")


class AccountError(ValueError):
    """An account request that cannot be honoured; the message says why."""


def default_auth_file() -> Path:
    """``$DEEPSCOPE_AUTH_FILE`` or ``~/.config/deepscope/auth.json``."""
    env = os.environ.get("DEEPSCOPE_AUTH_FILE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".config" / "deepscope" / "auth.json"


@dataclass
class Accounts:
    """The accounts of one file: ``users`` maps a name to ``{"role", "hash"}``."""

    path: Path
    secret_key: str = ""
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    mtime_ns: int = 0

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "Accounts":
        """The file's accounts (none, and a fresh secret, when the file does not exist yet)."""
        p = Path(path).expanduser() if path else default_auth_file()
        if not p.exists():
            return cls(p, secrets.token_hex(32))
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
            users = {str(n): {"role": str(u["role"]), "hash": str(u["hash"])} for n, u in raw["users"].items()
                     if u.get("role") in ROLES}
            secret = str(raw["secret_key"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AccountError(f"{p}: not a deepscope accounts file ({exc}); move it away and add accounts again") \
                from None
        return cls(p, secret, users, p.stat().st_mtime_ns)

    def save(self) -> None:
        """Write the file atomically, readable by its owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"secret_key": self.secret_key, "users": self.users}, fh, indent=1)
        os.replace(tmp, self.path)
        self.mtime_ns = self.path.stat().st_mtime_ns

    def add(self, name: str, password: str, role: str = "viewer") -> None:
        """Create or update an account and save the file."""
        if not NAME_RE.match(name or ""):
            raise AccountError("a name is 1-64 letters, digits or _ . @ -")
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        if len(password or "") < MIN_PASSWORD:
            raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
        self.users[name] = {"role": role, "hash": generate_password_hash(password)}
        self.save()

    def remove(self, name: str) -> bool:
        """Delete an account (its sessions end at their next request); False if there was none."""
        if self.users.pop(name, None) is None:
            return False
        self.save()
        return True

    def check(self, name: str, password: str) -> str | None:
        """The role of ``name`` when ``password`` is right, else None."""
        user = self.users.get(name) if isinstance(name, str) else None
        ok = check_password_hash(user["hash"] if user else _DUMMY_HASH, password if isinstance(password, str) else "")
        return user["role"] if ok and user else None

    def role_of(self, name: str) -> str | None:
        """The current role of an account, re-reading the file when it changed (removed: None)."""
        self.refresh()
        user = self.users.get(name)
        return user["role"] if user else None

    def refresh(self) -> None:
        """Pick up accounts added or removed since the file was read (cheap: one stat)."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            self.users = {}
            return
        if mtime != self.mtime_ns:
            fresh = Accounts.load(self.path)
            self.users, self.mtime_ns = fresh.users, fresh.mtime_ns
