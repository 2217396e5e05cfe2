"""State TTL for Python keyed state that keeps PyFlink's state cache on.

PyFlink disables its Python-side state cache for a TTL whose visibility is
``NeverReturnExpired`` (the default): every update is then serialised and sent to the JVM
at once, which made compute_features many times slower. Returning a value that expired but
is not cleaned up yet is harmless for our uses (the TTL is a safety net against abandoned
keys, not a semantic deadline).
"""

from __future__ import annotations

from pyflink.common import Time
from pyflink.datastream.state import StateTtlConfig


def state_ttl(seconds: int) -> StateTtlConfig:
    return (StateTtlConfig.new_builder(Time.seconds(seconds))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp)
            .build())
