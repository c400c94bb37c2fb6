"""``manage.py scim_token create|list|revoke``: SCIM bearer tokens from the shell.

Stable interface: ``scim_token create --source NAME`` prints the token alone on the last
line of its output; scripts take that line and nothing else.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from governance.core.actor import Actor
from governance.core.errors import DomainError
from governance.identities.models import IdentitySource
from governance.identities.services import source_create
from scim_api.models import ScimToken
from scim_api.tokens import (
    PREFIX_LENGTH,
    TOKEN_MARKER,
    TOKEN_PATTERN,
    hash_token,
    token_create,
    token_revoke,
)

ACTOR = Actor.system("scim_token command")
# A shorter prefix could match a token the operator did not mean.
MIN_PREFIX_CHARS = 4


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


class Command(BaseCommand):
    help = "Create, list and revoke the SCIM bearer tokens of identity sources."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

        create = sub.add_parser(
            "create",
            help="Issue a token (creating the source if needed); the token is the last line.",
        )
        create.add_argument("--source", required=True, metavar="NAME", help="Identity source.")
        create.add_argument(
            "--kind",
            choices=IdentitySource.Kind.values,
            help="Kind of a source created by this command (default: generic).",
        )
        create.add_argument("--label", default="", help="What the token is for.")

        listing = sub.add_parser("list", help="Show tokens (never the tokens themselves).")
        listing.add_argument("--source", metavar="NAME", help="Only this source's tokens.")

        revoke = sub.add_parser("revoke", help="Revoke a token by its prefix or id.")
        revoke.add_argument("ref", metavar="PREFIX_OR_ID")

    def handle(self, *args, **options):
        subcommand = options["subcommand"]
        if subcommand == "create":
            self._create(name=options["source"], kind=options["kind"], label=options["label"])
        elif subcommand == "list":
            self._list(name=options["source"])
        elif subcommand == "revoke":
            self._revoke(options["ref"])

    def _create(self, *, name: str, kind: str | None, label: str) -> None:
        name = (name or "").strip()
        if not name:
            raise CommandError("--source must name an identity source.")
        try:
            with transaction.atomic():
                source = IdentitySource.objects.filter(name=name).first()
                created = source is None
                if source is None:
                    source = source_create(actor=ACTOR, name=name, kind=kind or "generic")
                token, raw = token_create(actor=ACTOR, source=source, label=label)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None

        if created:
            self.stdout.write(
                f'Created identity source "{source.name}" ({source.get_kind_display()}).'
            )
        elif kind and kind != source.kind:
            self.stderr.write(
                f'Identity source "{source.name}" already exists as {source.kind}; '
                "--kind was ignored."
            )
        described = f' labelled "{token.label}"' if token.label else ""
        self.stdout.write(
            f'Created SCIM token {token.token_prefix}… for "{source.name}"{described}.\n'
            "Give it to the identity provider as its bearer token now: Steward keeps only a\n"
            "hash and cannot show it again. The token is the last line below."
        )
        self.stdout.write(raw)

    def _source(self, name: str) -> IdentitySource:
        source = IdentitySource.objects.filter(name=name.strip()).first()
        if source is None:
            known = ", ".join(IdentitySource.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f'No identity source named "{name}" (known: {known}).')
        return source

    def _list(self, *, name: str | None) -> None:
        tokens = ScimToken.objects.select_related("source").order_by("source__name", "created_at")
        if name is not None:
            tokens = tokens.filter(source=self._source(name))
        rows = [
            (
                str(t.pk),
                t.token_prefix,
                t.source.name,
                t.label or "-",
                _when(t.created_at),
                _when(t.last_used_at),
                f"revoked {_when(t.revoked_at)}" if t.revoked_at else "active",
            )
            for t in tokens
        ]
        if not rows:
            self.stdout.write("No SCIM tokens.")
            return
        header = ("ID", "PREFIX", "SOURCE", "LABEL", "CREATED", "LAST USED", "STATUS")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            line = "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
            self.stdout.write(line.rstrip())

    def _find(self, ref: str) -> ScimToken:
        ref = ref.strip()
        if TOKEN_PATTERN.fullmatch(ref):
            token = ScimToken.objects.filter(token_hash=hash_token(ref)).first()
            if token is None:
                raise CommandError("No SCIM token matches the token given.")
            return token
        matches = {}
        if ref.isdigit():
            matches.update({t.pk: t for t in ScimToken.objects.filter(pk=int(ref))})
        prefix = ref if ref.startswith(TOKEN_MARKER) else TOKEN_MARKER + ref
        if len(prefix) - len(TOKEN_MARKER) >= MIN_PREFIX_CHARS and len(prefix) <= PREFIX_LENGTH:
            matches.update(
                {t.pk: t for t in ScimToken.objects.filter(token_prefix__startswith=prefix)}
            )
        elif not matches:
            raise CommandError(
                f'"{ref}" is neither a token id nor a token prefix: give the id or the prefix '
                f"shown by 'scim_token list' (at least {MIN_PREFIX_CHARS} characters after "
                f'"{TOKEN_MARKER}").'
            )
        if not matches:
            raise CommandError(f'No SCIM token has the id or prefix "{ref}".')
        if len(matches) > 1:
            found = ", ".join(f"{t.token_prefix} (id {t.pk})" for t in matches.values())
            raise CommandError(
                f'"{ref}" is ambiguous: it matches {found}. Give the full prefix or the id.'
            )
        return next(iter(matches.values()))

    def _revoke(self, ref: str) -> None:
        token = self._find(ref)
        try:
            token = token_revoke(actor=ACTOR, token=token)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f'Revoked SCIM token {token.token_prefix}… of "{token.source.name}".')
