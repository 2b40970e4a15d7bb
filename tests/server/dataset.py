"""Deterministic Mixpeek task generator for the mixpeekfs test server.

Tests import this module directly::

    sys.path.insert(0, "tests/server")
    import dataset
    tasks = dataset.generate(1000, seed=1)

``generate(count, seed)`` always returns the same list for the same
arguments (it draws only from ``random.Random(seed)``).  Every task has
these keys, in this order::

    task_id, task_type, status, description, inputs, outputs,
    additional_data, error, created_at, updated_at

(``created_at``/``updated_at`` are left out with ``timestamps=False``; the
published TaskResponse schema has no timestamps, the project adds them.)

Guarantees the tests may rely on:

* task ids are unique; about 70 % are ``task_`` + 12 lowercase hex digits,
  about 30 % are UUID v4 strings;
* with ``count >= 30`` every one of the 30 TASK_TYPES occurs, with
  ``count >= 13`` every one of the 13 STATUSES occurs;
* only FAILED tasks contain the substrings "timeout" or "oom" (in any
  case) anywhere, in keys or values; about 40 % of the FAILED tasks
  mention "timeout" and about 20 % "OOM", in ``description``, ``error``
  and ``additional_data.error`` alike;
* every task has at least one null value somewhere (``error`` is null on
  non-FAILED tasks, ``outputs`` is null on FAILED tasks);
* ``created_at`` lies in the 30 days before REFERENCE_TIME and
  ``updated_at >= created_at``, both ISO-8601 UTC with a ``Z`` suffix;
* ``additional_data.progress`` exists only on PENDING, IN_PROGRESS and
  PROCESSING tasks; ``additional_data.error`` only on FAILED tasks;
  ``additional_data.notes`` (a multi-line unicode string) only on some.

``weird_tasks()`` returns a few hostile tasks (odd ids and odd
additional_data keys) that the server adds with ``--weird``.
"""

import datetime
import uuid

import random

STATUSES = (
    "PENDING", "IN_PROGRESS", "PROCESSING", "COMPLETED",
    "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED", "UNKNOWN", "SKIPPED",
    "DRAFT", "ACTIVE", "ARCHIVED", "SUSPENDED",
)

TASK_TYPES = (
    "api_namespaces_create", "api_namespaces_delete",
    "api_namespaces_migrations_run", "api_buckets_objects_create",
    "api_buckets_delete", "api_buckets_batches_process",
    "api_buckets_batches_submit", "api_buckets_uploads_create",
    "api_buckets_uploads_confirm", "api_buckets_uploads_batch_confirm",
    "api_collections_documents_create",
    "api_collections_extraction_artifacts", "api_taxonomies_create",
    "api_taxonomies_execute", "api_taxonomies_materialize",
    "api_evaluations_run", "api_evaluations_dataset_create",
    "api_retrievers_publish", "api_collections_export",
    "api_collections_trigger", "engine_feature_extractor_run",
    "engine_inference_run", "engine_object_processing",
    "engine_cluster_build", "thumbnail", "video_segment", "audio_segment",
    "materialize", "plugin_custom", "model_custom",
)

TERMINAL = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED",
                      "CANCELED"})
ACTIVE = frozenset({"PENDING", "IN_PROGRESS", "PROCESSING"})

# All generated timestamps lie in the 30 days before this instant.
REFERENCE_TIME = datetime.datetime(2026, 11, 29, tzinfo=datetime.timezone.utc)

BUCKETS = ("bkt_products", "bkt_media", "bkt_docs", "bkt_archive",
           "bkt_support_calls")
NAMESPACES = ("ns_acme", "ns_retail", "ns_research", "ns_legal",
              "ns_marketing", "ns_staging")

_STATUS_WEIGHTS = {
    "COMPLETED": 45, "FAILED": 12, "IN_PROGRESS": 8, "PENDING": 8,
    "PROCESSING": 5, "COMPLETED_WITH_ERRORS": 5, "CANCELED": 5,
    "UNKNOWN": 2, "SKIPPED": 2, "DRAFT": 2, "ACTIVE": 2, "ARCHIVED": 2,
    "SUSPENDED": 2,
}
_HEAVY_TYPES = {"thumbnail": 10, "api_buckets_batches_process": 10,
                "engine_feature_extractor_run": 10}

# Types whose additional_data carries a batch_id (others have null).
_BATCHY = ("batch", "uploads", "engine_", "segment", "thumbnail",
           "objects_create", "materialize")

_MODELS = ("clip-vit-l-14", "siglip-so400m", "whisper-large-v3",
           "multilingual-e5-large", "layoutlm-v3", "yolo-v8-face")
