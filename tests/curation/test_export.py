"""Export of dataset versions: format, validator round trip, atomic files, kill safety, job idempotence."""

import base64
import hashlib
import json
import os

import django_rq
import pytest
from django.core.management import call_command
from django.db import connections

from curation.jobs import dataset_version_export_job
from curation.models import Dataset, DatasetVersion, Example
from curation.openai_format import validate_jsonl
from curation.services.datasets import dataset_build
from curation.services.export_queue import dataset_version_export_request, export_job_id
from curation.services.exports import ExportError, dataset_version_export
from tests.factories import make_drawing, make_example, make_task, technology_target

APPROVED = Example.Status.APPROVED


def build_version(n=14, pages=1, **fields):
    task = make_task()
    examples = [
        make_example(
            task=task,
            drawing=make_drawing(pages=pages),
            status=APPROVED,
            target=technology_target(f"P-{i}", minutes=3 + i),
        )
        for i in range(n)
    ]
    dataset = Dataset.objects.create(name=fields.pop("name", "export-me"), task=task, validation_fraction=0.2, **fields)
    return dataset_build(dataset=dataset), examples


def page_bytes_by_sha(examples):
    out = {}
    for example in examples:
        for page in example.drawing.pages.all():
            data = open(page.image.path, "rb").read()
            out[hashlib.sha256(data).hexdigest()] = data
    return out


@pytest.mark.django_db
def test_openai_export_passes_the_validator_and_embeds_the_page_bytes(tmp_path):
    import sys

    version, examples = build_version(pages=2)
    seen = []
    interval = sys.getswitchinterval()
    paths = dataset_version_export(version=version, out_dir=tmp_path / "out", progress=lambda d, t: seen.append((d, t)))
    assert sys.getswitchinterval() == interval  # the export's faster GIL switching is undone
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "train.jsonl", "validation.jsonl"]
    assert seen[-1] == (14, 14)

    pages = page_bytes_by_sha(examples)
    counts = {}
    for split in ("train", "validation"):
        with open(paths[split], encoding="utf-8") as handle:
            assert list(validate_jsonl(handle)) == []
        lines = [json.loads(line) for line in open(paths[split], encoding="utf-8")]
        counts[split] = len(lines)
        for line in lines:
            roles = [m["role"] for m in line["messages"]]
            assert roles == ["system", "user", "assistant"]
            json.loads(line["messages"][-1]["content"])  # the target is the task's JSON
            urls = [p["image_url"]["url"] for p in line["messages"][1]["content"] if p["type"] == "image_url"]
            assert len(urls) == 2
            for url in urls:
                assert url.startswith("data:image/png;base64,")
                data = base64.b64decode(url.split(",", 1)[1])
                assert hashlib.sha256(data).hexdigest() in pages
    assert counts == {"train": version.counts["train"], "validation": version.counts["validation"]}

    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["version_id"] == version.pk and manifest["content_hash"] == version.content_hash
    assert manifest["task"] == "technology_builder" and manifest["gates"] == version.gates
    for split in ("train", "validation"):
        entry = manifest["files"][f"{split}.jsonl"]
        assert entry["sha256"] == hashlib.sha256(paths[split].read_bytes()).hexdigest()
        assert entry["lines"] == counts[split]


@pytest.mark.django_db
def test_open_weights_export_writes_image_files_beside_the_jsonl(tmp_path):
    version, examples = build_version(pages=2)
    paths = dataset_version_export(version=version, out_dir=tmp_path / "ow", fmt="open_weights")
    pages = page_bytes_by_sha(examples)
    for line in map(json.loads, open(paths["train"], encoding="utf-8")):
        user = line["conversations"][1]  # LLaMA-Factory: string content, <image> where each image stood
        assert isinstance(user["content"], str) and user["content"].count("<image>") == len(line["images"]) == 2
        parts = line["messages"][1]["content"]  # TRL: content as parts
        assert [p["type"] for p in parts] == ["text", "image", "image"]
        for rel in line["images"]:
            data = (tmp_path / "ow" / rel).read_bytes()
            assert pages[hashlib.sha256(data).hexdigest()] == data
    assert json.loads(paths["manifest"].read_text())["format"] == "open_weights"
    assert sorted(p.name for p in (tmp_path / "ow").iterdir()) == [
        "README.md",
        "dataset_info.json",
        "images",
        "manifest.json",
        "train.jsonl",
        "validation.jsonl",
    ]


