"""Every admin URL, probed with the odd values a reviewer can type or paste: never a 500."""

import pytest
from django.contrib import admin
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import make_example, make_user

pytestmark = pytest.mark.django_db

ODD_IDS = ["12345678901234567890123", "0"]
ODD_VALUES = ["%C2%B2", "12345678901234567890123", "1e400", "%00"]
# Query keys the changelists and the review pages read by hand, and the admin's own.
KEYS = ["task__id__exact", "task", "after", "id__exact", "status__exact", "p", "o", "e", "q"]


def _admin_patterns(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _admin_patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def _concrete_paths():
    """Each admin route with its <int:...>/<path:...> parts filled with odd ids (regex routes skipped)."""
    import re

    paths = set()
    for route, _ in _admin_patterns():
        if not route.startswith("admin/") or route.startswith("^") or "^" in route:
            continue
        if "<" not in route:
            paths.add("/" + route)
            continue
        for odd in ODD_IDS:
            paths.add("/" + re.sub(r"<[^>]+>", odd, route))
    return sorted(paths)


def test_the_reported_addresses_answer_400_or_404_or_ignore_the_value(client):
    client.force_login(make_user(superuser=True, username="root"))
    client.raise_request_exception = False
    example = make_example()
    response = client.get("/admin/curation/example/?task__id__exact=%C2%B2")
    assert response.status_code in (200, 302, 400)  # the admin's own "?e=1" redirect, or the list
    response = client.get("/admin/curation/example/next-pending/?after=%C2%B2")
    assert response.status_code == 302 and response.url.endswith(f"/{example.pk}/review/")  # "after" ignored
    assert client.get("/admin/curation/example/12345678901234567890123/review/").status_code == 404
    response = client.get("/admin/curation/example/?task=12345678901234567890123")
    if connection.vendor == "sqlite":  # SQLite cannot bind the number; PostgreSQL compares it and finds nothing
        assert response.status_code == 400 and b"out of range" in response.content
    else:
        assert response.status_code == 200 and "0 examples" in response.content.decode()
    response = client.get("/admin/curation/example/?q=%00")  # PostgreSQL refuses NUL in any text parameter
    assert response.status_code == 400 and b"NUL" in response.content


def test_admin_urls_never_answer_500_to_odd_ids_and_query_strings(client):
    superuser = make_user(superuser=True, username="root")
    client.force_login(superuser)
    client.raise_request_exception = False
    make_example()
    failures = []
    for path in _concrete_paths():
        if "logout" in path:
            continue
        response = client.get(path)
        if response.status_code >= 500:
            failures.append((path, response.status_code))
    # Every list with the foreign-key and id filters; the example pages (read by hand) with every key.
    probes = [
        (f"/admin/{m._meta.app_label}/{m._meta.model_name}/", key, value)
        for m in admin.site._registry
        if m._meta.managed
        for key in ["task", "task__id__exact", "id__exact"]
        for value in ODD_VALUES[:2]
    ]
    probes += [
        (url, key, value)
        for url in ["/admin/curation/example/", "/admin/curation/example/next-pending/"]
        for key in KEYS
        for value in ODD_VALUES
    ]
    for url, key, value in probes:
        response = client.get(f"{url}?{key}={value}")
        if response.status_code >= 500:
            failures.append((f"{url}?{key}={value}", response.status_code))
    assert not failures, "\n".join(f"{path} answered {status}" for path, status in failures)
