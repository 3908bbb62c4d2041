"""One synth per configuration for the whole test session, shared by every xdist worker.

The synth is the command the deploy guide gives, `npx cdk synth`, run without any AWS
credentials; the tests read the cloud assembly it writes (templates, assets, cdk-nag report).
"""

from __future__ import annotations

import pytest
from assembly import LAB_CONFIG, Synth, synthesize


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Synth:
    """The default configuration (no config file), as a fresh clone synthesizes it."""
    return synthesize(tmp_path_factory, "default", None)


@pytest.fixture(scope="session")
def lab_synth(tmp_path_factory) -> Synth:
    """A configuration with every deploy switch flipped (NAT instance, no deletion protection...)."""
    return synthesize(tmp_path_factory, "lab", LAB_CONFIG)


@pytest.fixture(scope="session", params=["default", "lab"])
def any_synth(request) -> Synth:
    return request.getfixturevalue("synth" if request.param == "default" else "lab_synth")
