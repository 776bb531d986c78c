from django.conf import settings
from django.core.management.base import BaseCommand

from tradesite.demo import bootstrap


class Command(BaseCommand):
    help = (
        "Create demo users, venues, symbols, a paper account, example strategy configs and the "
        "default periodic tasks, where they do not exist yet. Passwords come from "
        "DEMO_ADMIN_PASSWORD / DEMO_PASSWORD or are generated, printed once and kept in "
        "var/demo-credentials.txt."
    )

    def handle(self, *args, **options):
        path = settings.VAR_DIR / "demo-credentials.txt"
        report = bootstrap(write_credentials_to=path)
        for line in report.created:
            self.stdout.write(f"created {line}")
        for line in report.skipped:
            self.stdout.write(self.style.WARNING(f"skipped {line}"))
        for user, password in report.credentials.items():
            self.stdout.write(self.style.SUCCESS(f"login: {user} / {password}"))
        if report.credentials:
            self.stdout.write(f"(kept in {path})")
        if not report.created:
            self.stdout.write("nothing to do: demo data is in place")
