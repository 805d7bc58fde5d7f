"""Run as a script by test_sqlite_concurrency.py: N reviewers approve N examples at once on a SQLite file.

Prints one JSON line: the HTTP status codes and the number of approved examples. Run with
DATABASE_URL=sqlite:///<file>; the settings' SQLite options (IMMEDIATE transactions, WAL) apply as in production.
"""

import json
import sys
import threading


def main(count: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from curation.models import Example
    from tests.factories import make_example, make_task, make_user

    call_command("migrate", verbosity=0)
    task = make_task()
    examples = [make_example(task=task) for _ in range(count)]
    clients = []
    for i in range(count):
        client = Client(raise_request_exception=False)
        client.force_login(make_user("Reviewer", username=f"reviewer-{i}"))
        clients.append(client)
    connection.close()
    journal = None
    statuses = [None] * count
    start = threading.Barrier(count)

    def approve(i):
        start.wait()
        try:
            response = clients[i].post(
                f"/admin/curation/example/{examples[i].pk}/review/",
                {"decision": "approve", "expected_status": "pending"},
            )
            statuses[i] = response.status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with connection.cursor() as cursor:
        journal = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    approved = Example.objects.filter(status=Example.Status.APPROVED).count()
    print(json.dumps({"statuses": statuses, "approved": approved, "journal_mode": journal}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
