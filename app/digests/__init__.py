"""The daily (and weekly) ops digest, 运维日报: yesterday's figures, SLOs, regressions, incidents and
who is on call, told to the team's chat every morning through the alerts outbox."""
