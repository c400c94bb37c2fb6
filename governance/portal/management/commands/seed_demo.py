from django.core.management.base import BaseCommand

from governance.portal.demo import DEMO_PASSWORD, seed_demo


class Command(BaseCommand):
    help = "Load the Northwind demo organisation. Idempotent: a second run adds nothing."

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale",
            type=int,
            default=1,
            help="Multiply the generated workforce (150 people per unit) for load work.",
        )

    def handle(self, *args, scale: int, **options):
        if scale < 1 or scale > 2000:
            self.stderr.write("--scale must be between 1 and 2000.")
            raise SystemExit(2)
        result = seed_demo(scale=scale)
        if result.created:
            for name, count in sorted(result.created.items()):
                self.stdout.write(f"  created {count:>6} {name}")
        else:
            self.stdout.write("  nothing to create: the demo data is already there")
        self.stdout.write("")
        self.stdout.write("Portal sign-in at http://127.0.0.1:8000/admin/")
        for username, roles in result.logins:
            self.stdout.write(f"  {username:<14} {roles}")
        self.stdout.write(f"Password for every demo account: {DEMO_PASSWORD}")
        if result.scim_token:
            self.stdout.write(
                "SCIM endpoint http://127.0.0.1:8000/scim/v2/ for source 'Northwind Entra ID', "
                f"bearer token (shown once): {result.scim_token}"
            )
        self.stdout.write(self.style.SUCCESS(f"Admin login: admin / {DEMO_PASSWORD}"))