_LANGS = ("en", "de", "fr", "ja", "es", "pt")
_EXTS = ("mp4", "jpg", "pdf", "wav", "png", "mov")

_NOTES = (
    "Résumé\nstep 2 ✓ — 東京",
    "Łódź ingest\n→ retry scheduled\nsee ticket #4821 🎬",
    "Übergröße erkannt\n\tZeile 2: ±0.5 dB\nÉtape 3 terminée",
    "多言語テスト\nSchritt 3/4 ✓\nend",
    "re-run requested by ops\nreason: “late upload”\n— čeština, ελληνικά",
)

# (description/error template, error class). {obj} {col} {batch} {n} fill in.
_FAIL_TIMEOUT = (
    "Feature extraction timeout after {n}s on object {obj}",
    "Inference request timeout after {n}s waiting for GPU worker",
    "Upload confirmation timeout: storage did not answer within {n}s",
    "Ray job timeout after {n}s on tier 1 of batch {batch}",
)
_FAIL_OOM = (
    "Worker OOM-killed while decoding video {obj}",
    "OOM while building cluster index for {col}",
    "Ray worker exited (OOM) while rendering thumbnails for {obj}",
)
_FAIL_OTHER = (
    "Unsupported media type application/x-msdownload for object {obj}",
    "Permission denied writing to collection {col}",
    "Upstream inference service returned HTTP 502",
    "Checksum mismatch for uploaded object {obj}",
    "Invalid extractor configuration: missing 'model.name'",
    "Object {obj} not found in bucket",
    "Taxonomy source collection {col} is empty",
)
_ERROR_CLASS = {"timeout": "TimeoutError", "oom": "MemoryError",
                "other": "ProcessingError"}

_DESCRIPTIONS = {
    "api_namespaces_create": "Create namespace {ns}",
    "api_namespaces_delete": "Delete namespace {ns} and its resources",
    "api_namespaces_migrations_run": "Run schema migration {m} on {ns}",
    "api_buckets_objects_create": "Register object {obj} in {bucket}",
    "api_buckets_delete": "Delete bucket {bucket} ({n} objects)",
    "api_buckets_batches_process": "Process batch {batch} ({n} objects) "
                                   "in {bucket}",
    "api_buckets_batches_submit": "Submit batch {batch} from {bucket}",
    "api_buckets_uploads_create": "Create upload session for {bucket}",
    "api_buckets_uploads_confirm": "Confirm upload of {obj} to {bucket}",
    "api_buckets_uploads_batch_confirm": "Confirm {n} uploads to {bucket}",
    "api_collections_documents_create": "Create documents in {col}",
    "api_collections_extraction_artifacts": "Write extraction artifacts "
                                            "for {col}",
    "api_taxonomies_create": "Create taxonomy tax_{w} in {ns}",
    "api_taxonomies_execute": "Execute taxonomy tax_{w} on {col}",
    "api_taxonomies_materialize": "Materialize taxonomy tax_{w} into {col}",
    "api_evaluations_run": "Run evaluation eval_{w} against {col}",
    "api_evaluations_dataset_create": "Build evaluation dataset ds_{w}",
    "api_retrievers_publish": "Publish retriever ret_{w}",
    "api_collections_export": "Export {col} to parquet",
    "api_collections_trigger": "Trigger pipeline on {col}",
    "engine_feature_extractor_run": "Extract features with {model} for "
                                    "{n} objects of {bucket}",
    "engine_inference_run": "Run inference with {model} on {obj}",
    "engine_object_processing": "Process object {obj} from {bucket}",
    "engine_cluster_build": "Build clusters for {col}",
    "thumbnail": "Generate thumbnails for {obj}",
    "video_segment": "Segment video {obj} into scenes",
    "audio_segment": "Segment audio {obj} by speaker",
    "materialize": "Materialize view of {col}",
    "plugin_custom": "Run custom plugin plg_{w} on {bucket}",
    "model_custom": "Run custom model mdl_{w} on {col}",
}
_WORDS = ("alpha", "beacon", "cedar", "delta", "ember", "fjord", "granite",
          "harbor", "indigo", "juniper", "kestrel", "lumen", "meadow",
          "nimbus", "quartz", "sierra", "tundra", "vertex", "willow")

# No letter o/O: random ids can never spell "timeout" or "oom".
_JOB_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"


