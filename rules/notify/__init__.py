"""Notification decisions: routing, grouping, escalation, silences, messages. Pure."""
