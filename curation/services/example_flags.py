"""Flags on examples that the next dataset build reads: near-duplicates (by the perceptual hashes of their
pages) and examples a fine-tuning provider dropped or refused.
"""

from collections import defaultdict

from django.conf import settings
from django.db import transaction

from curation.models import Example, Task
from curation.services.audit import example_change_record


def examples_flag_provider_refused(*, reasons: dict[int, str], user=None) -> list[Example]:
    """Flag examples a fine-tuning provider dropped or refused ({example id: the provider's words}); the next
    dataset build leaves them out and the review screen says why. Audited; flagging twice changes nothing."""
    from django.utils import timezone

    flagged = []
    with transaction.atomic():
        for example in Example.objects.select_for_update().filter(pk__in=list(reasons)).order_by("id"):
            reason = (reasons[example.pk] or "refused by the fine-tuning provider").strip()
            if example.provider_refused and example.provider_refused_reason == reason:
                continue
            before = example.provider_refused_reason
            example.provider_refused = True
            example.provider_refused_reason = reason
            example.provider_refused_at = timezone.now()
            example.save(
                update_fields=["provider_refused", "provider_refused_reason", "provider_refused_at", "updated_at"]
            )
            example_change_record(
                example=example,
                user=user,
                field="provider_refused",
                before=before,
                after=reason,
                note="dropped or refused by the fine-tuning provider; left out of the next build",
            )
            flagged.append(example)
    return flagged


def _hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _chunks(value: int, parts: int) -> list[tuple[int, int]]:
    # Pigeonhole: two 64-bit hashes within distance d agree exactly on at least one of d + 1 chunks,
    # so candidates come from chunk buckets instead of comparing every pair.
    width = -(-64 // parts)
    return [(i, (value >> (i * width)) & ((1 << width) - 1)) for i in range(parts)]


def examples_flag_near_duplicates(*, task: Task) -> int:
    """Flag examples whose drawing has a page within NEAR_DUPLICATE_MAX_DISTANCE bits (dHash) of a page of
    an earlier example of another part; the flag points at that earlier example. Returns the count flagged.
    """
    max_distance = settings.NEAR_DUPLICATE_MAX_DISTANCE
    examples = list(
        Example.objects.filter(task=task, drawing__isnull=False)
        .order_by("id")
        .prefetch_related("drawing__pages")
        .only("id", "group_key", "drawing", "is_near_duplicate", "near_duplicate_of")
    )
    buckets = defaultdict(list)  # (chunk index, chunk value) -> [(example, page hash)]
    found = {}
    for example in examples:
        hashes = []
        for page in example.drawing.pages.all():
            try:
                hashes.append(int(page.phash, 16))
            except (TypeError, ValueError):
                continue  # no hash (not rendered by a renderer that computes one)
        match = None
        for value in hashes:
            for key in _chunks(value, max_distance + 1):
                for other, other_value in buckets[key]:
                    if other.group_key != example.group_key and _hamming(value, other_value) <= max_distance:
                        match = other
                        break
                if match:
                    break
            if match:
                break
        found[example.pk] = match.pk if match else None
        for value in hashes:
            for key in _chunks(value, max_distance + 1):
                buckets[key].append((example, value))
    updates = []
    for example in examples:
        target = found[example.pk]
        if example.near_duplicate_of_id != target or example.is_near_duplicate != (target is not None):
            example.near_duplicate_of_id = target
            example.is_near_duplicate = target is not None
            updates.append(example)
    Example.objects.bulk_update(updates, ["near_duplicate_of", "is_near_duplicate"], batch_size=500)
    return sum(1 for target in found.values() if target is not None)
