"""compact_lake's Flink function: one raw-zone partition compacted per record."""

from __future__ import annotations

import json

from pyflink.datastream import MapFunction


class CompactPartition(MapFunction):
    """(table, date) -> the partition's compaction summary as a JSON line."""

    def __init__(self, lake: str):
        self.lake = lake

    def map(self, value):
        from connectors.lake import lake_table
        from connectors.lake_compaction import compact_partition

        table, dt = value
        return json.dumps(compact_partition(self.lake, lake_table(table), dt).as_dict())
