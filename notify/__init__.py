"""``cems notify``: delivers alerts to officers (routing, grouping, escalation, silences) on
e-mail, DingTalk, WeCom, webhooks and SMS, and logs every delivery to Kafka. The decisions
are in ``rules.notify``; this package reads the topics, sends, and writes the log."""
