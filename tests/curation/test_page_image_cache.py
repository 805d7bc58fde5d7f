"""Page images are cacheable by the reviewer's browser (for good under a URL with their content hash, briefly
without), and still staff-only on every request."""

import pytest
from django.urls import reverse

from curation.admin.drawings import page_image_url
from tests.factories import make_drawing, make_user

pytestmark = pytest.mark.django_db


def test_page_image_is_served_private_and_only_to_staff_who_may_view(client, roles):
    page = make_drawing(pages=1).pages.get()
    url = reverse("admin:curation_page_image", args=[page.pk])
    assert client.get(url).status_code == 302  # anonymous: to the login page

    client.force_login(make_user(None, username="staff-without-role"))  # staff, no permission to view drawings
    assert client.get(url).status_code == 403

    client.force_login(make_user("Reviewer"))
    response = client.get(url)
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, max-age=300"
    assert "no-store" not in response["Cache-Control"] and not response.has_header("Expires")
    thumb = client.get(url + "?size=thumb")
    assert thumb["Cache-Control"] == "private, max-age=300"
    again = client.get(url, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304

    # Other admin pages keep the admin's never-cache headers.
    assert "no-store" in client.get(reverse("admin:curation_drawing_changelist"))["Cache-Control"]


def test_page_image_under_its_content_hash_is_immutable_and_still_checked_on_each_request(client, roles):
    page = make_drawing(pages=1).pages.get()
    url = page_image_url(page)
    assert url.endswith(f"?v={page.sha256[:16]}")

    client.force_login(make_user("Reviewer"))
    response = client.get(url)
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"
    # An old hash (the page was rendered again meanwhile) is not the content any more: kept briefly only.
    assert (
        client.get(reverse("admin:curation_page_image", args=[page.pk]) + "?v=0000000000000000")["Cache-Control"]
        == "private, max-age=300"
    )

    client.force_login(make_user(None, username="staff-no-view"))
    assert client.get(url).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302