@pytest.mark.django_db
def test_export_aborted_midway_leaves_no_file_under_a_final_name(tmp_path):
    version, _ = build_version()

    def stop(done, total):
        if done == 5:
            raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        dataset_version_export(version=version, out_dir=tmp_path / "out", progress=stop)
    assert list((tmp_path / "out").iterdir()) == []  # and no temp file either


@pytest.mark.django_db(transaction=True)
def test_export_killed_midway_leaves_no_file_under_a_final_name(tmp_path):
    """A real kill (os._exit in a forked child: no cleanup runs) leaves only a .partial dot-file."""
    version, _ = build_version()
    out = tmp_path / "out"

    def die(done, total):
        if done == 5:
            os._exit(9)

    pid = os.fork()
    if pid == 0:  # child
        try:
            if connections["default"].vendor != "sqlite":
                connections["default"].connection = None  # never touch the parent's socket: reconnect
            dataset_version_export(version=DatasetVersion.objects.get(pk=version.pk), out_dir=out, progress=die)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9
    names = sorted(p.name for p in out.iterdir())
    assert not {"train.jsonl", "validation.jsonl", "manifest.json"} & set(names)
    assert names and all(name.startswith(".") and name.endswith(".partial") for name in names)
    # The export then succeeds normally.
    paths = dataset_version_export(version=version, out_dir=out)
    assert paths["train"].is_file()


@pytest.mark.django_db
def test_version_with_format_errors_is_refused(tmp_path):
    version, examples = build_version()
    with open(examples[0].drawing.pages.first().image.path, "wb") as handle:
        handle.write(b"not a png")
    version = dataset_build(dataset=version.dataset)  # the bad page makes a new version with a problem
    with pytest.raises(ExportError, match=f"1 format error.*example {examples[0].pk}"):
        dataset_version_export(version=version, out_dir=tmp_path / "x")


@pytest.mark.django_db
def test_page_changed_after_the_build_stops_the_export(tmp_path):
    version, examples = build_version()
    from tests.factories import page_image_bytes

    page = examples[0].drawing.pages.first()
    with open(page.image.path, "wb") as handle:
        handle.write(page_image_bytes(seed=999))
    with pytest.raises(ExportError, match="changed since the dataset version was built"):
        dataset_version_export(version=version, out_dir=tmp_path / "x")
    assert not (tmp_path / "x" / "train.jsonl").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["openai", "open_weights"])
