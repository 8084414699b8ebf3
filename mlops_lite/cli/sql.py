"""``mlops-lite sql``: read-only SQL over the metadata tables."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mlops_lite.cli.common import err, platform, print_table, table


def sql(query: Annotated[str, typer.Argument(help="One SELECT (or WITH ... SELECT) over the metadata tables.")],
        max_rows: Annotated[int, typer.Option(help="Rows to show at most.")] = 200,
        csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False) -> None:
    """Read-only SQL over the metadata: runs, params, metrics, models, versions, aliases, audit..."""
    with platform() as p:
        result = p.tracking.sql(query, max_rows=max_rows)
    if csv:
        import pyarrow.csv as pacsv

        sink = sys.stdout.buffer
        pacsv.write_csv(result, sink)
        sink.flush()
        return
    out = table(*result.column_names)
    for row in result.to_pylist():
        out.add_row(*("" if v is None else str(v) for v in row.values()))
    print_table(out)
    err.print(f"{result.num_rows} row(s)")
