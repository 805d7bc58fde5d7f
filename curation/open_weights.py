"""The open-weights export layout: chat rows for TRL and LLaMA-Factory, image files beside them, how-to guides.

Format only: the export (`curation.services.exports`) streams the rows and owns the files' atomicity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from django.template.loader import render_to_string
from django.utils.text import slugify

from curation.openai_format import PageLoader, decode_data_url, fingerprint, image_part_url, parse_page_ref, sniff_mime

IMAGE_PLACEHOLDER = "<image>"
IMAGES_DIR = "images"


class OpenWeightsImages:
    """Image files beside the JSONL, named by content hash (a page used twice is written once).

    `write(name, data)` stores one file atomically (the export gives it its storage: a folder or a bucket).
    """

    def __init__(self, write: Callable[[str, bytes], None]):
        self.write = write
        self.seen: set[str] = set()
        self.written = 0

    def save(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(sniff_mime(data), "bin")
        name = f"{IMAGES_DIR}/{digest}.{ext}"
        if name not in self.seen:
            self.write(name, data)
            self.seen.add(name)
            self.written += 1
        return name


def open_weights_line(messages: list[dict], target: str, load: PageLoader, images: OpenWeightsImages) -> dict:
    """One row in the two chat layouts open-weight trainers read, over one list of image paths.

    `messages` (TRL, Hugging Face chat templates): every content a list of parts, `{"type": "text",
    "text": ...}` or `{"type": "image"}` where an image stood. `conversations` (LLaMA-Factory
    "sharegpt"): string contents with `<image>` where each image stood. `images`: paths relative to
    the export folder, in the order the images appear.
    """
    parts_out, text_out, paths = [], [], []
    for message in [*messages, {"role": "assistant", "content": target}]:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else []
        if isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    parts.append({"type": "text", "text": part.get("text", "")})
                elif part.get("type") == "image_url":
                    url = image_part_url(part) or ""
                    page_id = parse_page_ref(url)
                    data = load(page_id, fingerprint(part)) if page_id is not None else decode_data_url(url)
                    paths.append(images.save(data))
                    parts.append({"type": "image"})
        parts_out.append({"role": message["role"], "content": parts})
        text_out.append(
            {
                "role": message["role"],
                "content": "\n".join(IMAGE_PLACEHOLDER if p["type"] == "image" else p["text"] for p in parts),
            }
        )
    return {"messages": parts_out, "conversations": text_out, "images": paths}


def open_weights_guides(version, out_dir: Path, line_counts: dict[str, int]) -> dict[str, bytes]:
    """README.md (how to load the folder with `datasets`, TRL, LLaMA-Factory) and LLaMA-Factory's dataset_info.json.

    Only splits with rows are named: `datasets` refuses a split whose file is empty.
    """
    splits = [split for split in ("train", "validation") if line_counts.get(split)]
    name = f"{slugify(version.dataset.name) or f'dataset-{version.dataset_id}'}-v{version.number}"
    dataset_info = {
        f"{name}-{split}": {
            "file_name": f"{split}.jsonl",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "images"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        }
        for split in splits
    }
    readme = render_to_string(
        "curation/exports/open_weights_README.md",
        {
            "version": version,
            "name": name,
            "folder": out_dir.name,
            "splits": splits,
            "split_rows": [(split, line_counts[split]) for split in splits],
            "placeholder": IMAGE_PLACEHOLDER,
        },
    )
    return {
        "README.md": readme.encode("utf-8"),
        "dataset_info.json": (json.dumps(dataset_info, indent=2) + "\n").encode("utf-8"),
    }


def open_weights_manifest(manifest: dict) -> dict:
    """The manifest's open-weights entries: where the images are and how to read the rows."""
    return {
        **manifest,
        "images_dir": IMAGES_DIR,
        "image_placeholder": IMAGE_PLACEHOLDER,
        "columns": {
            "messages": "chat, content as parts (TRL)",
            "conversations": "chat, string content with <image> (LLaMA-Factory sharegpt)",
            "images": "image paths relative to this folder",
        },
        "how_to_load": "README.md",
    }
