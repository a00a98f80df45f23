"""The case console: cases opened from alerts, worked through by officers and enterprises in
the browser, verified from data and closed (问题整改清单, closed-loop management).

``db`` (tables), ``migrate`` (Alembic), ``store`` (cases from alerts, actions, queries; every
decision comes from ``rules.cases``), ``follow`` (the alerts topic into the store, exactly
once), ``auth`` (passwords, sessions, CSRF, login rate limit), ``web`` (FastAPI pages),
``evidence`` (InfluxDB series for a case's charts), ``report`` (the monthly report).
"""
