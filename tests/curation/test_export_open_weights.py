"""The open-weight export read back with Hugging Face `datasets`, as TRL and LLaMA-Factory users load it."""

import hashlib
import io
import json
from pathlib import Path

import datasets  # requirements-dev.txt: what users load the export with
import pytest
from PIL import Image, ImageChops

from curation.models import Dataset, DatasetVersion, DrawingPage, Example
from curation.services.datasets import dataset_build
from curation.services.drawing_uploads import drawing_ingest
from curation.services.export_queue import dataset_version_export_request
from curation.services.exports import dataset_version_export
from tests.factories import make_drawing, make_example, make_task, technology_target

# Vector and scanned sheets, one to three pages each: 6 drawings, 9 page images.
DRAWINGS = ["PDM-280686.pdf", "10119939.pdf", "JR_810952.pdf", "10113153.pdf", "10138363.pdf", "10162527.pdf"]


def _rendered_version(corpus, run_worker, capture):
    """A dataset version whose examples show corpus drawings rendered by the real render job."""
    with capture(execute=True):
        drawings = [
            drawing_ingest(content=(corpus / "drawings" / name).read_bytes(), original_name=name)[0]
            for name in DRAWINGS
        ]
    run_worker("render")
    task = make_task()
    for drawing in drawings:
        drawing.refresh_from_db()
        assert drawing.status == drawing.Status.RENDERED, drawing.error
        make_example(
            task=task,
            drawing=drawing,
            status=Example.Status.APPROVED,
            target=technology_target(drawing.part_number, minutes=4.5),
        )
    dataset = Dataset.objects.create(name="Open weights & co", task=task, validation_fraction=0.34)
    version = dataset_build(dataset=dataset)
    assert version.counts["train"] and version.counts["validation"], version.counts
    return version


def _load_as_the_readme_says(export_dir: Path, monkeypatch, cache_dir: Path):
    """Runs the `datasets` snippet of the export's own README.md, from the folder that holds the export."""
    readme = (export_dir / "README.md").read_text()
    snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'load_dataset("json"' in snippet and "datasets.Image()" in snippet
    monkeypatch.chdir(export_dir.parent)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache_dir))  # not the user's cache
    scope = {}
    exec(compile(snippet, str(export_dir / "README.md"), "exec"), scope)  # noqa: S102 - our own README
    return scope["ds"]


def _expected(member, pages):
    """The version member as the rows should say it: roles, text per message, and its page images in order."""
    texts, images = [], []
    for message in [*member.messages, {"role": "assistant", "content": member.target}]:
        content = message["content"]
        if isinstance(content, str):
            texts.append((message["role"], [content]))
            continue
        texts.append((message["role"], [p["text"] for p in content if p["type"] == "text"]))
        images += [pages[int(p["image_url"]["url"].split(":")[1])] for p in content if p["type"] == "image_url"]
    return texts, images


