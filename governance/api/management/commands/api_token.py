"""``manage.py api_token create|list|revoke``: governance API tokens from the shell.

Stable interface: ``api_token create USERNAME`` prints the token alone on the last line of
its output; scripts take that line and nothing else.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from governance.api.models import ApiToken
from governance.api.tokens import (
    PREFIX_LENGTH,
    TOKEN_MARKER,
    TOKEN_PATTERN,
    hash_token,
    token_create,
    token_revoke,
)
from governance.core.actor import Actor
from governance.core.errors import DomainError
from governance.portal.models import User

ACTOR = Actor.system("api_token command")
MIN_PREFIX_CHARS = 4


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


class Command(BaseCommand):
    help = "Create, list and revoke governance API tokens of portal users."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        create = sub.add_parser("create", help="Issue a token; the token is the last line.")
        create.add_argument("username", metavar="USERNAME", help="Portal user it acts as.")
        create.add_argument("--label", default="", help="What the token is for.")
        listing = sub.add_parser("list", help="Show tokens (never the tokens themselves).")
        listing.add_argument("--user", metavar="USERNAME", help="Only this user's tokens.")
        revoke = sub.add_parser("revoke", help="Revoke a token by its prefix or id.")
        revoke.add_argument("ref", metavar="PREFIX_OR_ID")

    def handle(self, *args, **options):
        subcommand = options["subcommand"]
        if subcommand == "create":
            self._create(options["username"], options["label"])
        elif subcommand == "list":
            self._list(options["user"])
        elif subcommand == "revoke":
            self._revoke(options["ref"])

    def _user(self, username: str) -> User:
        user = User.objects.filter(username=(username or "").strip()).first()
        if user is None:
            raise CommandError(f'No portal user named "{username}".')
        return user

    def _create(self, username: str, label: str) -> None:
        user = self._user(username)
        try:
            token, raw = token_create(actor=ACTOR, user=user, label=label)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        described = f' labelled "{token.label}"' if token.label else ""
        self.stdout.write(
            f'Created API token {token.token_prefix}… for "{user.username}"{described}.\n'
            "Send it as 'Authorization: Token <token>'. Steward keeps only a hash and cannot\n"
            "show it again. The token is the last line below."
        )
        self.stdout.write(raw)

    def _list(self, username: str | None) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("user__username", "created_at")
        if username is not None:
            tokens = tokens.filter(user=self._user(username))
        rows = [
            (
                str(t.pk),
                t.token_prefix,
                t.user.username,
                t.label or "-",
                _when(t.created_at),
                _when(t.last_used_at),
                f"revoked {_when(t.revoked_at)}" if t.revoked_at else "active",
            )
            for t in tokens
        ]
        if not rows:
            self.stdout.write("No API tokens.")
            return
        header = ("ID", "PREFIX", "USER", "LABEL", "CREATED", "LAST USED", "STATUS")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write(
                "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            )

    def _find(self, ref: str) -> ApiToken:
        ref = ref.strip()
        if TOKEN_PATTERN.fullmatch(ref):
            token = ApiToken.objects.filter(token_hash=hash_token(ref)).first()
            if token is None:
                raise CommandError("No API token matches the token given.")
            return token
        matches = {}
        if ref.isdigit():
            matches.update({t.pk: t for t in ApiToken.objects.filter(pk=int(ref))})
        prefix = ref if ref.startswith(TOKEN_MARKER) else TOKEN_MARKER + ref
        if MIN_PREFIX_CHARS <= len(prefix) - len(TOKEN_MARKER) and len(prefix) <= PREFIX_LENGTH:
            matches.update(
                {t.pk: t for t in ApiToken.objects.filter(token_prefix__startswith=prefix)}
            )
        if not matches:
            raise CommandError(f'No API token has the id or prefix "{ref}".')
        if len(matches) > 1:
            found = ", ".join(f"{t.token_prefix} (id {t.pk})" for t in matches.values())
            raise CommandError(f'"{ref}" is ambiguous: it matches {found}. Give the id.')
        return next(iter(matches.values()))

    def _revoke(self, ref: str) -> None:
        token = self._find(ref)
        try:
            token = token_revoke(actor=ACTOR, token=token)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f'Revoked API token {token.token_prefix}… of "{token.user.username}".')
