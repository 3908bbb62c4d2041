"""The pool policy: the `pool` section of the configuration until an admin stores one; a
change is validated whole (lablink.config.PoolConfig) before it is stored."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from lablink.config import LablinkConfig, PoolConfig
from lablink.db.database import Database

PoolPolicy = PoolConfig


def get_policy(db: Database, cfg: LablinkConfig) -> PoolPolicy:
    stored = db.pool.get_policy()
    return cfg.pool if stored is None else PoolPolicy.model_validate(stored)


def update_policy(db: Database, cfg: LablinkConfig, changes: Mapping[str, Any]) -> PoolPolicy:
    """Apply ``changes`` (any subset of the fields) to the policy in force and store the
    result; raises pydantic's ValidationError (an unknown field, a bad value, min_free above
    max_vms, opens_at after closes_at) and stores nothing then."""
    policy = PoolPolicy.model_validate({**get_policy(db, cfg).model_dump(), **changes})
    db.pool.set_policy(policy.model_dump())
    return policy


def target_free(policy: PoolPolicy, now: datetime) -> int:
    """The free VMs the pool aims at ``now``: min_free from prewarm_s before opens_at on
    (always, with no opens_at); 0 before."""
    if policy.opens_at is not None and now < policy.opens_at - timedelta(seconds=policy.prewarm_s):
        return 0
    return policy.min_free