@pytest.mark.django_db
def test_open_weight_export_loads_with_datasets_and_every_row_matches_the_version(
    corpus, run_worker, django_capture_on_commit_callbacks, tmp_path, monkeypatch
):
    version = _rendered_version(corpus, run_worker, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        dataset_version_export_request(version=version, fmt="open_weights")
    run_worker("default")
    version.refresh_from_db()
    assert version.export_status == DatasetVersion.ExportStatus.DONE, version.export_error
    export_dir = Path(version.export_dir)
    assert version.manifest["format"] == "open_weights" and version.manifest["how_to_load"] == "README.md"

    ds = _load_as_the_readme_says(export_dir, monkeypatch, tmp_path / "hf-cache")
    assert {split: ds[split].num_rows for split in ds} == {
        "train": version.counts["train"],
        "validation": version.counts["validation"],
    }

    pages = {page.pk: page for page in DrawingPage.objects.all()}
    assert len(pages) == 9
    images_seen = set()
    for split in ("train", "validation"):
        members = list(version.members.filter(split=split).order_by("position", "pk"))
        rows = list(ds[split])
        assert len(rows) == len(members)
        for member, row in zip(members, rows):
            texts, member_pages = _expected(member, pages)
            # TRL column: roles and every text part as the version froze them, an image part per page.
            assert [
                (m["role"], [p["text"] for p in m["content"] if p["type"] == "text"]) for m in row["messages"]
            ] == texts
            assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
            assert json.loads(row["messages"][-1]["content"][0]["text"]) == json.loads(member.target)
            user_parts = row["messages"][1]["content"]
            assert sum(p["type"] == "image" for p in user_parts) == len(member_pages) == len(row["images"])
            # LLaMA-Factory column: the same text, with one <image> per image, in order.
            assert [m["role"] for m in row["conversations"]] == [role for role, _ in texts]
            assert row["conversations"][1]["content"].count("<image>") == len(member_pages)
            assert row["conversations"][-1]["content"] == member.target
            # Every image decodes and is the page's own image: same pixels as the page file.
            for image, page in zip(row["images"], member_pages):
                image.load()
                with page.image.open("rb") as handle:
                    page_data = handle.read()
                assert hashlib.sha256(page_data).hexdigest() == page.sha256
                original = Image.open(io.BytesIO(page_data))
                assert image.size == (page.width, page.height) == original.size
                assert ImageChops.difference(image.convert("RGB"), original.convert("RGB")).getbbox() is None
                images_seen.add(page.pk)
    assert images_seen == set(pages)  # every rendered page reached the dataset

    # The files on disk are the page files byte for byte, named by their sha256, beside the JSONL.
    raw = datasets.load_dataset("json", data_files=str(export_dir / "train.jsonl"), cache_dir=str(tmp_path / "raw"))
    for paths in raw["train"]["images"]:
        for rel in paths:
            assert not Path(rel).is_absolute() and rel.startswith("images/")
            data = (export_dir / rel).read_bytes()
            assert Path(rel).stem == hashlib.sha256(data).hexdigest()
            assert hashlib.sha256(data).hexdigest() in {p.sha256 for p in pages.values()}

    # LLaMA-Factory's dataset_info.json names both splits in the sharegpt layout.
    info = json.loads((export_dir / "dataset_info.json").read_text())
    assert sorted(info) == [f"open-weights-co-v{version.number}-train", f"open-weights-co-v{version.number}-validation"]
    entry = info[f"open-weights-co-v{version.number}-train"]
    assert entry["file_name"] == "train.jsonl" and entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "conversations", "images": "images"}
    readme = (export_dir / "README.md").read_text()
    assert "Open weights & co v" in readme  # not HTML-escaped
    assert (
        f"dataset_dir: {export_dir.name}" in readme
        and f"eval_dataset: open-weights-co-v{version.number}-validation" in readme
    )


@pytest.mark.django_db
def test_readme_snippet_names_only_splits_with_rows(tmp_path, monkeypatch):
    """`datasets` refuses a split whose file is empty: an export with no validation rows must not name it."""
    task = make_task()
    for i in range(3):
        make_example(
            task=task, drawing=make_drawing(), status=Example.Status.APPROVED, target=technology_target(f"N-{i}")
        )
    dataset = Dataset.objects.create(name="no-val", task=task, validation_fraction=0)
    version = dataset_build(dataset=dataset)
    assert version.counts["validation"] == 0
    out = tmp_path / "ow"
    paths = dataset_version_export(version=version, out_dir=out, fmt="open_weights")
    assert paths["validation"] is None
    readme = (out / "README.md").read_text()
    assert "validation" not in readme
    assert list(json.loads((out / "dataset_info.json").read_text())) == [f"no-val-v{version.number}-train"]
    # The snippet as written loads.
    ds = _load_as_the_readme_says(out, monkeypatch, tmp_path / "hf-cache")
    assert ds["train"].num_rows == 3 and all(len(row["images"]) == 1 for row in ds["train"])
