"""What every bench reports: one figure beside its reference measured in the same run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    figure: str
    label: str
    unit: str
    value: float
    reference: float
    reference_label: str
    ratio: float
    target: float
    ok: bool
    rule: str  # what is compared with the target, for the table
    peer: str = "-"  # a peer tool's figure for the same work, when measured
    note: str = ""  # why a figure is short regardless of its ratio


def fmt(x: float) -> str:
    """A figure as the bench lines print it: few digits, exact zero, inf and nan as words."""
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def bench_line(f: Figure) -> str:
    """The machine-readable line every bench prints per figure."""
    return (f"bench: {f.figure} value={fmt(f.value)} reference={fmt(f.reference)} ratio={fmt(f.ratio)} "
            f"target={f.target:g} {'ok' if f.ok else 'short'}")


def print_table(figures: list[Figure], *, label: int = 36, value: int = 16, target: int = 12, rule: int = 30) -> None:
    """The readable table every bench prints before its ``bench:`` lines."""
    header = (f"{'figure':<{label}} {'value':>{value}} {'reference':>{value}} {'ratio':>7} {'target':>{target}}  "
              f"{'result':<6} reference is")
    print(header)
    print("-" * (len(header) + rule))
    for f in figures:
        unit = f" {f.unit}" if f.unit else ""
        print(f"{f.label:<{label}} {fmt(f.value) + unit:>{value}} {fmt(f.reference) + unit:>{value}} "
              f"{fmt(f.ratio):>7} {f.rule + ' ' + f'{f.target:g}':>{target}}  {'ok' if f.ok else 'SHORT':<6} "
              f"{f.reference_label}")


def print_lines(figures: list[Figure]) -> None:
    """A blank line, then one machine-readable ``bench:`` line per figure."""
    print()
    for f in figures:
        print(bench_line(f))
