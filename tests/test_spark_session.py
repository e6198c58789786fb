"""The local PySpark session keeps what the driver holds per query bounded (``store.spark_session``)."""

from __future__ import annotations

import shutil

import pytest

from openlead.data.store import spark_session

pytestmark = pytest.mark.spark

if shutil.which("java") is None:  # pragma: no cover - CI machines have Java 17
    pytest.skip("the Spark engine needs Java", allow_module_level=True)

PLAN_CHARS = 65536  # spark.sql.maxPlanStringLength as store.spark_session sets it


def test_a_deep_plan_is_rendered_truncated() -> None:
    """Spark renders every query's plan as text for its SQL execution event; a whole-benchmark run died of
    OutOfMemoryError while rendering one. A 400-projection plan, about 660k characters whole, comes out
    truncated to the limit with a note of what was left out."""
    df = spark_session().range(3)
    for i in range(400):
        df = df.withColumn(f"c{i}", (df["id"] + i) * 2)
    text = df._jdf.queryExecution().toString()
    assert len(text) <= PLAN_CHARS
    assert text.rstrip().endswith("more characters")
    assert int(text.rstrip().split("... ")[-1].split()[0]) > 5 * PLAN_CHARS
    assert df.count() == 3  # the query itself is unaffected
