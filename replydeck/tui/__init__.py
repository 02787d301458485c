"""The Textual app: screens, widgets, keymap and styles. Entry point: :func:`app.run`."""
