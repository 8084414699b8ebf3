"""The console's screens: one module per section (pulse, models, approvals, alerts, data,
runs, audit) and the screens they drill into (deployment, ...). ``base.ConsoleScreen``
is what each one is."""
