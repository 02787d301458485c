"""The Graph API client shared by the Facebook Page and Instagram sources.

One job: talk to ``graph.facebook.com`` (or a proxy / fake) and turn its answers into
data or into replydeck's errors. It handles

* auth: the Page (or Instagram) access token as the ``access_token`` parameter. The token
  therefore travels in the URL, so no httpx error text (which quotes URLs) and no
  ``paging.next`` URL (which repeats the token) ever reaches a message or a log: paging
  follows ``paging.cursors.after`` with our own parameters instead;
* usage headers: ``X-App-Usage`` / ``X-Page-Usage`` (``{call_count, total_cputime,
  total_time}`` in percent) and ``X-Business-Use-Case-Usage`` (``{"<id>": [{type,
  call_count, total_cputime, total_time, estimated_time_to_regain_access}]}``, the last in
  minutes). At 100 % calls stop until the time Meta named; above :data:`SLOW_DOWN_PCT`
  the poller is asked to wait (:attr:`GraphClient.not_before`);
* Graph error objects ``{"error": {message, type, code, error_subcode, fbtrace_id}}``,
  mapped by code (see :func:`graph_error`), never by HTTP status alone.

It also holds the Messenger-policy rules both sources apply before sending
(:func:`reply_window`), so the composer and ``send`` say the same thing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from replydeck.inbox.model import UTC, Message, utcnow
from replydeck.inbox.sanitize import sanitize_line
from replydeck.sources.base import (
    AuthError,
    PermanentError,
    RateLimited,
    TransientError,
    describe_json,
)
from replydeck.sources.http import new_client

DEFAULT_API_BASE = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v25.0"
#: Above this usage (percent of any quota) the poller is asked to slow down.
SLOW_DOWN_PCT = 80.0
#: How long to slow down when usage is high but below 100 %.
SLOW_DOWN = timedelta(minutes=5)
#: When a limit is hit and Meta names no time (app-level limits roll over an hour).
DEFAULT_BLOCK = timedelta(minutes=10)
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80001, 80002, 80003, 80004, 80005, 80006,
                              80008, 80009, 80014})
#: Messenger policy (PLATFORMS.md §4).
WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
PRIVATE_REPLY_WINDOW = timedelta(days=7)
#: ``(#10) This message is sent outside of allowed window.``
OUTSIDE_WINDOW_SUBCODE = 2018278
#: A second private reply to the same comment [U: code as reported by API users].
ALREADY_REPLIED_CODE = 10900

#: Which permission an operation needs, to name it when Graph says one is missing.
PERMISSIONS = {
    "facebook": {
        "read": "pages_read_engagement, pages_read_user_content and pages_show_list",
        "messages": "pages_messaging",
        "comment": "pages_manage_engagement",
    },
    "instagram": {
        "read": "instagram_basic and instagram_manage_comments",
        "messages": "instagram_manage_messages",
        "comment": "instagram_manage_comments",
    },
}


_TOKEN_IN_URL = re.compile(r"(access_token=)[^&\s\"']+")


class _RedactAccessToken(logging.Filter):
    """httpx logs every request URL at INFO, and Graph's token is a URL parameter: mask it
    before any handler (the log file) sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any("access_token=" in str(a)
                                                  for a in record.args):
            record.args = tuple(_TOKEN_IN_URL.sub(r"\1<redacted>", str(a))
                                if "access_token=" in str(a) else a for a in record.args)
        if isinstance(record.msg, str) and "access_token=" in record.msg:
            record.msg = _TOKEN_IN_URL.sub(r"\1<redacted>", record.msg)
        return True


def _install_redaction() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactAccessToken) for f in logger.filters):
        logger.addFilter(_RedactAccessToken())


_install_redaction()


@dataclass(frozen=True)
class WindowInfo:
    """Whether a reply may go out now, and why (shown by the composer, enforced by send)."""

    open: bool
    reason: str
    allowed_tags: list[str] = field(default_factory=list)


