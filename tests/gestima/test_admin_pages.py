"""Every admin screen a newcomer clicks after `./dev run` renders: list, add and change pages, for each role."""
import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

from tests.factories import make_user


@pytest.fixture
def demo(db, capsys):
    call_command("demo_data")
    capsys.readouterr()  # the demo prints its logins


def _pages():
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        if not opts.managed:
            continue
        yield model, model_admin, f"admin:{opts.app_label}_{opts.model_name}"


@pytest.mark.parametrize("role", ["superuser", "Manager", "Reviewer"])
def test_every_admin_screen_renders_on_demo_data(client, demo, role):
    user = make_user(superuser=True) if role == "superuser" else make_user(role)
    client.force_login(user)
    assert client.get("/").status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200
    seen = 0
    for model, model_admin, prefix in _pages():
        changelist = client.get(reverse(f"{prefix}_changelist"))
        assert changelist.status_code in (200, 403), (prefix, changelist.status_code)
        if changelist.status_code == 403:
            continue
        seen += 1
        add = client.get(reverse(f"{prefix}_add"), follow=True)  # some add pages are forms of their own
        assert add.status_code in (200, 403), (prefix, "add", add.status_code)
        first = model.objects.order_by("pk").first()
        if first is not None:
            change = client.get(reverse(f"{prefix}_change", args=[first.pk]), follow=True)
            assert change.status_code in (200, 403), (prefix, "change", change.status_code)
    assert seen >= 5
