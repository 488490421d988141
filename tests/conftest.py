"""Session fixtures shared by integration and browser tests: the real sandbox Asterisk.

The PBX is started once for the session unless one is already running (a developer's), and is
stopped at the end only if the session started it: no Asterisk process and no mount outlives the
tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from callcenter.config import load_settings
from callcenter.telephony.pbx import Pbx

# Engines started by tests (in-process or as `callcenter run`) serve /metrics on any free port,
# never on 8090: several run at once, and a developer's engine may hold it.
os.environ.setdefault("CALLCENTER_OPS__PORT", "0")


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (chroot and mounts for the sandbox Asterisk)")


@pytest.fixture(scope="session")
def pbx() -> Iterator[Pbx]:
    _require_root()
    pbx = Pbx(load_settings())
    started_here = pbx.pid() is None
    if started_here:
        pbx.up()
    else:
        pbx.install_sounds()  # a running PBX gets the prompts as built now
    try:
        yield pbx
    finally:
        if started_here:
            pbx.down()
            leftovers = pbx.status()
            assert not leftovers.running and leftovers.mounts == (), leftovers.describe()
