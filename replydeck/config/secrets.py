"""Secret references: ``env:VAR``, ``cmd:COMMAND``, ``keyring:SERVICE/USER``, ``file:PATH``.

A :class:`Secret` is resolved lazily (so ``replydeck list`` never runs ``pass``), cached
once resolved, and never shows its value: ``repr``/``str`` name only the reference, and
every error names the reference and the problem, never the value.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from replydeck.config.errors import ConfigError

SCHEMES = ("env", "cmd", "keyring", "file")
CMD_TIMEOUT_S = 30


@dataclass(eq=False)
class Secret:
    scheme: str
    target: str
    file: str | None = None
    key: str | None = None
    _value: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, ref: str, *, file: str | None = None, key: str | None = None) -> Secret:
        scheme, sep, target = ref.partition(":")
        if not sep or scheme not in SCHEMES:
            raise ConfigError(
                file, key,
                "expected a secret reference (env:VAR, cmd:COMMAND, keyring:SERVICE/USER or "
                "file:PATH); found a literal value (not shown). Put the secret in an "
                "environment variable, a password manager or the keyring instead",
            )
        if not target.strip():
            raise ConfigError(file, key, f"{scheme}: needs something after the colon")
        if scheme == "keyring" and "/" not in target:
            raise ConfigError(file, key, f"expected keyring:SERVICE/USER, found {ref!r}")
        return cls(scheme, target.strip(), file, key)

    @classmethod
    def literal(cls, value: str) -> Secret:
        """For tests and the demo: a secret given directly, not from the config file."""
        return cls("literal", "<given>", _value=value)

    @property
    def reference(self) -> str:
        return f"{self.scheme}:{self.target}"

    def __repr__(self) -> str:
        return f"Secret({self.reference})"

    __str__ = __repr__

    def _fail(self, problem: str) -> ConfigError:
        return ConfigError(self.file, self.key, f"{self.reference}: {problem}")

    def resolve(self) -> str:
        if self._value is None:
            value = getattr(self, f"_from_{self.scheme}")()
            if not value:
                raise self._fail("resolved to an empty value")
            self._value = value
        return self._value

    def _from_env(self) -> str:
        value = os.environ.get(self.target)
        if value is None:
            raise self._fail(f"environment variable {self.target} is not set")
        return value.strip()

    def _from_cmd(self) -> str:
        try:
            done = subprocess.run(
                shlex.split(self.target), capture_output=True, text=True,
                timeout=CMD_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False,
            )
        except FileNotFoundError:
            raise self._fail("command not found") from None
        except subprocess.TimeoutExpired:
            raise self._fail(f"command did not finish within {CMD_TIMEOUT_S} s") from None
        except ValueError as exc:  # shlex: unbalanced quotes
            raise self._fail(f"cannot parse the command ({exc})") from None
        if done.returncode != 0:
            first = _stderr_hint(done.stderr, done.stdout)
            raise self._fail(f"command exited with status {done.returncode}"
                             + (f" ({first})" if first else ""))
        # `pass` prints the password on the first line and metadata after it.
        return (done.stdout.splitlines() or [""])[0].strip()

    def _from_keyring(self) -> str:
        service, _, user = self.target.partition("/")
        try:
            import keyring
            import keyring.errors

            value = keyring.get_password(service, user)
        except Exception as exc:
            raise self._fail(f"the keyring could not be read ({type(exc).__name__})") from None
        if value is None:
            raise self._fail(f"no entry for service {service!r}, user {user!r} in the keyring")
        return value

    def _file_path(self) -> Path:
        return Path(os.path.expanduser(self.target))

    def _from_file(self) -> str:
        path = self._file_path()
        try:
            info = path.stat()
        except FileNotFoundError:
            raise self._fail("file not found") from None
        except OSError as exc:
            raise self._fail(f"cannot be read ({exc.strerror or exc})") from None
        mode = info.st_mode
        # Group/other write access is refused too: whoever can change the token can
        # redirect replies to an account they control.
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            what = "readable" if mode & (stat.S_IRGRP | stat.S_IROTH) else "writable"
            raise self._fail(
                f"file is {what} by others (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {path}"
            )
        try:
            return path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise self._fail("file is not UTF-8 text") from None
        except OSError as exc:
            raise self._fail(f"cannot be read ({exc.strerror or exc})") from None

    def _from_literal(self) -> str:
        raise self._fail("no value given")

    @property
    def writable(self) -> bool:
        """Whether :meth:`store` can save a new value (refreshed OAuth tokens)."""
        return self.scheme in ("keyring", "file", "literal")

    def store(self, value: str) -> None:
        """Save a new value where it came from (keyring or file); cache it either way."""
        if self.scheme == "keyring":
            import keyring

            service, _, user = self.target.partition("/")
            try:
                keyring.set_password(service, user, value)
            except Exception as exc:
                raise self._fail(f"the keyring could not be written ({type(exc).__name__})"
                                 ) from None
        elif self.scheme == "file":
            self._store_file(value)
        elif self.scheme != "literal":
            raise self._fail(
                f"a refreshed token cannot be saved to {self.scheme}: sources; "
                "use keyring: or file: for tokens that rotate"
            )
        self._value = value

    def _store_file(self, value: str) -> None:
        # Write beside it, fsync, rename: a rotated refresh token that is lost in a crash
        # cannot be recovered (the platform already invalidated the old one).
        path = self._file_path()
        tmp = path.with_name(path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(value + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._fail(f"cannot be written ({exc.strerror or exc})") from None


def _stderr_hint(stderr: str, stdout: str) -> str:
    """The first line of a failed command's stderr, safe to show.

    A failing command may still have printed the secret (to stdout, or echoed into its
    complaint): anything it printed on stdout is masked, and the line is made inert,
    since password managers' messages reach the user's terminal.
    """
    from replydeck.inbox.sanitize import sanitize_line

    printed = {w.strip() for w in stdout.splitlines()}
    printed |= {sanitize_line(w).strip() for w in printed}
    words = sorted(printed - {""}, key=len, reverse=True)

    def mask(text: str) -> str:
        for word in words:
            text = text.replace(word, "[hidden]")
        return text

    # Masked before and after sanitising, so removed escapes cannot split a secret apart.
    line = mask((stderr.strip().splitlines() or [""])[0])
    line = mask(sanitize_line(line).strip())
    if len(line) > 120:
        line = line[:120] + "…"
    return line
