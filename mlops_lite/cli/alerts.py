"""``mlops-lite alerts ...``: the monitor's alerts, read, acknowledged and silenced."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from mlops_lite.cli.common import JsonOption, group, line, platform, print_json, print_table, table
from mlops_lite.clock import parse_duration

app = group("Alerts of the monitor: list, acknowledge, silence (through the daemon when `up` runs).")


def duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d`` or a sum such as ``1h30m``, as a timedelta."""
    return parse_duration(text, "for", label="--for")


@app.command("list")
def alerts_list(state: Annotated[str | None, typer.Option(
                    help="Only alerts in this state: pending | firing | resolved.")] = None,
                subject: Annotated[str | None, typer.Option(help="Only alerts about this subject.")] = None,
                limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 100,
                as_json: JsonOption = False) -> None:
    """Alerts, newest first."""
    with platform() as p:
        records = p.alerts.list(state=state, subject=subject, limit=limit)
    if as_json:
        print_json(records)
        return
    if not records:
        line("no alerts" + (f" in state {state}" if state else ""))
        return
    out = table("id", "state", "severity", "rule", "subject", "value", "started", "acknowledged")
    for a in records:
        out.add_row(a.id, a.state + (" (silenced)" if a.silenced else ""), a.severity, a.rule, a.subject,
                    f"{a.value:.4g} {a.op} {a.threshold:.4g}", f"{a.started_at:%Y-%m-%d %H:%M:%S}",
                    a.acknowledged_by or "")
    print_table(out)


@app.command("ack")
def alerts_ack(alert_id: Annotated[str, typer.Argument(help="The alert's id (see `alerts list`).")]) -> None:
    """Acknowledge an alert: recorded (who, when) and audited; its state does not change."""
    with platform() as p:
        record = p.alerts.acknowledge(alert_id)
    line(f"acknowledged {record.id} ({record.rule} on {record.subject}, {record.state}) as {record.acknowledged_by}")


@app.command("silence")
def alerts_silence(for_: Annotated[str, typer.Option("--for", metavar="DURATION",
                                                     help="How long: 90s, 30m, 2h, 1d, 1h30m.")],
                   reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")],
                   rule: Annotated[str | None, typer.Option(
                       help="Rules matching this name or fnmatch pattern ('*': every rule).")] = None,
                   subject: Annotated[str | None, typer.Option(
                       help="Subjects (deployments) matching this name or pattern.")] = None,
                   as_json: JsonOption = False) -> None:
    """Hold back the notifications of matching alerts for a while (they are still recorded)."""
    until = duration(for_)
    with platform() as p:
        record = p.alerts.silence(rule, subject, until=until, reason=reason)
    if as_json:
        print_json(record)
        return
    line(f"silence {record.id}: rule {record.rule or '*'}, subject {record.subject or '*'} until "
         f"{record.until.isoformat(timespec='seconds')} ({record.reason})")


@app.command("silences")
def alerts_silences(every: Annotated[bool, typer.Option("--all", help="Lifted and expired ones too.")] = False,
                    as_json: JsonOption = False) -> None:
    """Silences in force now (or all of them), newest first."""
    with platform() as p:
        records = p.alerts.silences(active=not every)
    if as_json:
        print_json(records)
        return
    if not records:
        line("no silences" + ("" if every else " in force"))
        return
    out = table("id", "rule", "subject", "until", "reason", "by", "lifted")
    for s in records:
        out.add_row(s.id, s.rule or "*", s.subject or "*", s.until.isoformat(timespec="seconds"), s.reason,
                    s.created_by, f"{s.lifted_at:%Y-%m-%d %H:%M} by {s.lifted_by}" if s.lifted_at else "")
    print_table(out)


@app.command("unsilence")
def alerts_unsilence(silence_id: Annotated[str, typer.Argument(help="The silence's id (see `alerts silences`).")]) \
        -> None:
    """Lift a silence now."""
    with platform() as p:
        record = p.alerts.lift_silence(silence_id)
    line(f"lifted silence {record.id} (rule {record.rule or '*'}, subject {record.subject or '*'})")
