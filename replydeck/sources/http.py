"""The one way adapters make their HTTP client: same User-Agent, explicit timeouts."""

from __future__ import annotations

from typing import Any

import httpx

from replydeck import __version__

USER_AGENT = f"replydeck/{__version__}"


def new_client(base_url: str = "", *, timeout: float, headers: dict[str, str] | None = None,
               **kwargs: Any) -> httpx.AsyncClient:
    """An AsyncClient for one source. Redirects are not followed unless asked for: an
    Authorization header must never travel to another host."""
    kwargs.setdefault("follow_redirects", False)
    return httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(timeout),
                             headers={"User-Agent": USER_AGENT, **(headers or {})}, **kwargs)