def iso(dt):
    """Format an aware datetime as ISO-8601 UTC with a Z suffix."""
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def mentions_forbidden(value):
    """True if "timeout" or "oom" (any case) occurs in any key or string."""
    if isinstance(value, str):
        low = value.lower()
        return "timeout" in low or "oom" in low
    if isinstance(value, dict):
        return any(mentions_forbidden(k) or mentions_forbidden(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return any(mentions_forbidden(v) for v in value)
    return False


def _hex(rng, n):
    return "%0*x" % (n, rng.getrandbits(4 * n))


def _forced(rng, count, values):
    """Map positions to values so that each value occurs at least once."""
    if count < len(values):
        return {}
    return dict(zip(rng.sample(range(count), len(values)), values))


def _config(rng, task_type):
    if task_type in ("thumbnail", "video_segment"):
        return {
            "params": {"width": rng.choice((160, 320, 640)),
                       "height": rng.choice((90, 180, 360)),
                       "format": rng.choice(("jpeg", "webp")),
                       "fps": rng.choice((1, 2, 5))},
            "output": {"storage": {"prefix": "thumbs/" + _hex(rng, 4) + "/",
                                   "region": "eu-central-1"}},
        }
    if task_type.startswith("engine_") or task_type.endswith("_segment") \
            or task_type == "model_custom":
        return {
            "model": {"name": rng.choice(_MODELS),
                      "version": rng.choice(("v1", "v2", "v3"))},
            "params": {"fps": rng.choice((1, 2)),
                       "languages": rng.sample(_LANGS, rng.randint(1, 3)),
                       "threshold": rng.choice((0.25, 0.5, 0.75))},
        }
    return {
        "retry": {"max_attempts": rng.randint(1, 5),
                  "backoff": {"initial_s": 1, "max_s": 30}},
        "priority": rng.choice(("low", "normal", "high")),
    }


def _failure(rng, fill):
    r = rng.random()
    if r < 0.40:
        kind, templates = "timeout", _FAIL_TIMEOUT
    elif r < 0.60:
        kind, templates = "oom", _FAIL_OOM
    else:
        kind, templates = "other", _FAIL_OTHER
    text = rng.choice(templates).format(**fill)
    return text, "%s: %s" % (_ERROR_CLASS[kind], text)


def _one_task(rng, task_id, task_type, status, timestamps):
    bucket = rng.choice(BUCKETS)
    ns = rng.choice(NAMESPACES)
    obj_ids = ["obj_" + _hex(rng, 10) for _ in range(rng.randint(1, 7))]
    col_ids = ["col_" + _hex(rng, 10) for _ in range(rng.randint(0, 3))]
    batchy = any(s in task_type for s in _BATCHY)
    batch_id = "batch_" + _hex(rng, 10) if batchy else None
    object_count = int(rng.triangular(0, 5000, 200))
    total_tiers = rng.randint(1, 4)
    fill = {"ns": ns, "bucket": bucket, "obj": obj_ids[0],
            "col": col_ids[0] if col_ids else "col_" + _hex(rng, 10),
            "batch": batch_id or "batch_" + _hex(rng, 10),
            "n": object_count, "m": "m%04d" % rng.randint(1, 120),
            "w": rng.choice(_WORDS), "model": rng.choice(_MODELS)}

    error = None
    if status == "FAILED":
        fill["n"] = rng.choice((30, 60, 120, 300, 900))
        description, error = _failure(rng, fill)
    else:
        description = _DESCRIPTIONS[task_type].format(**fill)

    r = rng.random()
    if r < 0.15:
        inputs = None
    elif r < 0.35:
        inputs = [{"object_id": o,
                   "url": "s3://%s/raw/%s.%s" % (bucket.replace("_", "-"),
                                                 o, rng.choice(_EXTS))}
                  for o in obj_ids[:3]]
    elif batch_id is not None and rng.random() < 0.5:
        inputs = [batch_id]
    else:
        inputs = obj_ids[:rng.randint(1, 4)]

    if status in ("COMPLETED", "COMPLETED_WITH_ERRORS"):
        outputs = []
        for col in col_ids or [fill["col"]]:
            out = {"processed_count": rng.randint(0, object_count),
                   "collection_id": col}
            if status == "COMPLETED_WITH_ERRORS":
                out["failed_count"] = rng.randint(1, 50)
            outputs.append(out)
    elif status == "FAILED":
        outputs = None
    else:
        outputs = rng.choice((None, []))

    if status in ("PENDING", "DRAFT", "UNKNOWN", "SKIPPED"):
        current_tier = None
    elif status in ("COMPLETED", "COMPLETED_WITH_ERRORS"):
        current_tier = total_tiers - 1
    else:
        current_tier = rng.randint(0, total_tiers - 1)

    ad = {
        "bucket_id": bucket,
        "namespace_id": ns,
        "batch_id": batch_id,
        "object_count": object_count,
        "total_tiers": total_tiers,
        "current_tier": current_tier,
        "collection_ids": col_ids,
        "sample_object_ids": obj_ids[:5],
    }
    if status in ACTIVE:
        ad["progress"] = 0.0 if status == "PENDING" else \
            round(rng.uniform(0.01, 0.99), 2)
    ad["config"] = _config(rng, task_type)
    if rng.random() < 0.12:
        ad["notes"] = rng.choice(_NOTES)
    ad["job_id"] = "raysubmit_" + "".join(rng.choice(_JOB_ALPHABET)
                                          for _ in range(16))
    if error is not None:
        ad["error"] = error

    task = {
        "task_id": task_id,
        "task_type": task_type,
        "status": status,
        "description": description,
        "inputs": inputs,
        "outputs": outputs,
        "additional_data": ad,
        "error": error,
    }
    created = REFERENCE_TIME - datetime.timedelta(
        seconds=rng.randint(60, 30 * 86400))
    if status in ACTIVE or status == "DRAFT":
        delta = rng.randint(0, 1800)
    else:
        delta = rng.randint(5, 4 * 3600)
    updated = min(created + datetime.timedelta(seconds=delta),
                  REFERENCE_TIME)
    if timestamps:
        task["created_at"] = iso(created)
        task["updated_at"] = iso(updated)
    return task


# The keys of a task in Mixpeek's published schema (TaskResponse); the
# others (description, created_at, updated_at) are this project's extras.
PUBLISHED_KEYS = ("task_id", "task_type", "status", "inputs", "outputs",
                  "additional_data", "error")


def published(task):
    """task with only the published keys, in their order."""
    return {k: task[k] for k in PUBLISHED_KEYS if k in task}


def generate(count, seed, timestamps=True):
    """Return ``count`` realistic tasks, deterministic in ``seed``."""
    rng = random.Random(seed)
    statuses = list(_STATUS_WEIGHTS)
    s_weights = [_STATUS_WEIGHTS[s] for s in statuses]
    t_weights = [_HEAVY_TYPES.get(t, 2) for t in TASK_TYPES]
    forced_types = _forced(rng, count, TASK_TYPES)
    forced_statuses = _forced(rng, count, STATUSES)
    seen = set()
    tasks = []
    for i in range(count):
        while True:
            if rng.random() < 0.30:
                task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            else:
                task_id = "task_" + _hex(rng, 12)
            if task_id not in seen:
                seen.add(task_id)
                break
        task_type = forced_types.get(i) or \
            rng.choices(TASK_TYPES, t_weights)[0]
        status = forced_statuses.get(i) or \
            rng.choices(statuses, s_weights)[0]
        task = _one_task(rng, task_id, task_type, status, timestamps)
        if status != "FAILED" and mentions_forbidden(task):
            raise AssertionError("generator bug: forbidden word in %r"
                                 % task_id)
        tasks.append(task)
    return tasks


def weird_tasks(timestamps=True):
    """Hostile tasks for robustness tests (added by the server's --weird).

    * ``task_weird_keys``: additional_data keys "", ".", "..", "a/b",
      a 300-byte key and "a%2Fb";
    * ids "task/evil", ".." and a 300-byte id.
    """
    long_key = "k" * 300
    long_id = "task_" + "x" * 295

    def base(task_id, status, description, ad, minute):
        t = {
            "task_id": task_id,
            "task_type": "plugin_custom",
            "status": status,
            "description": description,
            "inputs": None,
            "outputs": [] if status != "COMPLETED" else
            [{"processed_count": 1, "collection_id": "col_weird"}],
            "additional_data": ad,
            "error": None,
        }
        if timestamps:
            created = REFERENCE_TIME - datetime.timedelta(hours=1,
                                                          minutes=minute)
            t["created_at"] = iso(created)
            t["updated_at"] = iso(created + datetime.timedelta(seconds=30))
        return t

    return [
        base("task_weird_keys", "COMPLETED",
             "Task whose additional_data keys are hostile file names",
             {"": "empty key", ".": "dot", "..": "dot dot",
              "a/b": "slash", long_key: "300-byte key",
              "a%2Fb": "percent-encoded slash", "bucket_id": "bkt_media"},
             1),
        base("task/evil", "IN_PROGRESS", "Task id with a slash",
             {"bucket_id": "bkt_media", "progress": 0.5}, 2),
        base("..", "PENDING", "Task id that is a dot-dot path segment",
             {"bucket_id": "bkt_docs"}, 3),
        base(long_id, "CANCELED", "Task id of 300 bytes",
             {"bucket_id": "bkt_archive"}, 4),
    ]
