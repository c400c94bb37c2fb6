"""Reading an application's actual state: a CSV export (with the user's column mapping) or
the application's SCIM API (``/Users`` and ``/Groups``, paged with ``startIndex``/``count``,
RFC 7644 §3.4.2.4). Both yield :class:`ObservedRow` values; nothing here writes.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import IO, Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from governance.core.errors import DomainError

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
PREVIEW_ROWS = 20
ENTITLEMENT_SEPARATOR = ";"
SCIM_PAGE_SIZE = 200
SCIM_MAX_PAGES = 10_000

#: Our fields, in form order: (key, label, required).
FIELDS: list[tuple[str, str, bool]] = [
    ("external_id", "Account id / external id", False),
    ("username", "Username", True),
    ("display_name", "Display name", False),
    ("email", "Email", False),
    ("active", "Active", False),
    ("last_login", "Last login", False),
    ("entitlements", "Entitlements (separated by ;)", False),
    ("interactive_login", "Interactive login", False),
    ("used_by", "Used by (separated by ;)", False),
]
FIELD_KEYS = [key for key, _label, _required in FIELDS]
REQUIRED = [key for key, _label, required in FIELDS if required]

# Header names (normalised: lower case, letters and digits only) each field is guessed from.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "external_id": ("externalid", "accountid", "id", "userid", "uid", "objectid", "employeeid"),
    "username": (
        "username",
        "login",
        "loginname",
        "user",
        "account",
        "accountname",
        "samaccountname",
    ),
    "display_name": ("displayname", "name", "fullname"),
    "email": ("email", "mail", "emailaddress"),
    "active": ("active", "enabled", "status", "state", "accountstatus"),
    "last_login": ("lastlogin", "lastloginat", "lastlogon", "lastsignin", "lastloginDate".lower()),
    "entitlements": ("entitlements", "roles", "role", "groups", "permissions", "access"),
    "interactive_login": ("interactivelogin", "interactive", "humanlogin"),
    "used_by": ("usedby", "users", "sharedby", "sharedwith"),
}
_TRUE = {"true", "yes", "y", "1", "active", "enabled", "on"}
_FALSE = {"false", "no", "n", "0", "inactive", "disabled", "off", "suspended", "locked"}


@dataclass
class ObservedRow:
    username: str
    external_id: str = ""
    display_name: str = ""
    email: str = ""
    active: bool = True
    last_login_at: datetime | None = None
    entitlements: list[str] = field(default_factory=list)
    interactive_login: bool = False
    used_by: list[str] = field(default_factory=list)


def _norm(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def guess_mapping(headers: list[str]) -> dict[str, str]:
    """Our field -> the header it most likely is (exact synonym match, each header once)."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    normalised = {h: _norm(h) for h in headers}
    for key in FIELD_KEYS:
        for synonym in _SYNONYMS[key]:
            match = next((h for h in headers if normalised[h] == synonym and h not in used), None)
            if match is not None:
                mapping[key] = match
                used.add(match)
                break
    return mapping


# --------------------------------------------------------------------------- CSV


def read_headers(handle: IO[bytes]) -> list[str]:
    """The header row of an uploaded CSV, validating what can be validated before any row is
    read: size, UTF-8, a non-empty header with distinct names."""
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    handle.seek(0)
    if size == 0:
        raise DomainError("The file is empty.", field="file")
    if size > MAX_UPLOAD_BYTES:
        raise DomainError(
            f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.", field="file"
        )
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        while chunk := handle.read(1024 * 1024):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DomainError(
            "The file is not UTF-8 text; export it as CSV (UTF-8).", field="file"
        ) from None
    handle.seek(0)
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    try:
        header = next(csv.reader(text), None)
    except csv.Error as exc:
        raise DomainError(f"The file is not a readable CSV: {exc}.", field="file") from None
    finally:
        text.detach()  # the caller's file stays open
        handle.seek(0)
    headers = [h.strip() for h in header or []]
    if not headers or not any(headers):
        raise DomainError("The file has no header row naming its columns.", field="file")
    if any(not h for h in headers):
        raise DomainError("Every column of the header row needs a name.", field="file")
    if len(set(headers)) != len(headers):
        raise DomainError("Two columns of the header row have the same name.", field="file")
    return headers


def validate_mapping(mapping: dict[str, str], headers: list[str]) -> dict[str, str]:
    """Keep only our fields mapped to headers that exist; required fields must be mapped,
    and a header is used once."""
    clean = {k: v for k, v in (mapping or {}).items() if k in FIELD_KEYS and v}
    unknown = sorted(v for v in clean.values() if v not in headers)
    if unknown:
        raise DomainError(f"The file has no column {', '.join(unknown)}.", field="mapping")
    missing = [label for key, label, required in FIELDS if required and key not in clean]
    if missing:
        raise DomainError(f"Choose the column that holds: {', '.join(missing)}.", field="mapping")
    if len(set(clean.values())) != len(clean):
        raise DomainError("Each column can hold only one of our fields.", field="mapping")
    return clean


def _bool(value: str, *, default: bool) -> bool:
    text = value.strip().lower()
    if not text:
        return default
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not yes/no")


@functools.lru_cache(maxsize=4096)
def _when(value: str) -> datetime | None:
    """Exports repeat the same dates: parse each once."""
    text = value.strip()
    if not text or text.lower() in {"never", "-", "n/a"}:
        return None
    parsed = parse_datetime(text.replace(" ", "T", 1) if "T" not in text else text)
    if parsed is None:
        day = parse_date(text)
        if day is None:
            raise ValueError(f"{value!r} is not a date (use YYYY-MM-DD or ISO 8601)")
        parsed = datetime.combine(day, time())
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


