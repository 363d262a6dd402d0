"""Key prefixes of the data bucket: one place for the stacks and the operator CLI to agree on."""

TRAINING_TRAIN_PREFIX = "training/train/"
TRAINING_TEST_PREFIX = "training/test/"
MODELS_PREFIX = "models/"
CHECKPOINTS_PREFIX = "checkpoints/"
INCOMING_SESSIONS_PREFIX = "sessions/incoming/"
SCORED_SESSIONS_PREFIX = "sessions/scored/"
CAPTURE_PREFIX = "capture/"
