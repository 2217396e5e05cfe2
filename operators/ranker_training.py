"""train_ranker's Flink functions: training rows of one day, one part of the forest."""

from __future__ import annotations

import json
import pickle
from datetime import date
from pathlib import Path

from pyflink.datastream import MapFunction

from models.ranking.training import RankerParams


class DayRows(MapFunction):
    def __init__(self, lake: str, lookback: int, out: str):
        self.lake, self.lookback, self.out = lake, lookback, out

    def map(self, value):
        from connectors.ranker_dataset import day_rows

        rows = day_rows(self.lake, date.fromisoformat(value), self.lookback)
        path = Path(self.out) / f"day={value}.parquet"
        rows.to_parquet(path, index=False)
        return json.dumps({"day": value, "rows": len(rows), "positives": int(rows["label"].sum()),
                           "path": str(path)})


class TrainPart(MapFunction):
    """Grows one part of the forest; the part goes to a file (parts are megabytes: too big
    to travel back through the collect sink)."""

    def __init__(self, files: list[str], params: RankerParams, out: str):
        self.files, self.params, self.out = files, params, out

    def map(self, value):
        from models.ranking.training import load_rows, train_part

        seed, trees = value
        x, y, weight = load_rows(self.files, self.params.utility)
        path = Path(self.out) / f"part-{seed}.pkl"
        path.write_bytes(pickle.dumps(train_part(x, y, weight, self.params, seed, trees)))
        return str(path)
