"""``TRADEBUS_STREAM_REPLICAS`` on a real three-node JetStream cluster (issue 21).

A client connected with ``stream_replicas`` (:func:`tradebus.common.bus.connect`, the
cluster's servers comma-separated) makes every stream and KV bucket with that many
copies; a client without it (a one-shot, :func:`~tradebus.common.bus.connect_once`)
updating the same streams keeps their copies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.nats_cluster import nats_cluster
from tradebus.common import subjects
from tradebus.common.bus import (
    IntentQuota,
    connect,
    connect_once,
    deadletter_stream_config,
    ensure_stream,
    ensure_streams,
    intents_stream_config,
)
from tradebus.common.config import ConfigError, load_settings
from tradebus.execution.settings import ExecutionSettings


async def test_streams_and_buckets_get_the_replicas_of_the_connection(tmp_path: Path) -> None:
    async with nats_cluster(tmp_path / "nats") as cluster:
        nc = await connect(cluster.url, "replicas-test", stream_replicas=3)
        one_shot = await connect_once(cluster.url)
        try:
            assert nc.connected_url is not None
            js = nc.jetstream()
            await ensure_streams(js)
            await ensure_stream(js, intents_stream_config("alice", IntentQuota()))
            await ensure_stream(js, deadletter_stream_config("execution"))
            await js.create_key_value(bucket=subjects.KV_BOTS)
            names = [
                *subjects.STREAM_SUBJECTS,
                subjects.intents_stream("alice"),
                subjects.STREAM_DEADLETTER,
                f"KV_{subjects.KV_BOTS}",
            ]
            for name in names:
                info = await js.stream_info(name)
                assert info.config.num_replicas == 3, name
                assert info.cluster is not None and len(info.cluster.replicas or []) == 2, name

            # a client without the setting updates the definitions, not the copies
            await ensure_streams(one_shot.jetstream())
            for name in subjects.STREAM_SUBJECTS:
                info = await one_shot.jetstream().stream_info(name)
                assert info.config.num_replicas == 3, name
            # and makes a new stream with the server's default, one copy
            await ensure_stream(one_shot.jetstream(), intents_stream_config("bob", IntentQuota()))
            info = await js.stream_info(subjects.intents_stream("bob"))
            assert info.config.num_replicas == 1
            # a service's next start moves it to the setting
            await ensure_stream(js, intents_stream_config("bob", IntentQuota()))
            info = await js.stream_info(subjects.intents_stream("bob"))
            assert info.config.num_replicas == 3
        finally:
            await nc.close()
            await one_shot.close()


def test_replicas_below_one_are_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="TRADEBUS_STREAM_REPLICAS"):
        load_settings(ExecutionSettings, {"TRADEBUS_STREAM_REPLICAS": "0"})
    assert load_settings(ExecutionSettings, {}).stream_replicas == 1
