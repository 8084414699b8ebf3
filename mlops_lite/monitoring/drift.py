"""Per-feature drift of a current window against a training reference, computed in DuckDB.

``compute_drift(con, reference, current, features)`` compares two relations (tables or
views, e.g. a view over the prediction log's Parquet files) column by column and
returns a :class:`DriftReport`. The scans, the binning and the counting run in DuckDB;
only per-bin and per-category totals (a few thousand numbers per feature) come back to
Python, where the statistics are finished.

The decision: effect size, not p-values
---------------------------------------
A feature drifts when its population stability index (PSI) is at least
``psi_threshold`` (0.2 by default, the usual "significant shift" mark). The
Kolmogorov-Smirnov and chi-squared tests are reported beside it as evidence, but never
decide: their p-values answer "is there any difference at all", and with the sample
sizes of a prediction log (10^5-10^6 rows) they are tiny for shifts far too small to
matter, so a p-value rule fires on every window. PSI measures how much the
distribution moved, whatever the sample size. The report drifts when the share of
drifted features is at least ``share_threshold``.

Numeric features
----------------
- PSI bins are the reference's quantiles: edge ``i`` (``i = 1 .. bins-1``) is the
  smallest reference value ``x`` with ``#{reference <= x} >= i * n / bins`` (the
  "inverted CDF" quantile, computed in integers), and bins are right-closed:
  bin ``k`` holds ``edge_k < x <= edge_{k+1}``; the outer bins are open
  (``x <= edge_1`` and ``x > edge_{bins-1}``, so values beyond the reference's range
  land in them). Ties: when many reference values share a value, edges repeat; a
  repeated edge makes an empty bin (no value lies strictly between an edge and
  itself), which adds exactly 0 to the PSI, so duplicate edges are in effect merged.
  A value's bin is the number of edges strictly below it.
- Proportions are floored at ``EPSILON`` (1e-4) before ``PSI = sum((c - r) * ln(c / r))``.
- ``ks_statistic`` is the exact two-sample Kolmogorov-Smirnov D, the largest gap
  between the two empirical CDFs over all values (ties handled as in
  ``scipy.stats.ks_2samp``), computed in integers:
  ``D = max |R(x) * m - C(x) * n| / (n * m)`` for R, C the counts at or below x.
  It is found without sorting the current window, in two passes:

  1. one scan counts both samples per fine bin: ``FINE_BINS`` equal-width bins over the
     span of the reference's 0.5%-99.5% quantiles (from a sample; any span gives the
     same result, a good one only makes pass 2 smaller), one open bin below and one
     above, with each bin's smallest and largest value. The gap at each bin's end is
     exact, so their largest is a lower bound of D; inside a bin, the gap is at most
     ``max(R_hi * m - C_lo * n, C_hi * n - R_lo * m)``, and a bin holding a single
     distinct value has no inside.
  2. a second scan reads, value by value, only the bins whose bound beats the lower
     bound (plus the bins holding a PSI edge): grouped per distinct value, a window
     running sum (each reference value weighs +m, each current value -n) gives the
     exact gap at every value, and the first value whose running reference count
     reaches an edge's rank is that edge, with both counts at or below it.

  So PSI and KS come from the same two scans of the current window, for all numeric
  features at once (one UNION ALL leg per feature). The current window is typically
  a few percent of its rows in pass 2.
- ``ks_p_value`` is the asymptotic p-value, exactly as ``scipy.stats.ks_2samp(...,
  method="asymp")`` computes it (``kstwo.sf(D, round(n * m / (n + m)))``), from the
  statistic and the sizes.
- NaN counts as null; infinities are values. Values are cast to DOUBLE. Counts and gaps
  are 64-bit integers: n * m must stay below 2^63.

Categorical features
--------------------
Values are cast to VARCHAR; the categories are the union of both samples (a category
unseen in the reference is its own bin, at proportion ``EPSILON`` there). ``chi2`` is
the chi-squared statistic of the 2 x k contingency table without continuity
correction, ``chi2_p_value`` its p-value on k - 1 degrees of freedom, and
``cramers_v = sqrt(chi2 / N)`` (for a 2-row table), 0 when k = 1.

Nulls and empty windows
-----------------------
Nulls (and NaN) in the current window are counted in ``current_nulls`` and left out
of every statistic; ``FeatureDrift.current_rows`` counts all rows of the window and
``FeatureDrift.reference_rows`` the reference's non-null values the statistics use.
An empty current window (or a feature whose current values are all null) gives no
evidence: PSI 0, no test statistics, not drifted. A reference without a non-null value
for a feature is an error (``InvalidInput``), as are unknown columns, unknown kinds
and non-positive thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_lite.errors import InvalidInput

if TYPE_CHECKING:
    import duckdb

EPSILON = 1e-4
FINE_BINS = 4096  # equal-width bins over the reference's central range, for the exact KS search
SAMPLE_ROWS = 16_384  # reference rows sampled for the fine bins' span
TAIL = 200  # the fine bins span ranks n/TAIL .. n - n/TAIL of the reference; one open bin beyond each end
KINDS = ("numeric", "categorical")
_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL")


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric" or "categorical"
    method: str  # the effect-size measure that decides: "psi"
    score: float  # the value of that measure (PSI)
    threshold: float
    drifted: bool  # score >= threshold
    psi: float
    ks_statistic: float | None  # numeric only: exact two-sample KS D
    ks_p_value: float | None  # numeric only: asymptotic, as scipy's ks_2samp(method="asymp")
    chi2: float | None  # categorical only: chi-squared of the 2 x k table, no correction
    chi2_p_value: float | None
    cramers_v: float | None  # categorical effect size
    reference_rows: int  # non-null reference values used
    current_rows: int  # all rows of the current window, nulls included
    current_nulls: int  # null (or NaN) values in the current window, left out of the statistics


@dataclass(frozen=True)
class DriftReport:
    features: tuple[FeatureDrift, ...]
    drifted_features: tuple[str, ...]
    drifted_share: float  # drifted / all features
    share_threshold: float
    drifted: bool  # drifted_share >= share_threshold
    reference_rows: int
    current_rows: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (no NaN, no numpy types), for alert evidence."""
        return {
            "features": [asdict(f) for f in self.features],
            "drifted_features": list(self.drifted_features),
            "drifted_share": self.drifted_share,
            "share_threshold": self.share_threshold,
            "drifted": self.drifted,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
        }


