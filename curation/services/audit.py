"""The audit trail of examples: every status or target change, with who, when, before and after."""

from curation.models import Example, ExampleChange


def example_change_record(
    *, example: Example, user, field: str, before: str, after: str, note: str = ""
) -> ExampleChange:
    return ExampleChange.objects.create(
        example=example,
        user=user if (user is not None and user.is_authenticated) else None,
        field=field,
        before=before or "",
        after=after or "",
        note=note,
    )
