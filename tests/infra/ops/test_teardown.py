"""`infra.ops.teardown`: it removes smoke stages only (a whole teardown runs in tests/infra/ops/test_smoke.py)."""
import pytest

from infra.ops.errors import OpsError
from infra.ops.teardown import teardown


def test_teardown_refuses_a_stage_that_is_not_a_smoke_stage():
    """Refused before any AWS call: no session is needed."""
    with pytest.raises(OpsError, match="refusing to tear down stage 'dev'"):
        teardown(None, "dev")