def test_page_rewritten_in_place_with_same_size_and_mtime_stops_the_export(tmp_path, fmt):
    """A file changed in place (same size, mtime restored) must not reach a paid job: its sha256 is checked."""
    version, examples = build_version()
    page = examples[3].drawing.pages.first()
    path = page.image.path
    stat = os.stat(path)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # one byte flipped in the image data: a broken image of the same size
    with open(path, "r+b") as handle:
        handle.write(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size and os.stat(path).st_mtime_ns == stat.st_mtime_ns
    with pytest.raises(ExportError) as caught:
        dataset_version_export(version=version, out_dir=tmp_path / "x", fmt=fmt)
    assert str(caught.value) == (
        f"image of drawing {page.drawing.part_number} page 1 (page id {page.pk}) changed since "
        "the dataset version was built (sha256 differs): rebuild the dataset"
    )
    assert sorted(p.name for p in (tmp_path / "x").iterdir() if p.name != "images") == []  # nothing to upload


@pytest.mark.django_db
def test_unknown_format_is_refused(tmp_path):
    version, _ = build_version(n=10)
    with pytest.raises(ExportError, match="Unknown export format 'csv'"):
        dataset_version_export(version=version, out_dir=tmp_path, fmt="csv")


@pytest.mark.django_db
def test_export_job_through_a_real_worker_twice_is_idempotent(run_worker, django_capture_on_commit_callbacks):
    version, _ = build_version()
    with django_capture_on_commit_callbacks(execute=True):
        dataset_version_export_request(version=version)
    with pytest.raises(ExportError, match="already being exported"):
        dataset_version_export_request(version=version)
    run_worker("default")
    version.refresh_from_db()
    assert version.export_status == DatasetVersion.ExportStatus.DONE, version.export_error
    assert version.export_progress == 14 and version.manifest["content_hash"] == version.content_hash
    train = os.path.join(version.export_dir, "train.jsonl")
    before = os.stat(train).st_mtime_ns

    # The same job again (e.g. a retry): it finds the version done and leaves the files alone.
    django_rq.get_queue("default").enqueue(dataset_version_export_job, version.pk, job_id=export_job_id(version.pk))
    run_worker("default")
    version.refresh_from_db()
    assert version.export_status == DatasetVersion.ExportStatus.DONE
    assert os.stat(train).st_mtime_ns == before


@pytest.mark.django_db
def test_failed_export_job_stores_the_error_on_the_version(run_worker, django_capture_on_commit_callbacks):
    version, examples = build_version()
    with open(examples[1].drawing.pages.first().image.path, "wb") as handle:
        handle.write(b"changed")
    with django_capture_on_commit_callbacks(execute=True):
        dataset_version_export_request(version=version)
    run_worker("default")
    version.refresh_from_db()
    assert version.export_status == DatasetVersion.ExportStatus.FAILED
    assert "changed since the dataset version was built" in version.export_error


@pytest.mark.django_db
def test_export_command(tmp_path, capsys):
    version, _ = build_version()
    call_command("export_dataset", f"{version.dataset.name}:v{version.number}", "--out", str(tmp_path / "cmd"))
    out = capsys.readouterr().out
    assert f"train: {tmp_path / 'cmd' / 'train.jsonl'}" in out
    assert (tmp_path / "cmd" / "manifest.json").is_file()


# --- admin ------------------------------------------------------------------------------------


def _post_export(client, version):
    from django.urls import reverse

    return client.post(
        reverse("admin:curation_datasetversion_changelist"),
        {"action": "export", "_selected_action": [version.pk]},
        follow=True,
    )


@pytest.mark.django_db
def test_manager_exports_from_the_admin_and_downloads_streamed_files(
    client, run_worker, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    from tests.factories import make_user

    version, _ = build_version()
    client.force_login(make_user("Manager"))
    with django_capture_on_commit_callbacks(execute=True):
        response = _post_export(client, version)
    assert "1 export(s) queued" in response.content.decode()
    run_worker("default")
    page = client.get(reverse("admin:curation_datasetversion_change", args=[version.pk])).content.decode()
    assert "Done" in page and "train.jsonl" in page
    download = client.get(reverse("admin:curation_datasetversion_download", args=[version.pk, "train.jsonl"]))
    assert download.status_code == 200 and download.streaming
    body = b"".join(download.streaming_content)
    version.refresh_from_db()
    assert hashlib.sha256(body).hexdigest() == version.manifest["files"]["train.jsonl"]["sha256"]
    assert "attachment" in download["Content-Disposition"]
    # Only the three exported files can be asked for.
    bad = client.get(reverse("admin:curation_datasetversion_download", args=[version.pk, "..%2Fsecret"]), follow=True)
    assert "No exported file named" in bad.content.decode()


@pytest.mark.django_db
def test_reviewer_cannot_export_or_download(client):
    from django.urls import reverse

    from tests.factories import make_user

    version, _ = build_version()
    client.force_login(make_user("Reviewer"))
    assert _post_export(client, version).status_code == 403
    version.refresh_from_db()
    assert version.export_status == DatasetVersion.ExportStatus.NONE
    assert (
        client.get(reverse("admin:curation_datasetversion_download", args=[version.pk, "train.jsonl"])).status_code
        == 403
    )


@pytest.mark.django_db
def test_export_with_redis_away_says_so(client, settings):
    from tests.factories import make_user

    version, _ = build_version()
    settings.RQ_QUEUES = {name: {**conf, "URL": "redis://127.0.0.1:1/0"} for name, conf in settings.RQ_QUEUES.items()}
    client.force_login(make_user("Manager"))
    response = _post_export(client, version)
    page = response.content.decode()
    assert "The job queue is unavailable" in page
    # No promise of an automatic retry (nothing would keep it): it says what to do instead.
    assert "retried automatically" not in page and "Nothing was queued: export again once the queue is back" in page
    version.refresh_from_db()
    assert version.export_status == DatasetVersion.ExportStatus.NONE  # not left "queued" forever


@pytest.mark.django_db
def test_export_left_running_by_a_killed_worker_can_be_requested_again(django_capture_on_commit_callbacks):
    version, _ = build_version(n=10)
    DatasetVersion.objects.filter(pk=version.pk).update(export_status=DatasetVersion.ExportStatus.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        version = dataset_version_export_request(version=version)  # no job in Redis: the status was stale
    assert version.export_status == DatasetVersion.ExportStatus.QUEUED


@pytest.mark.django_db
def test_page_touched_but_unchanged_still_exports(tmp_path):
    version, examples = build_version(n=10)
    path = examples[0].drawing.pages.first().image.path
    os.utime(path, ns=(1, 1))  # new mtime, same bytes: the sha256 decides, and it matches
    assert dataset_version_export(version=version, out_dir=tmp_path / "ok")["train"].is_file()