def _split(value: str) -> list[str]:
    seen: dict[str, None] = {}
    for part in value.split(ENTITLEMENT_SEPARATOR):
        part = part.strip()
        if part:
            seen.setdefault(part[:255], None)
    return list(seen)


def parse_row(raw: dict[str, str], mapping: dict[str, str]) -> ObservedRow:
    """One CSV row as an observed account; ValueError names what is wrong."""

    def get(key: str) -> str:
        header = mapping.get(key)
        return (raw.get(header) or "").strip() if header else ""

    username = get("username")
    if not username:
        raise ValueError("the username is empty")
    if len(username) > 255:
        raise ValueError("the username is longer than 255 characters")
    try:
        active = _bool(get("active"), default=True)
    except ValueError as exc:
        raise ValueError(f"active: {exc}") from None
    try:
        interactive = _bool(get("interactive_login"), default=False)
    except ValueError as exc:
        raise ValueError(f"interactive login: {exc}") from None
    try:
        last_login = _when(get("last_login"))
    except ValueError as exc:
        raise ValueError(f"last login: {exc}") from None
    return ObservedRow(
        username=username,
        external_id=get("external_id")[:255],
        display_name=get("display_name")[:255],
        email=get("email")[:255],
        active=active,
        last_login_at=last_login,
        entitlements=_split(get("entitlements")),
        interactive_login=interactive,
        used_by=[u.lower() for u in _split(get("used_by"))],
    )


@dataclass
class RowError:
    line: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


def iter_csv(
    handle: IO[bytes], mapping: dict[str, str]
) -> Iterator[tuple[int, ObservedRow | None, RowError | None]]:
    """(line number, row, error) for every data row; a username seen twice is an error."""
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text)
    seen: set[str] = set()
    try:
        for raw in reader:
            line = reader.line_num
            if None in raw:
                yield line, None, RowError(line, "the row has more cells than the header")
                continue
            try:
                row = parse_row(raw, mapping)
            except ValueError as exc:
                yield line, None, RowError(line, str(exc))
                continue
            key = row.username.lower()
            if key in seen:
                yield line, None, RowError(line, f"username {row.username!r} appears twice")
                continue
            seen.add(key)
            yield line, row, None
    except csv.Error as exc:
        yield reader.line_num, None, RowError(reader.line_num, f"unreadable CSV: {exc}")
    finally:
        text.detach()


def preview(handle: IO[bytes], mapping: dict[str, str], *, limit: int = PREVIEW_ROWS):
    """The first ``limit`` rows parsed, and the row errors among them."""
    rows: list[tuple[int, ObservedRow]] = []
    errors: list[RowError] = []
    for line, row, error in iter_csv(handle, mapping):
        if error is not None:
            errors.append(error)
        elif row is not None:
            rows.append((line, row))
        if len(rows) + len(errors) >= limit:
            break
    handle.seek(0)
    return rows, errors


# --------------------------------------------------------------------------- SCIM

_LOGIN_KEYS = ("lastLogin", "lastLoginAt", "lastLoginDate", "lastSignIn", "lastSignInDateTime")


def _from_scim_user(user: dict[str, Any]) -> ObservedRow | None:
    user_name = str(user.get("userName") or "").strip()
    if not user_name or not user.get("id"):
        return None
    emails = [e for e in user.get("emails") or [] if isinstance(e, dict)]
    primary = next((e for e in emails if e.get("primary")), emails[0] if emails else {})
    places = [user] + [v for k, v in user.items() if k.startswith("urn:") and isinstance(v, dict)]
    last_login = None
    interactive = False
    for place in places:
        for key in _LOGIN_KEYS:
            if place.get(key) and last_login is None:
                try:
                    last_login = _when(str(place[key]))
                except ValueError:
                    last_login = None
        if place.get("interactiveLogin") is True:
            interactive = True
    name = user.get("name") if isinstance(user.get("name"), dict) else {}
    return ObservedRow(
        username=user_name[:255],
        external_id=str(user["id"])[:255],
        display_name=str(user.get("displayName") or name.get("formatted") or "")[:255],
        email=str(primary.get("value") or "")[:255],
        active=user.get("active") is not False,
        last_login_at=last_login,
        interactive_login=interactive,
    )


def scim_pages(target, resource: str) -> Iterator[list[dict[str, Any]]]:
    """Every page of ``/Users`` or ``/Groups``. Stops when a page is short or empty, or
    ``totalResults`` is reached."""
    from governance.lifecycle.connectors import ConnectorFailure

    start = 1
    for _ in range(SCIM_MAX_PAGES):
        response = target.send(
            "GET", resource, params={"startIndex": str(start), "count": str(SCIM_PAGE_SIZE)}
        )
        body = target.json(response)
        resources = [r for r in body.get("Resources") or [] if isinstance(r, dict)]
        yield resources
        total = body.get("totalResults")
        start += len(resources)
        if not resources or (isinstance(total, int) and start > total):
            return
    raise ConnectorFailure(f"{resource}: more than {SCIM_MAX_PAGES} pages.", transient=False)


def scim_users(target) -> Iterator[ObservedRow]:
    for page in scim_pages(target, "Users"):
        for user in page:
            row = _from_scim_user(user)
            if row is not None:
                yield row


def scim_memberships(target) -> Iterator[tuple[str, str]]:
    """(group id, member user id) for every group member."""
    for page in scim_pages(target, "Groups"):
        for group in page:
            group_id = group.get("id")
            if not group_id:
                continue
            for member in group.get("members") or []:
                if isinstance(member, dict) and member.get("value"):
                    yield str(group_id), str(member["value"])
