"""Names a stage's parts agree on, with no CDK import, so the stacks and the operator CLI share them:
the stage rule, stack and SSM parameter names, and the data bucket's key prefixes."""
import re

STAGE_PATTERN = re.compile(r"[a-z][a-z0-9]{0,15}")
"""A stage: 1-16 lower-case letters or digits, starting with a letter."""
PARTS = ("Storage", "Image", "Endpoint", "Api", "Training", "Batch", "Monitoring")
"""The app's stacks, in deployment order."""
TUNED_HYPERPARAMETERS_PARAMETER = "tuned-hyperparameters"
"""SSM parameter leaf: JSON object of the hyperparameters ``infra.ops tune --apply`` took from a tuning job
(``tuning_job`` names it), read by every training run; absent until the first apply."""

TRAINING_EVENTS_PREFIX = "training/events/"
"""Training events, one folder per day: ``training/events/dt=YYYY-MM-DD/<files>``, then ``_SUCCESS`` when complete."""
DAY_FOLDER_PREFIX = "dt="
TRAINING_TRAIN_PREFIX = "training/train/"
TRAINING_TEST_PREFIX = "training/test/"
MODELS_PREFIX = "models/"
INITIAL_MODELS_PREFIX = "initial-models/"
"""The first model, copied from its CDK asset to ``initial-models/<initial_model_version>/model.tar.gz``: a .tar.gz
key, as ``ModelDataUrl`` wants, outside ``models/`` (a pipeline's models, which the training pipeline scores as
the champion)."""
INITIAL_MODEL_ARCHIVE = "model.tar.gz"
CHECKPOINTS_PREFIX = "checkpoints/"
INCOMING_SESSIONS_PREFIX = "sessions/incoming/"
SCORED_SESSIONS_PREFIX = "sessions/scored/"
INCOMING_EVENTS_PREFIX = "events/incoming/"
"""Raw click events, one folder per run: ``events/incoming/<run>/<files>``, then ``<run>/_SUCCESS``."""
RUN_MARKER = "_SUCCESS"
GROUPED_SESSIONS_PREFIX = "sessions/grouped/"
"""The Athena query's JSON lines of one run (``sessions/grouped/<run>/``), scored into ``sessions/scored/<run>/``."""
ATHENA_RESULTS_PREFIX = "athena/"
"""The events workgroup's query results (CSV and metadata, UNLOAD manifests)."""
EVENTS_RUN_DAYS = 2
"""An events run's longest execution: its grouped lines and query results must outlast it."""
BATCH_MODELS_PREFIX = "batch-models/"
"""Model archives packed for one batch run with its filter list (``batch-models/<job>/model.tar.gz``)."""
BATCH_MODELS_EXPIRATION_DAYS = 3
"""A packed archive is read when the run's transform job starts, within the batch execution's 2 days."""
BATCH_MANIFESTS_PREFIX = "batch-manifests/"
"""Each batch run's input manifest (``batch-manifests/<job>.manifest``), naming the shards of its sessions file."""
BATCH_SHARDS_PREFIX = "batch-shards/"
"""One batch run's sessions cut into shards (``batch-shards/<job>/in/``) and their answers (``.../out/``), joined
into ``sessions/scored/``; expired with the manifests."""
FILTERS_SUFFIX = ".filters.json"
"""A run's list file: ``sessions/incoming/NAME.filters.json`` beside ``NAME.jsonl``."""
REPORTS_PREFIX = "reports/"
"""Summaries the stage writes about itself: ``reports/attribution/<day>.json``."""
CAPTURE_PREFIX = "capture/"
"""The endpoint's data capture: ``capture/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`` (SageMaker's layout)."""
LIVE_VARIANT = "AllTraffic"
"""The endpoint's production variant that serves the live model."""
CHALLENGER_VARIANT = "Challenger"
"""The second production variant while an A/B test runs (context ``ab_test``)."""
CAPTURES_TABLE = "captures"
"""The Glue table over the endpoint's data capture in :func:`events_database`."""


def stage_title(stage: str) -> str:
    """``dev`` -> ``Dev``: the stage as it appears in stack names."""
    return stage.capitalize()


def stack_name(stage: str, part: str) -> str:
    """CloudFormation stack of one part of a stage, e.g. ``Gru4Rec-Dev-Storage``."""
    return f"Gru4Rec-{stage_title(stage)}-{part}"


def tuning_job_prefix(stage: str) -> str:
    """The fixed start of a stage's tuning job names (``tune-dev-2612071345``); the training jobs a tuning job starts
    are named ``<tuning job>-<NNN>-<hash>``, so their log streams start with it too, which the training role's log
    grant names."""
    return f"tune-{stage}-"


def one_off_job_prefix(stage: str) -> str:
    """Base name of the operator CLI's one-off training jobs (the CLI appends the UTC time); their
    log streams start with it too, which the training role's log grant names."""
    return f"gru4rec-{stage}-oneoff"


def events_database(stage: str) -> str:
    """The Glue database of a stage's raw click events (tables ``events`` and ``answers``), e.g.
    ``gru4rec_dev_events``."""
    return f"gru4rec_{stage}_events"


EVENTS_TABLE = "events"
"""The Glue table over ``events/incoming/<run>/`` in :func:`events_database`."""


def parameter_name(stage: str, leaf: str) -> str:
    """SSM parameter (or log group) name under the stage's prefix, e.g. ``/gru4rec/dev/tuned-hyperparameters``."""
    return f"/gru4rec/{stage}/{leaf}"
