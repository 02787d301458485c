"""Modal screens: prompts, help, saved replies, outbox, confirmation."""
