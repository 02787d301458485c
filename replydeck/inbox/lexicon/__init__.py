"""Word lists for sentiment and triage, written for replydeck (no third-party data).

``en`` and ``ja`` hold sentiment lexicons on a -4..+4 scale; ``phrases`` holds the triage
phrase groups by severity. They are Python modules so they ship inside the package and
load without parsing.
"""
