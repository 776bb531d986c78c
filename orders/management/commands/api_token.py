from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from orders.models import ApiToken


class Command(BaseCommand):
    help = "Make a JSON API token for a user. The token is printed once and stored only hashed."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--name", default="api", help="what the token is for")
        parser.add_argument("--revoke", action="store_true", help="delete the named token instead")

    def handle(self, *args, **options):
        name = options["name"]
        limit = ApiToken._meta.get_field("name").max_length
        if not name.strip() or len(name) > limit:
            raise CommandError(
                f"--name must be 1 to {limit} characters (not blank), got {len(name)} characters"
            )
        try:
            user = get_user_model().objects.get(username=options["user"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {options['user']!r}") from None
        if options["revoke"]:
            deleted, _ = ApiToken.objects.filter(owner=user, name=options["name"]).delete()
            if not deleted:
                raise CommandError(f"{user} has no token named {options['name']!r}")
            self.stdout.write(f"revoked {options['name']!r} of {user}")
            return
        if ApiToken.objects.filter(owner=user, name=options["name"]).exists():
            raise CommandError(
                f"{user} already has a token named {options['name']!r}; pick another --name "
                "or --revoke it first"
            )
        _, key = ApiToken.issue(user, options["name"])
        self.stdout.write(key)