def parse_time(value: Any, platform: str) -> datetime:
    """Graph times look like ``2026-11-22T10:00:00+0000`` (not ISO 8601 with a colon)."""
    if isinstance(value, str):
        for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
            try:
                return datetime.strptime(value, fmt).astimezone(UTC)
            except ValueError:
                continue
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    raise TransientError(f"malformed answer from {platform}: a time is "
                         f"{describe_json(value, 40)}")


def format_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def reply_window(reply_to: Message | None, now: datetime, *, private: bool,
                 thread_key: str | None, tag: str | None = None,
                 private_replied: bool = False) -> WindowInfo:
    """The Messenger/Instagram rules for a reply to ``reply_to`` at ``now``.

    * a public reply to a comment: always allowed;
    * a private reply to a comment: once per comment, within 7 days of it;
    * a DM: within 24 h of the customer's last message (``reply_to`` is the latest one);
      after that only with the ``HUMAN_AGENT`` tag, for 7 days. The other message tags
      (ACCOUNT_UPDATE, CONFIRMED_EVENT_UPDATE, POST_PURCHASE_UPDATE) are for notices,
      not for answering a customer, so they are not offered.
    """
    if reply_to is None:
        return WindowInfo(False, "nothing to reply to: the conversation has no message "
                                 "from the customer")
    age = now - reply_to.created_at
    thread = thread_key or reply_to.thread_key or ""
    if not thread.startswith("dm:"):
        if not private:
            return WindowInfo(True, "public reply to the comment (no time limit)")
        if age > PRIVATE_REPLY_WINDOW:
            return WindowInfo(False, f"a private reply to a comment is allowed only within "
                                     f"7 days of it; this comment is {_age(age)} old. "
                                     f"Reply publicly instead")
        if private_replied:
            return WindowInfo(False, "this comment already got its one private reply; the "
                                     "conversation continues in the inbox once the person "
                                     "answers it")
        left = PRIVATE_REPLY_WINDOW - age
        return WindowInfo(True, f"one private reply to this comment is allowed "
                                f"({_age(left)} left)")
    if age <= WINDOW:
        return WindowInfo(True, f"within the 24-hour window ({_age(WINDOW - age)} left)")
    if age <= HUMAN_AGENT_WINDOW:
        left = _age(HUMAN_AGENT_WINDOW - age)
        if tag == "HUMAN_AGENT":
            return WindowInfo(True, f"outside the 24-hour window; sent with the HUMAN_AGENT "
                                    f"tag ({left} left of its 7 days)", ["HUMAN_AGENT"])
        return WindowInfo(False, f"the 24-hour window closed {_age(age - WINDOW)} ago (the "
                                 f"customer last wrote {_age(age)} ago). Only a reply by a "
                                 f"person with the HUMAN_AGENT tag is allowed, for another "
                                 f"{left} (the app needs the Human Agent permission)",
                          ["HUMAN_AGENT"])
    return WindowInfo(False, f"the customer last wrote {_age(age)} ago: past the 24-hour "
                             f"window and the 7 days of the HUMAN_AGENT tag. Meta allows no "
                             f"reply until they write again")


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{max(1, seconds // 60)} min"


# -- usage headers ---------------------------------------------------------------------
@dataclass(frozen=True)
class Usage:
    """The highest usage percentage any header reported, and the regain time if named."""

    percent: float = 0.0
    regain_minutes: float | None = None


def parse_usage(headers: httpx.Headers) -> Usage:
    percent = 0.0
    regain: float | None = None

    def take(entry: Any) -> None:
        nonlocal percent, regain
        if not isinstance(entry, dict):
            return
        for key in ("call_count", "total_cputime", "total_time", "acc_id_util_pct"):
            value = entry.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                percent = max(percent, float(value))
        minutes = entry.get("estimated_time_to_regain_access")
        if isinstance(minutes, (int, float)) and not isinstance(minutes, bool) and minutes > 0:
            regain = max(regain or 0.0, float(minutes))

    for name in ("x-app-usage", "x-page-usage", "x-ad-account-usage"):
        data = _header_json(headers.get(name))
        take(data)
    buc = _header_json(headers.get("x-business-use-case-usage"))
    if isinstance(buc, dict):
        for entries in buc.values():
            for entry in entries if isinstance(entries, list) else []:
                take(entry)
    return Usage(percent, regain)


def _header_json(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


# -- errors ----------------------------------------------------------------------------
def graph_error(status: int, data: Any, *, platform: str, what: str, permission: str,
                retry_at: datetime | None, mutating: bool) -> Exception:
    """The replydeck error for a Graph error answer (``retry_at`` from the usage headers)."""
    label = "Instagram" if platform == "instagram" else "Facebook"
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        if status == 429:
            when = retry_at or utcnow() + DEFAULT_BLOCK
            return RateLimited(f"{label} answered 429 on {what}; waiting until "
                               f"{when:%H:%M} UTC", retry_at=when)
        if status >= 500:
            return TransientError(f"{label} server error {status} on {what}",
                                  retry_at=retry_at, maybe_sent=mutating)
        return TransientError(f"malformed answer from {label} on {what}: HTTP {status}, "
                              f"{describe_json(data) if data is not None else 'not JSON'}",
                              maybe_sent=mutating)
    code = err.get("code") if isinstance(err.get("code"), int) else None
    sub = err.get("error_subcode") if isinstance(err.get("error_subcode"), int) else None
    message = sanitize_line(str(err.get("message") or ""))[:300] or "no details given"
    trace = sanitize_line(str(err.get("fbtrace_id") or ""))[:40]
    said = f"{label} said: {message}" + (f" [fbtrace_id {trace}]" if trace else "")
    if code in RATE_LIMIT_CODES or status == 429:
        when = retry_at or utcnow() + DEFAULT_BLOCK
        return RateLimited(f"{label} rate limit reached on {what} (code {code}); waiting "
                           f"until {when:%H:%M} UTC", retry_at=when)
    if code in (1, 2) or err.get("is_transient") is True or status >= 500:
        # The request reached Meta; for a send it may have been carried out.
        return TransientError(f"{label} had a temporary problem on {what} ({said})",
                              retry_at=retry_at, maybe_sent=mutating)
    if code == 190 or code == 102:
        hint = {463: "it expired", 460: "the password of its user changed",
                458: "the app was removed", 467: "it was invalidated"}.get(sub or 0,
                                                                      "it is invalid")
        return AuthError(f"{label} rejected the access token ({hint}). Create a new Page "
                         f"access token (a long-lived one from a long-lived user token does "
                         f"not expire) with {permission} and store it where the config's "
                         f"token points")
    if code == 10 and sub == OUTSIDE_WINDOW_SUBCODE:
        return PermanentError(f"{label} refused the message: outside the 24-hour reply "
                              f"window ({said})")
    if code == ALREADY_REPLIED_CODE:
        return PermanentError(f"{label} refused the private reply: this comment was "
                              f"already answered privately once ({said})")
    if code == 10 or (code is not None and 200 <= code <= 299) or status == 403:
        return AuthError(f"{label} refused {what}: missing permission (this needs "
                         f"{permission}; grant it to the app and create a new token). {said}")
    if code == 551:
        return PermanentError(f"{label} refused {what}: this person isn't available right "
                              f"now (they may have blocked the Page or deleted their "
                              f"account). {said}")
    if code == 100:
        return PermanentError(f"{label} refused {what}: invalid parameter. {said}")
    return PermanentError(f"{label} refused {what} (code {code}). {said}")


# -- the client ------------------------------------------------------------------------
class GraphClient:
    """One ``httpx.AsyncClient`` against one Graph API base and version."""

    def __init__(self, *, platform: str, token: Any, api_base: str, graph_version: str,
                 timeout: float) -> None:
        self.platform = platform
        self.label = "Instagram" if platform == "instagram" else "Facebook"
        self._token = token
        self.api_base = api_base.rstrip("/")
        self.graph_version = graph_version.strip("/")
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        #: No call before this (a usage quota hit 100 %).
        self.blocked_until: datetime | None = None
        #: The poller should wait until then (usage above SLOW_DOWN_PCT).
        self.not_before: datetime | None = None
        self.last_usage = Usage()

    def __repr__(self) -> str:
        return f"GraphClient({self.platform!r}, api_base={self.api_base!r})"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(f"{self.api_base}/{self.graph_version}",
                                      timeout=self.timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _access_token(self) -> str:
        try:
            return self._token.resolve()
        except Exception as exc:  # ConfigError names the reference, never the value
            raise AuthError(f"{self.label} token: {exc}") from None

    def _note_usage(self, resp: httpx.Response) -> datetime | None:
        usage = parse_usage(resp.headers)
        self.last_usage = usage
        now = utcnow()
        if usage.percent >= 100.0 or usage.regain_minutes:
            # Meta throttles at 100 % and names the minutes until access returns; a
            # non-zero regain time means throttled whatever the percentages say.
            minutes = usage.regain_minutes
            until = now + (timedelta(minutes=minutes) if minutes else DEFAULT_BLOCK)
            self.blocked_until = until
            self.not_before = until
            return until
        if usage.percent >= SLOW_DOWN_PCT:
            self.not_before = max(self.not_before or now, now + SLOW_DOWN)
        return None

    def take_not_before(self) -> datetime | None:
        """The pacing hint for this round's Batch (cleared once handed out)."""
        when, self.not_before = self.not_before, None
        if when is not None and when <= utcnow():
            return None
        return when

    async def call(self, method: str, path: str, *, what: str, permission: str,
                   params: dict[str, Any] | None = None,
                   body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One Graph call; returns the decoded JSON object or raises a SourceError."""
        if self.blocked_until is not None:
            if self.blocked_until > utcnow():
                raise RateLimited(f"{self.label} usage limit reached; waiting until "
                                  f"{self.blocked_until:%H:%M} UTC",
                                  retry_at=self.blocked_until)
            self.blocked_until = None
        mutating = method != "GET"
        query = dict(params or {})
        query["access_token"] = self._access_token()
        try:
            resp = await self._http().request(method, path, params=query, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(f"cannot reach {self.label} at {self.api_base} "
                                 f"({type(exc).__name__})") from None
        except httpx.TimeoutException:
            raise TransientError(f"{self.label} did not answer {what} within "
                                 f"{self.timeout:g} s", maybe_sent=mutating) from None
        except httpx.HTTPError as exc:
            raise TransientError(f"lost the connection to {self.label} on {what} "
                                 f"({type(exc).__name__})", maybe_sent=mutating) from None
        retry_at = self._note_usage(resp)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400 or (isinstance(data, dict) and "error" in data):
            raise graph_error(resp.status_code, data, platform=self.platform, what=what,
                              permission=permission, retry_at=retry_at, mutating=mutating)
        if not isinstance(data, dict):
            raise TransientError(f"malformed answer from {self.label} on {what}: "
                                 f"{describe_json(data) if data is not None else 'not JSON'}",
                                 maybe_sent=mutating)
        return data

    async def pages(self, path: str, *, what: str, permission: str,
                    params: dict[str, Any], max_pages: int) -> AsyncIterator[list[dict]]:
        """Each page's ``data`` list, following ``paging.cursors.after``."""
        query = dict(params)
        for _ in range(max_pages):
            data = await self.call("GET", path, what=what, permission=permission,
                                   params=query)
            items = data.get("data")
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise TransientError(f"malformed answer from {self.label} on {what}: "
                                     f"{describe_json(data)}")
            yield items
            after = _after(data)
            if not items or after is None:
                return
            query["after"] = after


def _after(data: dict[str, Any]) -> str | None:
    paging = data.get("paging")
    if not isinstance(paging, dict) or "next" not in paging:
        return None  # no next page: Graph omits `next` on the last one
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return after if isinstance(after, str) and after else None


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else ""


def id_of(value: Any) -> str:
    """Graph ids are strings; a number here would be a malformed answer."""
    return value if isinstance(value, str) else ""
