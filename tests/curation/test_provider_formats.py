"""Whether a dataset version fits OpenAI, Azure OpenAI and Together, and why not: the rules and the version page."""

import base64

import pytest
from django.urls import reverse

from curation.models import DatasetMember
from curation.provider_formats import MB, RULES, ExampleFacts, ImageFact, provider_fit
from curation.selectors import dataset_version_provider_fit
from tests.factories import make_dataset_version, make_drawing, make_user, page_image_bytes


def _fit(examples, train_rows=10):
    return {name: provider_fit(examples, rules, train_rows=train_rows) for name, rules in RULES.items()}


def _example(images=(), roles=("system", "user"), line=1):
    return ExampleFacts(line=line, split="train", roles=[*roles, "assistant"], images=list(images))


def _png(role="user", size=1 * MB):
    return ImageFact(role=role, source="page", format="PNG", size_bytes=size)


def test_a_plain_vision_dataset_fits_all_three():
    assert _fit([_example([_png(), _png()]) for _ in range(10)]) == {"openai": [], "azure": [], "together": []}


def test_twelve_images_fit_azure_only():
    reasons = _fit([_example([_png()] * 12, line=4)])
    assert reasons["azure"] == []
    assert reasons["together"] == ["1 example has more than 10 images (Together AI's limit per example) (train line 4)"]
    assert "more than 10 images" in reasons["openai"][0]


def test_an_image_in_the_system_message_fits_openai_but_not_together():
    reasons = _fit([_example([_png(role="system")], line=7)])
    assert reasons["openai"] == [] and reasons["azure"] == []
    assert reasons["together"] == [
        "1 example has images in system messages: Together AI takes images only in user messages (train line 7)"
    ]


def test_size_format_url_role_and_row_count_each_say_why():
    examples = [
        _example([_png(size=11 * MB)], line=1),
        _example([ImageFact(role="user", source="data", format="GIF", size_bytes=1000)], line=2),
        _example([ImageFact(role="user", source="url")], line=3),
        _example([], roles=("developer", "user"), line=4),
    ]
    reasons = _fit(examples, train_rows=4)
    together = " | ".join(reasons["together"])
    assert "above 10 MB" in together and "GIF images" in together and "base64-encoded" in together
    assert "role 'developer'" in together
    assert "needs at least" not in together  # Together takes a single example
    openai = " | ".join(reasons["openai"])
    assert "4 training examples: OpenAI needs at least 10" in openai
    assert "base64" not in openai and "developer" not in openai  # OpenAI takes URLs and developer messages


@pytest.mark.django_db
def test_the_version_page_says_which_trainer_the_version_fits_and_why_not(client, roles):
    version = make_dataset_version(n_train=10, n_validation=1)
    drawing = make_drawing(pages=1)
    page = drawing.pages.get()
    # One member shows its drawing in the system message (OpenAI accepts it, Together does not) ...
    member = version.members.filter(split=DatasetMember.Split.TRAIN).order_by("position")[2]
    member.messages = [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "Price it."},
                {"type": "image_url", "image_url": {"url": f"page:{page.pk}"}},
            ],
        },
        {"role": "user", "content": "Part P-1"},
    ]
    member.save()
    # ... and another carries a GIF as a data URL, which no trainer takes.
    gif = base64.b64encode(b"GIF89a" + b"\0" * 30).decode()
    other = version.members.filter(split=DatasetMember.Split.VALIDATION).get()
    other.messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/gif;base64,{gif}"}}]}
    ]
    other.save()

    fits = {f["provider"]: f for f in dataset_version_provider_fit(version=version)}
    assert fits["together"]["fits"] is False and fits["openai"]["fits"] is False
    assert any("images in system messages" in r and "train line 3" in r for r in fits["together"]["reasons"])
    assert not any("system" in r for r in fits["openai"]["reasons"])
    assert any("GIF" in r and "validation line 1" in r for r in fits["azure"]["reasons"])

    version.cost_estimates = {"Qwen/Qwen3-VL-8B-Instruct": {"usd": None, "train_tokens": 10_000, "epochs": 3}}
    version.save()
    client.force_login(make_user("Manager"))
    html = client.get(reverse("admin:curation_datasetversion_change", args=[version.pk])).content.decode()
    assert "unknown (no published price)" in html and "$None" not in html
    assert "Fits which trainer" in html
    assert "Together AI" in html and "Azure OpenAI" in html
    assert "Together AI takes images only in user messages" in html
    assert "not valid" in html


@pytest.mark.django_db
def test_rendered_pages_are_judged_by_their_frozen_size():
    version = make_dataset_version(n_train=10, n_validation=0)
    drawing = make_drawing(pages=1)
    page = drawing.pages.get()
    for member in version.members.all():
        member.messages = [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": f"page:{page.pk}"},
                        "bytes": len(page_image_bytes(seed=1)),
                    }
                ],
            }
        ]
        member.save()
    assert all(f["fits"] for f in dataset_version_provider_fit(version=version))
    first = version.members.order_by("position").first()
    first.messages[0]["content"][0]["bytes"] = 12 * MB
    first.save()
    fits = {f["provider"]: f for f in dataset_version_provider_fit(version=version)}
    assert not fits["together"]["fits"] and "above 10 MB" in fits["together"]["reasons"][0]
