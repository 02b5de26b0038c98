"""moto keeps one set of backends per process: a second moto world opened while one is live would reset
the first under its tests (how the dev canary's passing and failing runs broke each other in reverse order)."""

from __future__ import annotations

import pytest

from tests.e2e.runner import moto_server


def test_a_second_live_moto_world_in_one_process_is_refused():
    with moto_server():
        with pytest.raises(RuntimeError, match="one moto world per process"):
            with moto_server():
                pass
    with moto_server():  # a world closed is a world that may be opened again
        pass
