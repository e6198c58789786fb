"""The store: contract tables as Ibis tables on DuckDB (default) or PySpark, in a workspace folder.

Layout of a workspace ``W``::

    W/store.duckdb          the DuckDB database (every ingested table plus derived stage outputs)
    W/tables/<name>.parquet Parquet copies for the Spark engine (written on demand)
    W/ingest.json           what the last successful ingest read and loaded (counts only, no identifiers)
    W/tmp/                  DuckDB spill directory (data larger than memory)

Stages receive ``store.tables()`` (a dict of ibis tables) and return ibis expressions; the same code runs on
both engines. Ingest always parses and validates through DuckDB and swaps the finished database file into
place atomically, so a failed ingest never leaves a half-written store.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import ibis
import ibis.expr.types as ir

from openlead.derived import PreparedTables
from openlead.errors import InputError

Engine = Literal["duckdb", "spark"]
ENGINES: tuple[str, ...] = ("duckdb", "spark")
STORE_FILE = "store.duckdb"
PARQUET_DIR = "tables"


# share of the machine's memory DuckDB may use (it spills beyond it to W/tmp): DuckDB's own default, 80%,
# left too little for the Python side of a 1M-beneficiary benchmark run (20 GiB RSS on 24 GiB before it was
# stopped); the environment variable OPENLEAD_DUCKDB_MEMORY, when set, takes precedence
MEMORY_SHARE = 0.4


def default_memory_limit() -> str:
    """DuckDB's memory limit: ``OPENLEAD_DUCKDB_MEMORY`` or ``MEMORY_SHARE`` of physical memory."""
    env = os.environ.get("OPENLEAD_DUCKDB_MEMORY")
    if env:
        return env
    import psutil

    return f"{max(1, int(psutil.virtual_memory().total * MEMORY_SHARE / 2**20))}MiB"


def duckdb_connect(path: str | Path, *, read_only: bool = False, memory_limit: str | None = None) -> Any:
    """An ibis DuckDB connection configured to spill to disk next to the database, with its memory capped
    (``memory_limit`` or :func:`default_memory_limit`)."""
    path = Path(path)
    tmp = path.parent / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    con = ibis.duckdb.connect(str(path), read_only=read_only)
    con.raw_sql(f"SET temp_directory = '{tmp.as_posix()}'")
    con.raw_sql(f"SET memory_limit = '{memory_limit or default_memory_limit()}'")
    return con


_SPARK: Any = None


def spark_session() -> Any:
    """A local PySpark session (created once per process), UTC, small shuffle, no UI."""
    global _SPARK
    if _SPARK is None:
        try:
            from pyspark.sql import SparkSession
        except ImportError as e:  # pragma: no cover - depends on the install
            raise InputError("the spark engine needs pyspark: pip install 'openlead[spark]'") from e
        _SPARK = (
            SparkSession.builder.master(os.environ.get("OPENLEAD_SPARK_MASTER", "local[2]"))
            .appName("openlead")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.memory", os.environ.get("OPENLEAD_SPARK_DRIVER_MEMORY", "4g"))
            .config("spark.sql.ansi.enabled", "false")
            # Arrow stays off although it registers a pandas frame 7x faster: when the driver heap runs out
            # while Arrow serves a result to Python, its server thread dies and Python waits for ever (seen
            # twice in whole-benchmark runs); without Arrow the same failure is an error that reaches Python
            .config("spark.sql.execution.arrow.pyspark.enabled", "false")
            # the status store keeps every query's plan graph even without the UI, and a benchmark run sends
            # thousands of queries: keep the last few only
            .config("spark.sql.ui.retainedExecutions", "20")
            .config("spark.ui.retainedJobs", "50")
            .config("spark.ui.retainedStages", "50")
            .config("spark.ui.retainedTasks", "1000")
            # every query's plan is also rendered as text (the SQL execution event carries it), whole: our
            # plans repeat their shared inputs, and a 600-beneficiary benchmark run died of OutOfMemoryError
            # in QueryExecution.explainString with an 8 GiB heap. 64k characters show the plan's top.
            .config("spark.sql.maxPlanStringLength", "65536")
            # broadcast joins off by default: every broadcast hash table stays on the driver's heap while the
            # plans that used it are cached, and a benchmark run broadcasts thousands of small tables. With
            # them on, a 600-beneficiary run filled the 4 GiB heap with 2 GB of hash-table pages and hung;
            # off, the same stages finished in less time (bench/bench_spark.py). A cluster user may set it.
            .config(
                "spark.sql.autoBroadcastJoinThreshold",
                os.environ.get("OPENLEAD_SPARK_BROADCAST_THRESHOLD", "-1"),
            )
            .getOrCreate()
        )
        _SPARK.sparkContext.setLogLevel("ERROR")
    return _SPARK


