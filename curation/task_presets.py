"""Presets for the tasks the shop trains; the demo data and tests create tasks from them."""

from curation.models import ProductionRecord

# The task whose examples come from a drawing and its ground truth (built at once after a render; the default
# of the estimate API and commands).
DRAWING_TASK_SLUG = "technology_builder"

TECHNOLOGY_BUILDER_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Technology plan of a machined part",
    "type": "object",
    "additionalProperties": False,
    "required": ["part_number", "material", "machines", "operations"],
    "properties": {
        "part_number": {"type": "string", "minLength": 1},
        "material": {"type": "string", "minLength": 1},
        "machines": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
        "operations": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["machine", "operation", "machine_time_min_per_piece", "setup_min"],
                "properties": {
                    "machine": {"type": "string", "minLength": 1},
                    "operation": {"type": "string", "enum": list(ProductionRecord.OPERATIONS)},
                    "machine_time_min_per_piece": {"type": "number", "minimum": 0},
                    "setup_min": {"type": "number", "minimum": 0},
                },
            },
        },
    },
}

TECHNOLOGY_BUILDER = {
    "slug": DRAWING_TASK_SLUG,
    "name": "Technology builder (drawing → machines and times)",
    "description": "From a technical drawing, the material, the machines and the machining and setup time per "
    "operation.",
    "output_schema": TECHNOLOGY_BUILDER_SCHEMA,
    "schema_version": 1,
    "system_prompt": (
        "You are a senior process planner in a CNC machining shop. You receive the technical drawing of one part "
        "(one image per sheet). Read the title block (part number, material) and the geometry, choose the machines "
        "the shop would use and estimate for each operation (saw, turning, milling, deburring) the machine time per "
        "piece and the setup time, in minutes. Machines available: VS20 saw (saw), NLX 2500 (2 spindles) and NZX 2000 "
        "and MAZAK QTN 200 (turning), DMU 50 (milling, deburring). Answer with one JSON object only, with the keys "
        "part_number, material (exactly as printed), machines (in operation order) and operations "
        "[{machine, operation, machine_time_min_per_piece, setup_min}], ordered saw, turning, milling, deburring."
    ),
    "compact_prompt": "Technology plan for the drawing as JSON: part_number, material, machines, operations.",
    "user_prompt_template": "Drawing of part {part_number} ({page_count} sheet(s)).",
    "uses_images": True,
    "image_detail": "high",
    "max_images": 4,
    "metric_spec": {
        "key": ["machine", "operation"],
        "numeric": ["operations[].machine_time_min_per_piece", "operations[].setup_min"],
        "categorical": ["material", "machines"],
        "tags": ["machine", "material", "industry"],
    },
    "promotion_policy": {
        "max_mape": 0.15,
        "min_json_validity": 0.98,
        "not_worse_than_active": True,
        "min_examples": 20,
        "max_ci_width": 0.20,
    },
}

SUPPORT_REPLY = {
    "slug": "support_reply",
    "name": "Support reply",
    "description": "A reply to a customer's support message.",
    "output_schema": {"type": "string", "minLength": 1},
    "schema_version": 1,
    "system_prompt": "You answer customer support questions for a machining shop, briefly and politely.",
    "compact_prompt": "Support reply.",
    "user_prompt_template": "{text}",
    "uses_images": False,
    "image_detail": "low",
    "max_images": 0,
    "metric_spec": {"categorical": []},
    "promotion_policy": {"min_json_validity": 0.0},
}

CODE_FIX = {
    **SUPPORT_REPLY,
    "slug": "code_fix",
    "name": "Code fix",
    "description": "A corrected version of a code snippet with a short explanation.",
    "system_prompt": "You fix bugs in short code snippets and explain the fix in one sentence.",
    "compact_prompt": "Code fix.",
}

PRESETS = {preset["slug"]: preset for preset in (TECHNOLOGY_BUILDER, SUPPORT_REPLY, CODE_FIX)}
