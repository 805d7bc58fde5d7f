"""Few-shot from reviewed examples: a model that cannot be fine-tuned is shown, before each question, the k
most similar approved examples of a dataset version's train split (their page images as a user turn, their
approved target as the assistant's answer). Reads the data side only through curation.selectors.

Never shown: an example of the evaluated split, the drawing itself, another drawing of its part (same
group key) or a near-duplicate (a page within NEAR_DUPLICATE_MAX_DISTANCE bits of dHash, or the example's
near-duplicate link): otherwise the model would copy the answer and the evaluation would flatter it.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from curation.models import DatasetMember
from curation.openai_format import messages_with_prompt
from curation.selectors import dataset_version_member_facts, drawing_page_hashes
from curation.tokens import messages_text_tokens

RULE = "dhash_tags_v1"
TAG_WEIGHT = 4  # one shared tag value (machine, material, industry) counts as 4 bits of page dHash distance
NO_HASH_DISTANCE = 64  # a drawing without page hashes is as far as two hashes can be
RULE_TEXT = (
    f"score = smallest dHash Hamming distance between the drawing's pages and the example's pages "
    f"({NO_HASH_DISTANCE} without hashes) minus {TAG_WEIGHT} per shared tag value; lowest first, ties by "
    "example id. Only approved train-split examples; never the drawing itself, its group (part), its "
    "near-duplicates or an example of the evaluated split."
)


class FewShotError(Exception):
    """A few-shot model that cannot be set up (no train split, evaluated on train); the message says why."""


def few_shot_k_default() -> int:
    return int(getattr(settings, "FEW_SHOT_K", 3))


def few_shot_config(*, dataset_version, split: str, k: int | None) -> dict:
    """What an eval run (and the model version promoted from it) records: k, the rule, where shots come from."""
    k = few_shot_k_default() if k is None else int(k)
    if k < 1 or k > 20:
        raise FewShotError(f"k must be between 1 and 20 (got {k}).")
    if split == DatasetMember.Split.TRAIN:
        raise FewShotError("A few-shot model takes its examples from the train split: evaluate it on another split.")
    if not dataset_version.members.filter(split=DatasetMember.Split.TRAIN).exists():
        raise FewShotError(f"{dataset_version} has no train split to take examples from.")
    return {
        "k": k,
        "rule": RULE,
        "rule_text": RULE_TEXT,
        "tag_weight": TAG_WEIGHT,
        "near_duplicate_max_distance": int(settings.NEAR_DUPLICATE_MAX_DISTANCE),
        "dataset_version": dataset_version.pk,
        "source_split": DatasetMember.Split.TRAIN,
    }


# --- choosing -----------------------------------------------------------------------------------
def _tag_values(tags: dict) -> set[tuple[str, str]]:
    values = set()
    for key, value in (tags or {}).items():
        for item in value if isinstance(value, list) else [value]:
            if item not in (None, ""):
                values.add((str(key), str(item).strip().lower()))
    return values


def _distance(a: list[int], b: list[int]) -> int:
    return min(((x ^ y).bit_count() for x in a for y in b), default=NO_HASH_DISTANCE)


def _excluded(query: dict, candidate: dict, max_distance: int) -> bool:
    if candidate["example_id"] == query.get("example_id"):
        return True
    if query.get("drawing_id") and candidate["drawing_id"] == query["drawing_id"]:
        return True
    if query.get("group_key") and candidate["group_key"] == query["group_key"]:
        return True
    if query.get("example_id") and (
        candidate["near_duplicate_of_id"] == query["example_id"]
        or query.get("near_duplicate_of_id") == candidate["example_id"]
    ):
        return True
    return _distance(query.get("page_hashes") or [], candidate["page_hashes"]) <= max_distance


def shots_choose(*, query: dict, pool: list[dict], k: int, max_distance: int) -> list[dict]:
    """The k most similar allowed examples of the pool, most similar first (deterministic: ties by example id)."""
    wanted = _tag_values(query.get("tags") or {})
    scored = []
    for candidate in pool:
        if _excluded(query, candidate, max_distance):
            continue
        shared = len(wanted & _tag_values(candidate["tags"]))
        score = _distance(query.get("page_hashes") or [], candidate["page_hashes"]) - TAG_WEIGHT * shared
        scored.append((score, candidate["example_id"], candidate))
    scored.sort(key=lambda row: (row[0], row[1]))
    return [row[2] for row in scored[:k]]


def _pool(*, version, exclude_example_ids: set[int]) -> list[dict]:
    pool = dataset_version_member_facts(version=version, split=DatasetMember.Split.TRAIN, approved_only=True)
    return [c for c in pool if c["example_id"] not in exclude_example_ids]


# --- messages -------------------------------------------------------------------------------------
def shot_messages(shot: dict) -> list[dict]:
    """One worked example: its user turn(s) with page images (references, embedded later), then its approved target."""
    turns = [m for m in shot["messages"] if m.get("role") not in ("system", "developer")]
    return turns + [{"role": "assistant", "content": shot["target"]}]


def messages_with_shots(messages: list[dict], shots: list[dict]) -> list[dict]:
    """The system message, then the worked examples, then the real question."""
    head = [m for m in messages if m.get("role") in ("system", "developer")]
    rest = [m for m in messages if m.get("role") not in ("system", "developer")]
    return head + [turn for shot in shots for turn in shot_messages(shot)] + rest


# --- an eval run ----------------------------------------------------------------------------------
def eval_run_shots(*, eval_run) -> dict[int, list[dict]]:
    """{evaluated example id: its shots} for every member of the run's split (chosen once, before any call)."""
    config = eval_run.few_shot or {}
    evaluated = dataset_version_member_facts(version=eval_run.dataset_version_id, split=eval_run.split)
    pool = _pool(
        version=config.get("dataset_version") or eval_run.dataset_version_id,
        exclude_example_ids={m["example_id"] for m in evaluated},
    )
    max_distance = int(config.get("near_duplicate_max_distance", settings.NEAR_DUPLICATE_MAX_DISTANCE))
    k = int(config.get("k") or few_shot_k_default())
    return {m["example_id"]: shots_choose(query=m, pool=pool, k=k, max_distance=max_distance) for m in evaluated}


