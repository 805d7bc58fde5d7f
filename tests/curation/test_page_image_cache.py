"""Page images are cacheable by the reviewer's browser for a day, as docs/ promise, and still staff-only."""
import pytest
from django.urls import reverse

from tests.factories import make_drawing, make_user

pytestmark = pytest.mark.django_db


def test_page_image_is_served_private_for_a_day_and_only_to_staff_who_may_view(client, roles):
    page = make_drawing(pages=1).pages.get()
    url = reverse("admin:curation_page_image", args=[page.pk])
    assert client.get(url).status_code == 302  # anonymous: to the login page

    client.force_login(make_user(None, username="staff-without-role"))  # staff, no permission to view drawings
    assert client.get(url).status_code == 403

    client.force_login(make_user("Reviewer"))
    response = client.get(url)
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, max-age=86400"
    assert "no-store" not in response["Cache-Control"] and not response.has_header("Expires")
    thumb = client.get(url + "?size=thumb")
    assert thumb["Cache-Control"] == "private, max-age=86400"
    again = client.get(url, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304

    # Other admin pages keep the admin's never-cache headers.
    assert "no-store" in client.get(reverse("admin:curation_drawing_changelist"))["Cache-Control"]
