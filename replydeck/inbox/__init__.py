"""The core: model, store, poller, outbox, triage, SLA, rules, replies, metrics. No UI."""
