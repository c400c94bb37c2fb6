"""CSV import of non-human identities: parse, preview (writes nothing), apply good rows.

A file that cannot be read as a whole (too large, not UTF-8, not CSV, wrong headers, too many
rows) is refused with one message and changes nothing. Otherwise each row is judged on its
own: ``create`` (new name), ``update`` (a known name: filled cells replace values, empty
cells leave them) or ``error`` with its messages. Applying re-judges every row, then writes
each good row in its own savepoint through the services, so a row that fails at the last
moment is reported and leaves no trace, and bad rows are skipped.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from governance.access.models import Application
from governance.core.actor import Actor
from governance.core.errors import DomainError
from governance.identities.models import Identity
from governance.nhi import services
from governance.nhi.models import NonHumanIdentity

MAX_IMPORT_BYTES = 512 * 1024
MAX_IMPORT_ROWS = 2000
REQUIRED_COLUMNS = ("name", "kind", "owner")
OPTIONAL_COLUMNS = (
    "backup_owner",
    "application",
    "environment",
    "platform",
    "owning_team",
    "purpose",
    "description",
    "consumers",
    "auth_method",
    "source_created_at",
    "last_used_at",
)
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
IMPORT_REASON = "CSV import"


class ImportFileError(DomainError):
    """The file as a whole cannot be imported."""


@dataclass
class RowResult:
    line: int
    name: str
    action: str  # "create" | "update" | "error" | "created" | "updated"
    messages: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.action != "error"


def parse(data: bytes) -> list[tuple[int, dict[str, str]]]:
    """(line number, cells by column) of each data row, or :class:`ImportFileError`."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFileError(
            f"The file is {len(data) // 1024} KB; imports may be at most "
            f"{MAX_IMPORT_BYTES // 1024} KB. Split it into smaller files."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFileError("The file is not UTF-8 text; save it as CSV (UTF-8).") from None
    if "\x00" in text:
        raise ImportFileError("The file is not a CSV text file.")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise ImportFileError(f"The file is not valid CSV: {exc}.") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ImportFileError("The file is empty; the first line must name the columns.")
    header = [cell.strip().lower() for cell in rows[0]]
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if unknown or missing or len(set(header)) != len(header):
        problems = []
        if missing:
            problems.append(f"missing column(s): {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s): {', '.join(unknown)}")
        if len(set(header)) != len(header):
            problems.append("a column appears twice")
        raise ImportFileError(
            f"Wrong headers ({'; '.join(problems)}). Expected: {', '.join(COLUMNS)} "
            f"(the first three required)."
        )
    body = [(n, r) for n, r in enumerate(rows[1:], start=2) if any(c.strip() for c in r)]
    if not body:
        raise ImportFileError("The file has headers but no rows.")
    if len(body) > MAX_IMPORT_ROWS:
        raise ImportFileError(
            f"The file has {len(body)} rows; imports may have at most {MAX_IMPORT_ROWS}."
        )
    parsed = []
    for line, cells in body:
        if len(cells) > len(header):
            parsed.append((line, {"__error__": "more cells than columns"}))
            continue
        cells = cells + [""] * (len(header) - len(cells))
        parsed.append((line, {h: c.strip() for h, c in zip(header, cells, strict=True)}))
    return parsed


def _choice(value: str, choices, label: str, errors: list[str]) -> str | None:
    for key, text in choices:
        if value.lower() in (key, str(text).lower()):
            return key
    errors.append(f"{label} {value!r} is not one of: {', '.join(k for k, _t in choices)}.")
    return None


def _person(value: str, label: str, errors: list[str]) -> Identity | None:
    person = Identity.objects.filter(user_name__iexact=value, deleted_at__isnull=True).first()
    if person is None:
        errors.append(f"{label}: no person with userName {value!r}.")
    elif not person.active:
        errors.append(f"{label}: {person} is not an active person.")
        return None
    return person


def _when(value: str, label: str, errors: list[str]) -> datetime | None:
    parsed = None
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            parsed = datetime.combine(day, time.min) if day else None
    except ValueError:
        parsed = None
    if parsed is None:
        errors.append(f"{label} {value!r} is not a date (use YYYY-MM-DD or ISO 8601).")
        return None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    if parsed > timezone.now():
        errors.append(f"{label} is in the future.")
    return parsed