# --------------------------------------------------------------------------- input checks


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _relation(name: str) -> str:
    """A relation name, possibly schema-qualified, quoted part by part."""
    return ".".join(_quote(part) for part in name.split("."))


def _columns(con: duckdb.DuckDBPyConnection, relation: str, field: str) -> dict[str, str]:
    import duckdb

    if not isinstance(relation, str) or not relation:
        raise InvalidInput(f"{field} must name a table or view", field=field, expected="a relation name")
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {_relation(relation)}").fetchall()
    except duckdb.Error as e:
        raise InvalidInput(f"{field} relation {relation!r} cannot be read: {e}", field=field,
                           expected="a table or view in the connection") from e
    return {str(r[0]): str(r[1]) for r in rows}


def _is_numeric(duck_type: str) -> bool:
    return duck_type.split("(")[0].upper() in _NUMERIC_TYPES


def _check(features: Sequence[tuple[str, str]], ref_cols: dict[str, str], cur_cols: dict[str, str],
           psi_threshold: float, share_threshold: float, bins: int) -> list[tuple[str, str]]:
    for name, value in (("psi_threshold", psi_threshold), ("share_threshold", share_threshold)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise InvalidInput(f"{name} must be a positive number, not {value!r}", field=name,
                               expected="a number > 0")
    if share_threshold > 1:
        raise InvalidInput(f"share_threshold is a share of features, not {share_threshold!r}",
                           field="share_threshold", expected="0 < share_threshold <= 1")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise InvalidInput(f"bins must be an integer >= 2, not {bins!r}", field="bins", expected="an integer >= 2")
    checked: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in features:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InvalidInput(f"each feature is (column, kind), not {item!r}", field="features",
                               expected="(column_name, 'numeric' | 'categorical')")
        column, kind = item
        if kind not in KINDS:
            raise InvalidInput(f"feature {column!r} has unknown kind {kind!r}", field=str(column),
                               expected="'numeric' or 'categorical'")
        if column in seen:
            raise InvalidInput(f"feature {column!r} is listed twice", field=str(column), expected="unique columns")
        for side, cols in (("reference", ref_cols), ("current", cur_cols)):
            if column not in cols:
                raise InvalidInput(f"{side} has no column {column!r} (it has {', '.join(cols)})", field=str(column),
                                   expected=f"a column of the {side} relation")
            if kind == "numeric" and not _is_numeric(cols[column]):
                raise InvalidInput(f"numeric feature {column!r} is {cols[column]} in the {side}", field=str(column),
                                   expected="a numeric column (or kind 'categorical')")
        seen.add(column)
        checked.append((column, kind))
    if not checked:
        raise InvalidInput("no features to compare", field="features", expected="at least one (column, kind)")
    return checked


# --------------------------------------------------------------------------- SQL pieces


def _lit(x: float) -> str:
    """A DOUBLE literal that round-trips exactly."""
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def _num_expr(column: str) -> str:
    return f"CAST({_quote(column)} AS DOUBLE)"


def _valid(v: str) -> str:
    return f"{v} IS NOT NULL AND NOT isnan({v})"


@dataclass(frozen=True)
class _Range:
    """The span [lo, hi) of a numeric feature that its fine bins split equally."""

    lo: float
    hi: float

    def fine_bin_sql(self) -> str:
        """Fine bin of ``v``: ``FINE_BINS`` equal-width bins over [lo, hi), -1 below, ``FINE_BINS``
        at or above hi. Monotone in v, so the bins are ordered value intervals. Both passes use
        exactly this text, so that a value lands in the same bin each time."""
        width = self.hi - self.lo
        scale = FINE_BINS / width if math.isfinite(width) and width > 0 else 0.0
        if math.isfinite(self.lo) and math.isfinite(scale) and scale > 0:
            return (f"CAST(greatest(-1, least(floor((v - {_lit(self.lo)}) * {_lit(scale)}), {FINE_BINS}))"
                    " AS INTEGER)")
        return f"CASE WHEN v < {_lit(self.lo)} THEN -1 WHEN v > {_lit(self.lo)} THEN 1 ELSE 0 END"


def _legs(rel: str, columns: list[str], select: str | Callable[[int], str], binned: dict[int, str],
          where: dict[int, str] | None = None) -> str:
    """UNION ALL legs, one per numeric feature ``i``: ``i AS f``, then ``select`` over its
    non-null values ``v`` and their fine bins ``fb``; with ``where``, only the features in it,
    filtered by ``where[i]`` (on ``fb``)."""
    out = []
    for i, c in enumerate(columns):
        if where is not None and i not in where:
            continue
        out.append(f"SELECT {i} AS f, {select if isinstance(select, str) else select(i)} FROM "
                   f"(SELECT v, {binned[i]} AS fb FROM (SELECT {_num_expr(c)} AS v FROM {_relation(rel)}) "
                   f"WHERE {_valid('v')})" + (f" WHERE {where[i]}" if where is not None else ""))
    return " UNION ALL ".join(out)


def _values(rows: Sequence[tuple[int, ...]], names: str) -> str:
    """A VALUES table of integers."""
    body = ", ".join("(" + ", ".join(str(int(x)) for x in row) + ")" for row in rows)
    return f"(SELECT * FROM (VALUES {body}) AS t({names}))"


# --------------------------------------------------------------------------- numeric


def _ranges(con: duckdb.DuckDBPyConnection, reference: str, columns: list[str]) -> list[_Range]:
    """Fine-bin spans from a sample of the reference: its 1/TAIL and 1 - 1/TAIL quantiles (so that
    a long tail does not squeeze the bulk into a few bins), else the reference's finite min and
    max. Any span gives the same statistics; a good one only leaves less to the second pass."""
    parts = [f"quantile_disc({x}, [{1 / TAIL!r}, {1 - 1 / TAIL!r}]) FILTER (WHERE isfinite({x}))"
             for x in map(_num_expr, columns)]
    row = con.execute(f"SELECT {', '.join(parts)} FROM (SELECT * FROM {_relation(reference)} "
                      f"USING SAMPLE reservoir({SAMPLE_ROWS} ROWS) REPEATABLE (7))").fetchone() or ()
    spans = {i: _Range(float(q[0]), float(q[1])) for i, q in enumerate(row) if q and q[0] is not None and q[0] < q[1]}
    rest = [i for i in range(len(columns)) if i not in spans]
    if rest:
        parts = [f"min({x}) FILTER (WHERE isfinite({x})), max({x}) FILTER (WHERE isfinite({x}))"
                 for x in (_num_expr(columns[i]) for i in rest)]
        row = con.execute(f"SELECT {', '.join(parts)} FROM {_relation(reference)}").fetchone() or ()
        for j, i in enumerate(rest):
            lo, hi = row[2 * j: 2 * j + 2]
            spans[i] = _Range(float(lo), float(hi)) if lo is not None else _Range(0.0, 0.0)
    return [spans[i] for i in range(len(columns))]


def _psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    r = np.maximum(ref_counts / max(ref_counts.sum(), 1), EPSILON)
    c = np.maximum(cur_counts / max(cur_counts.sum(), 1), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def _ks_p_value(d: float, n1: int, n2: int) -> float:
    from scipy.stats import distributions

    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = max(round(m * n / (m + n)), 1)  # round half to even, as np.round in scipy's ks_2samp
    return float(np.clip(distributions.kstwo.sf(d, en), 0.0, 1.0))


def _numeric(con: duckdb.DuckDBPyConnection, reference: str, current: str, columns: list[str],
             bins: int) -> list[dict[str, Any]]:
    """Per numeric feature: reference and current non-null counts, PSI, KS D and its p-value."""
    binned = {i: r.fine_bin_sql() for i, r in enumerate(_ranges(con, reference, columns))}

    # Pass 1: both samples counted per fine bin (a few thousand groups per feature), with
    # each bin's smallest and largest value.
    rows = con.execute(f"""
        SELECT f, fb, sum(r) AS r, sum(c) AS c, min(v) < max(v) AS several FROM (
            {_legs(reference, columns, "fb, v, 1 AS r, 0 AS c", binned)} UNION ALL
            {_legs(current, columns, "fb, v, 0 AS r, 1 AS c", binned)})
        GROUP BY f, fb ORDER BY f, fb""").fetchall()
    per: dict[int, list[tuple[int, int, int, bool]]] = {i: [] for i in range(len(columns))}
    for f, fb, r, c, several in rows:
        per[f].append((int(fb), int(r), int(c), bool(several)))

    results: list[dict[str, Any]] = []
    refine: dict[int, set[int]] = {}  # feature -> fine bins to read value by value
    starts: dict[int, dict[int, tuple[int, int]]] = {}  # feature -> fine bin -> (ref, cur) counts before it
    edges: dict[int, list[tuple[int, int, int]]] = {}  # feature -> PSI edge k -> (its fine bin, rank, its rank in the bin)
    for i in range(len(columns)):
        fb, cr, cc, several = (np.array([x[j] for x in per[i]], dtype=np.int64).reshape(-1) for j in range(4))
        nr, nc = int(cr.sum()), int(cc.sum())
        if nr == 0:
            raise InvalidInput(f"the reference has no non-null value of {columns[i]!r}", field=columns[i],
                               expected="a reference with non-null values")
        res: dict[str, Any] = {"nr": nr, "n": nc, "psi": 0.0, "ks": None, "ks_p": None, "gap": 0}
        results.append(res)
        if nc == 0:
            continue
        r_hi, c_hi = np.cumsum(cr), np.cumsum(cc)
        r_lo, c_lo = r_hi - cr, c_hi - cc
        # CDF gaps in integers, scaled by nr * nc: exact at each bin's largest value (a bin
        # with one distinct value has no other), bounded by max(R_hi - C_lo, C_hi - R_lo) inside.
        res["gap"] = int(np.abs(r_hi * nc - c_hi * nr).max())
        upper = np.maximum(r_hi * nc - c_lo * nr, c_hi * nr - r_lo * nc)
        todo = {int(b) for b in fb[(upper > res["gap"]) & (several > 0)]}
        # PSI edge k is the reference value of rank ceil(k * nr / bins); find its fine bin.
        edges[i] = []
        for k in range(1, bins):
            rank = (k * nr + bins - 1) // bins
            j = int(np.searchsorted(r_hi, rank))  # first bin whose cumulative count reaches the rank
            edges[i].append((int(fb[j]), rank, rank - int(r_lo[j])))
            if several[j]:
                todo.add(int(fb[j]))
        refine[i] = todo
        starts[i] = {int(b): (int(r), int(c)) for b, r, c in zip(fb, r_lo, c_lo, strict=True)}
        res["bin_ends"] = {int(b): (int(r), int(c)) for b, r, c in zip(fb, r_hi, c_hi, strict=True)}

    # Pass 2, value by value inside the bins to refine: the exact largest CDF gap in each, and
    # each PSI edge (the first value whose running reference count reaches the edge's rank)
    # with the counts at or below it.
    at_edge: dict[tuple[int, int], tuple[int, int]] = {}
    refine = {i: b for i, b in refine.items() if b}
    if refine:
        where = {i: f"fb IN ({', '.join(map(str, sorted(b)))})" for i, b in refine.items()}
        wanted = _values([(i, k, b, need) for i in refine for k, (b, _, need) in enumerate(edges[i], start=1)
                          if b in refine[i]] or [(-1, 0, 0, 0)], "f, k, fb, need")
        # Each reference value weighs +nc, each current value -nr: a running sum is the scaled gap.
        nrs = {i: results[i]["nr"] for i in refine}
        ncs = {i: results[i]["n"] for i in refine}
        out = con.execute(f"""
            WITH g AS (SELECT f, fb, v, CAST(sum(w) AS BIGINT) AS w, CAST(sum(r) AS BIGINT) AS r,
                              CAST(count(*) AS BIGINT) AS t
                       FROM ({_legs(reference, columns, lambda i: f"fb, v, CAST({ncs[i]} AS BIGINT) AS w, 1 AS r",
                                    binned, where)} UNION ALL
                             {_legs(current, columns, lambda i: f"fb, v, CAST({-nrs[i]} AS BIGINT) AS w, 0 AS r",
                                    binned, where)})
                       GROUP BY f, fb, v),
                 edge AS (SELECT e.f, e.k, e.need, g.v, sum(g.r) OVER x AS r, sum(g.t - g.r) OVER x AS c
                          FROM {wanted} AS e JOIN g ON g.f = e.f AND g.fb = e.fb
                          WINDOW x AS (PARTITION BY e.f, e.k ORDER BY g.v))
            -- one running sum over all rows (one sort, no partitions: faster than a window
            -- per bin), minus the sum before each bin's first row: the gap inside the bin
            SELECT 0 AS what, f, fb AS k, max(d) - arg_min(d - w, v), min(d) - arg_min(d - w, v)
            FROM (SELECT f, fb, v, w, sum(w) OVER (ORDER BY f, v ROWS UNBOUNDED PRECEDING) AS d FROM g)
            GROUP BY f, fb
            UNION ALL
            SELECT 1, f, k, arg_min(r, v), arg_min(c, v) FROM edge WHERE r >= need GROUP BY f, k
            """).fetchall()
        for what, f, k, a, b in out:
            f, k = int(f), int(k)
            r0, c0 = starts[f][edges[f][k - 1][0] if what else k]
            if what == 0:
                base = r0 * results[f]["n"] - c0 * results[f]["nr"]
                results[f]["gap"] = max(results[f]["gap"], abs(base + int(a)), abs(base + int(b)))
            else:
                at_edge[f, k] = (r0 + int(a), c0 + int(b))

    for i, res in enumerate(results):
        nr, nc = res["nr"], res["n"]
        ends = res.pop("bin_ends", None)
        if nc == 0 or ends is None:
            continue
        res["ks"] = res["gap"] / (nr * nc)
        res["ks_p"] = _ks_p_value(res["ks"], nr, nc)
        # counts at or below each edge; a one-value bin's edge is that value: the whole bin
        below = [(0, 0)] + [at_edge.get((i, k), ends[b]) for k, (b, _, _) in enumerate(edges[i], start=1)]
        below.append((nr, nc))
        counts = np.diff(np.array(below, dtype=np.float64), axis=0)
        res["psi"] = _psi(counts[:, 0], counts[:, 1])
    return results


# --------------------------------------------------------------------------- categorical


def _categorical(con: duckdb.DuckDBPyConnection, reference: str, current: str,
                 columns: list[str]) -> list[dict[str, Any]]:
    def legs(rel: str, side: int) -> str:
        return " UNION ALL ".join(
            f"SELECT {i} AS f, CAST({_quote(c)} AS VARCHAR) AS v, {side} AS s FROM {_relation(rel)} "
            f"WHERE {_quote(c)} IS NOT NULL" for i, c in enumerate(columns))

    rows = con.execute(f"""
        SELECT f, v, count(*) FILTER (WHERE s = 0) AS r, count(*) FILTER (WHERE s = 1) AS c
        FROM ({legs(reference, 0)} UNION ALL {legs(current, 1)}) GROUP BY f, v ORDER BY f, v""").fetchall()
    per: dict[int, list[tuple[int, int]]] = {i: [] for i in range(len(columns))}
    for f, _v, r, c in rows:
        per[f].append((int(r), int(c)))
    results = []
    for i, column in enumerate(columns):
        table = np.array(per[i], dtype=np.float64).reshape(-1, 2).T  # 2 x k
        nr, nc = int(table[0].sum()), int(table[1].sum())
        if nr == 0:
            raise InvalidInput(f"the reference has no non-null value of {column!r}", field=column,
                               expected="a reference with non-null values")
        res: dict[str, Any] = {"nr": nr, "n": nc, "psi": 0.0, "chi2": None, "chi2_p": None, "v": None}
        if nc > 0:
            res["psi"] = _psi(table[0], table[1])
            total = nr + nc
            expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
            chi2 = float(np.sum((table - expected) ** 2 / expected))
            k = table.shape[1]
            if k > 1:
                from scipy.stats import chi2 as chi2_dist

                p = float(chi2_dist.sf(chi2, k - 1))
                v = math.sqrt(chi2 / total)
            else:
                p, v = 1.0, 0.0
            res.update(chi2=chi2, chi2_p=p, v=v)
        results.append(res)
    return results


# --------------------------------------------------------------------------- the report


def compute_drift(con: duckdb.DuckDBPyConnection, reference: str, current: str,
                  features: Sequence[tuple[str, str]], *, psi_threshold: float = 0.2,
                  share_threshold: float = 0.5, bins: int = 10) -> DriftReport:
    """Drift of ``current`` against ``reference`` (relations in ``con``) for each
    ``(column, "numeric" | "categorical")`` of ``features``; see the module docstring."""
    ref_cols = _columns(con, reference, "reference")
    cur_cols = _columns(con, current, "current")
    checked = _check(features, ref_cols, cur_cols, psi_threshold, share_threshold, bins)
    ref_rows, cur_rows = (int(con.execute(f"SELECT count(*) FROM {_relation(rel)}").fetchone()[0])  # type: ignore[index]
                          for rel in (reference, current))
    if ref_rows == 0:
        raise InvalidInput(f"the reference {reference!r} has no rows", field="reference",
                           expected="a non-empty reference")

    numeric = [c for c, k in checked if k == "numeric"]
    categorical = [c for c, k in checked if k == "categorical"]
    num_results = _numeric(con, reference, current, numeric, bins) if numeric else []
    cat_results = _categorical(con, reference, current, categorical) if categorical else []
    by_column = dict(zip(numeric, num_results, strict=True)) | dict(zip(categorical, cat_results, strict=True))

    out = []
    for column, kind in checked:
        res = by_column[column]
        psi = float(res["psi"])
        numeric_kind = kind == "numeric"
        out.append(FeatureDrift(
            feature=column, kind=kind, method="psi", score=psi, threshold=float(psi_threshold),
            drifted=res["n"] > 0 and psi >= psi_threshold, psi=psi,
            ks_statistic=res["ks"] if numeric_kind else None, ks_p_value=res["ks_p"] if numeric_kind else None,
            chi2=None if numeric_kind else res["chi2"], chi2_p_value=None if numeric_kind else res["chi2_p"],
            cramers_v=None if numeric_kind else res["v"],
            reference_rows=int(res["nr"]), current_rows=cur_rows, current_nulls=cur_rows - int(res["n"])))
    drifted = tuple(f.feature for f in out if f.drifted)
    share = len(drifted) / len(out)
    return DriftReport(features=tuple(out), drifted_features=drifted, drifted_share=share,
                       share_threshold=float(share_threshold), drifted=cur_rows > 0 and share >= share_threshold,
                       reference_rows=ref_rows, current_rows=cur_rows)