def few_shot_input_estimate(
    *, dataset_version, split: str, k: int | None, prompt_text: str, prices: tuple[Decimal, Decimal] | None
) -> dict:
    """Input tokens an eval run would send (system prompt, shots and question per example; text counted
    with curation.tokens, images from the frozen members' counts) and their cost, None when the price is unknown.
    Output tokens are not known before the answers: this is the input side only."""
    config = few_shot_config(dataset_version=dataset_version, split=split, k=k)
    evaluated = dataset_version_member_facts(version=dataset_version, split=split)
    pool = _pool(version=dataset_version, exclude_example_ids={m["example_id"] for m in evaluated})
    shot_tokens = {c["example_id"]: messages_text_tokens(shot_messages(c)) + c["image_tokens"] for c in pool}
    total = shots_total = 0
    for member in evaluated:
        question = messages_with_prompt(member["messages"], prompt_text)  # as eval_run_execute asks it
        shots = shots_choose(query=member, pool=pool, k=config["k"], max_distance=config["near_duplicate_max_distance"])
        added = sum(shot_tokens[s["example_id"]] for s in shots)
        shots_total += added
        total += messages_text_tokens(question) + member["image_tokens"] + added
    cost = None if prices is None else Decimal(total) * prices[0] / Decimal(1_000_000)
    return {
        "examples": len(evaluated),
        "k": config["k"],
        "input_tokens": total,
        "shot_tokens": shots_total,
        "input_cost_usd": cost,
    }


# --- an estimate ----------------------------------------------------------------------------------
def drawing_shots(*, config: dict, drawing) -> list[dict]:
    """The shots for a new drawing, from the dataset version the few-shot model was evaluated (and promoted) with."""
    version_id = config.get("dataset_version")
    if not version_id:
        raise FewShotError("This few-shot model records no dataset version to take its examples from.")
    query = {
        "example_id": None,
        "drawing_id": drawing.pk,
        "group_key": drawing.part_number or "",
        "tags": {},
        "page_hashes": drawing_page_hashes(drawing_ids=[drawing.pk]).get(drawing.pk, []),
    }
    pool = _pool(version=version_id, exclude_example_ids=set())
    return shots_choose(
        query=query,
        pool=pool,
        k=int(config.get("k") or few_shot_k_default()),
        max_distance=int(config.get("near_duplicate_max_distance", settings.NEAR_DUPLICATE_MAX_DISTANCE)),
    )


# --- what an eval run will cost (shown before it is started, and on its page) ---------------------
def eval_run_input_estimate(
    *, task, model_name: str, model_kind: str, dataset_version, split: str, endpoint=None, few_shot_k: int | None = None
) -> dict:
    """The input an eval run of a few-shot model would send and its cost ("unknown" price: None), before it exists."""
    # Imported here: evals imports this module to build the runs' messages.
    from finetune.services.endpoints import endpoint_prices
    from finetune.services.evals import EvalError, eval_prompt, model_prices

    name = (model_name or "").strip() or (endpoint.model_name if endpoint is not None else "")
    prices = endpoint_prices(endpoint) if endpoint is not None else model_prices(name)
    _, prompt_text = eval_prompt(task=task, model_kind=model_kind)
    try:
        estimate = few_shot_input_estimate(
            dataset_version=dataset_version, split=split, k=few_shot_k, prompt_text=prompt_text, prices=prices
        )
    except FewShotError as exc:
        raise EvalError(str(exc)) from exc
    return {**estimate, "model_name": name, "price_known": prices is not None}


def few_shot_run_estimate(*, eval_run) -> dict:
    """The same estimate for an existing few-shot eval run (its page shows it beside the measured tokens)."""
    return eval_run_input_estimate(
        task=eval_run.task,
        model_name=eval_run.model_name,
        model_kind=eval_run.model_kind,
        dataset_version=eval_run.dataset_version,
        split=eval_run.split,
        endpoint=eval_run.endpoint,
        few_shot_k=(eval_run.few_shot or {}).get("k"),
    )