def _judge(line: int, cells: dict[str, str], seen: set[str]) -> RowResult:
    name = cells.get("name", "")
    result = RowResult(line=line, name=name, action="error")
    if "__error__" in cells:
        result.messages.append(f"The row has {cells['__error__']}.")
        return result
    errors = result.messages
    if not name:
        errors.append("name is required.")
    elif len(name) > 200:
        errors.append("name is at most 200 characters.")
    elif name.lower() in seen:
        errors.append(f"{name!r} appears more than once in the file.")
    seen.add(name.lower())
    existing = NonHumanIdentity.objects.filter(name__iexact=name).first() if name else None
    values: dict[str, Any] = {}
    if cells.get("kind"):
        values["kind"] = _choice(cells["kind"], NonHumanIdentity.Kind.choices, "kind", errors)
    elif existing is None:
        errors.append("kind is required.")
    if cells.get("owner"):
        values["owner"] = _person(cells["owner"], "owner", errors)
    elif existing is None:
        errors.append("owner is required.")
    if cells.get("backup_owner"):
        values["backup_owner"] = _person(cells["backup_owner"], "backup_owner", errors)
    if cells.get("application"):
        app = Application.objects.filter(name__iexact=cells["application"]).first()
        if app is None:
            errors.append(f"application: no application named {cells['application']!r}.")
        values["application"] = app
    if cells.get("environment"):
        values["environment"] = _choice(
            cells["environment"], NonHumanIdentity.Environment.choices, "environment", errors
        )
    if cells.get("auth_method"):
        values["auth_method"] = _choice(
            cells["auth_method"], NonHumanIdentity.AuthMethod.choices, "auth_method", errors
        )
    for column in ("platform", "owning_team", "purpose", "description"):
        if cells.get(column):
            values[column] = cells[column]
    if cells.get("consumers"):
        try:
            values["consumers"] = services.clean_consumers(cells["consumers"])
        except DomainError as exc:
            errors.append(exc.message)
    for column in ("source_created_at", "last_used_at"):
        if cells.get(column):
            values[column] = _when(cells[column], column, errors)
    owner = values.get("owner", existing.owner if existing else None)
    backup = values.get("backup_owner", existing.backup_owner if existing else None)
    if owner is not None and backup is not None and owner.pk == backup.pk:
        errors.append("backup_owner must be someone other than the owner.")
    if existing is not None and existing.status in (
        NonHumanIdentity.Status.RETIRED,
        NonHumanIdentity.Status.DISABLED,
    ):
        errors.append(f"{existing} is {existing.get_status_display().lower()}; not changed.")
    if not errors:
        probe = existing or NonHumanIdentity()
        candidate = NonHumanIdentity(
            **{
                f.attname: getattr(probe, f.attname)
                for f in NonHumanIdentity._meta.concrete_fields
                if f.attname != "id"
            }
        )
        candidate.name = name
        for key, value in values.items():
            setattr(candidate, key, value)
        try:
            candidate.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            for column, messages in exc.message_dict.items():
                errors.extend(f"{column}: {m}" for m in messages)
    if not errors:
        result.action = "update" if existing else "create"
        result.values = values
    return result


def preview(rows: list[tuple[int, dict[str, str]]]) -> list[RowResult]:
    """What applying would do, row by row. Reads only."""
    seen: set[str] = set()
    return [_judge(line, cells, seen) for line, cells in rows]


def apply(*, actor: Actor, rows: list[tuple[int, dict[str, str]]]) -> list[RowResult]:
    """Judge again (the database may have moved since the preview) and write the good
    rows, each in its own savepoint."""
    results = preview(rows)
    for result in results:
        if not result.ok:
            continue
        values = dict(result.values)
        try:
            with transaction.atomic():
                if result.action == "create":
                    services.nhi_create(
                        actor=actor,
                        name=result.name,
                        kind=values.pop("kind"),
                        owner=values.pop("owner"),
                        backup_owner=values.pop("backup_owner", None),
                        **values,
                    )
                    result.action = "created"
                else:
                    nhi = NonHumanIdentity.objects.get(name__iexact=result.name)
                    owner = values.pop("owner", None)
                    if owner is not None and (
                        owner.pk != nhi.owner_id or nhi.status == NonHumanIdentity.Status.ORPHANED
                    ):
                        nhi = services.nhi_assign_owner(
                            actor=actor, nhi=nhi, owner=owner, reason=IMPORT_REASON
                        )
                    if values:
                        services.nhi_update(actor=actor, nhi=nhi, **values)
                    result.action = "updated"
        except DomainError as exc:
            result.action = "error"
            result.messages.append(exc.message)
    return results
