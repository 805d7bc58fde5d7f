"""The factories make what the services make: a rendered drawing with readable pages, a schema-valid example."""

import json

import jsonschema
import pytest
from PIL import Image

from tests.factories import make_example, make_user


@pytest.mark.django_db
def test_example_factory_builds_a_reviewable_example():
    example = make_example()
    page = example.drawing.pages.get()
    with Image.open(page.image.path) as image:
        assert image.size == (page.width, page.height)
    jsonschema.validate(json.loads(example.target), example.task.output_schema)
    assert make_user("Reviewer").has_perm("curation.review_example")
    assert not make_user("Reviewer").has_perm("finetune.launch_run")
    assert make_user("Manager").has_perm("finetune.launch_run")