class Store:
    """Contract and stage tables of one workspace, on one engine."""

    def __init__(
        self, workspace: str | Path, engine: str = "duckdb", *, memory_limit: str | None = None
    ) -> None:
        if engine not in ENGINES:
            raise InputError(f"unknown engine {engine!r}; choose one of {list(ENGINES)}")
        self.workspace = Path(workspace)
        self.engine = engine
        db = self.workspace / STORE_FILE
        if not db.exists():
            raise InputError(
                f"no store in workspace {self.workspace}: "
                f"run `openlead ingest DIR --workspace {self.workspace}`"
            )
        self._duck = duckdb_connect(db, memory_limit=memory_limit)
        if engine == "duckdb":
            self.con = self._duck
        else:
            self.con = ibis.pyspark.connect(spark_session())
            self._register_parquet()

    # -- tables ------------------------------------------------------------------------
    def list_tables(self) -> list[str]:
        return sorted(self.con.list_tables())

    def has(self, name: str) -> bool:
        return name in self.list_tables()

    def table(self, name: str) -> ir.Table:
        if not self.has(name):
            raise InputError(f"table {name!r} is not in the store of {self.workspace}")
        return self.con.table(name)

    def tables(self, names: Iterable[str] | None = None) -> PreparedTables:
        """The store's tables by name, with a memo that lets stages share materialised intermediates
        (:mod:`openlead.derived`); keep one mapping per run so the stages find each other's work."""
        wanted = list(names) if names is not None else self.list_tables()
        return PreparedTables({n: self.table(n) for n in wanted if self.has(n)})

    def save(self, name: str, expr: ir.Table) -> ir.Table:
        """Materialise a stage output under ``name`` (replacing it) and return it as a table."""
        if self.engine == "duckdb":
            return self._duck.create_table(name, expr, overwrite=True)
        path = self.workspace / PARQUET_DIR / f"{name}.parquet"
        tmp = path.with_suffix(".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        self.con.to_parquet_dir(expr, tmp.as_posix())
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        tmp.rename(path)
        return self.con.read_parquet(path.as_posix(), table_name=name)

    def close(self) -> None:
        # Stage intermediates cached with ``Table.cache()`` are temp tables that die with the connection;
        # detach ibis's finalizers so they do not try to drop them after the connection is closed.
        for con in {id(self.con): self.con, id(self._duck): self._duck}.values():
            entries = getattr(con, "_cache_name_to_entry", None)
            if entries:
                for entry in list(entries.values()):
                    entry.finalizer.detach()
                entries.clear()
                getattr(con, "_cache_op_to_entry", {}).clear()
        self._duck.disconnect()

    # -- spark -------------------------------------------------------------------------
    def _register_parquet(self) -> None:
        """Export each DuckDB table to Parquet once (or when stale) and register it with Spark."""
        out = self.workspace / PARQUET_DIR
        out.mkdir(parents=True, exist_ok=True)
        db_mtime = (self.workspace / STORE_FILE).stat().st_mtime
        for name in self._duck.list_tables():
            path = out / f"{name}.parquet"
            if not path.exists() or path.stat().st_mtime < db_mtime:
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
                self._duck.raw_sql(f"COPY (SELECT * FROM \"{name}\") TO '{path.as_posix()}' (FORMAT parquet)")
            self.con.read_parquet(path.as_posix(), table_name=name)
