"""HTTP to one registry: redirects, bounded retries, the Bearer token, the offline rule.

Each request is one connection (``http.client``, standard library only). The token is sent to
the registry's own scheme and host only, never to a redirect target (blob storage on another
host gets no credentials). With ``PATCHKIT_OFFLINE=1`` nothing but loopback is contacted.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from patchkit.errors import RegistryError
from patchkit.images.registry.auth import parse_challenge, token_from_reply, token_url
from patchkit.images.registry.reference import RegistryRef

__all__ = ["RetryPolicy", "Transport", "is_loopback", "read_small"]

_MAX_REDIRECTS = 5
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Bounded exponential backoff for 429, 5xx and dropped connections."""

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 4.0  # also caps Retry-After, so a hostile server cannot park us
    timeout: float = 60.0  # socket timeout per connect/read


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (no DNS lookup: names other than localhost are not)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_small(resp: http.client.HTTPResponse, limit: int = 64 * 1024) -> bytes:
    """Up to ``limit`` bytes of an (error) body, then close; b"" when the connection broke."""
    try:
        return resp.read(limit)
    except (OSError, http.client.HTTPException):
        return b""
    finally:
        resp.close()


def _error_detail(body: bytes) -> str:
    """The first registry error (``{"errors": [{"code", "message"}]}``), for one-line messages."""
    try:
        first = json.loads(body)["errors"][0]
        return f" {first.get('code', '')}: {first.get('message', '')}".rstrip(": ")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


@dataclass(slots=True)
class Transport:
    """Requests to one repository's registry (``base``), with auth and retries. Not thread-safe."""

    ref: RegistryRef  # names the image in messages; its repository scopes the token
    base: urllib.parse.SplitResult  # scheme://host[:port][/prefix]
    retry: RetryPolicy
    offline: bool
    token: str | None = None
    sleep: Callable[[float], None] = time.sleep

    def fail(self, what: str, method: str, path: str, detail: str = "") -> RegistryError:
        """A one-line error naming the reference and the request, never the token."""
        tail = f": {detail}" if detail else ""
        return RegistryError(f"{self.ref}: {what} ({method} {path}{tail})")

    def url(self, path: str) -> urllib.parse.SplitResult:
        return self.base._replace(path=self.base.path.rstrip("/") + path)

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        missing_ok: bool = False,
    ) -> http.client.HTTPResponse:
        """Send with auth, redirects and retries; return a response with status < 300 (body unread).

        ``missing_ok``: a 404 is returned too (its body read and closed) instead of raised.
        """
        url = self.url(path)
        headers = dict(headers or {})
        authed_retry = False
        attempt = 0
        redirects = 0
        while True:
            send = dict(headers)
            same_host = url.netloc == self.base.netloc and url.scheme == self.base.scheme
            if self.token is not None and same_host:
                send["Authorization"] = f"Bearer {self.token}"
            try:
                resp = self._send(method, url, send)
            except RegistryError:
                raise
            except OSError as e:  # resets, refusals, timeouts: retried, then reported
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise self.fail(
                        "registry unreachable", method, path, f"{type(e).__name__}: {e}"
                    ) from e
                self.sleep(self._backoff(attempt, None))
                continue
            status = resp.status
            if status < 300:
                return resp
            body = read_small(resp)
            if status in (301, 302, 303, 307, 308):
                location = resp.getheader("Location")
                redirects += 1
                if not location or redirects > _MAX_REDIRECTS:
                    raise self.fail("bad or endless redirect", method, path, f"HTTP {status}")
                url = urllib.parse.urlsplit(urllib.parse.urljoin(url.geturl(), location))
                if url.scheme not in ("http", "https"):
                    raise self.fail("redirect to a non-HTTP URL", method, path, url.scheme)
                if status == 303:
                    method = "GET"
                continue
            if status == 401 and same_host:
                scheme, params = parse_challenge(resp.getheader("WWW-Authenticate") or "")
                if scheme == "bearer" and not authed_retry:
                    self.token = self._fetch_token(params, method, path)
                    authed_retry = True
                    continue
                if scheme == "basic":
                    raise self.fail(
                        "registry needs credentials (Basic auth); patchkit pulls anonymously only",
                        method,
                        path,
                        "HTTP 401",
                    )
                raise self.fail("access denied", method, path, f"HTTP 401{_error_detail(body)}")
            if status in _RETRY_STATUSES:
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise self.fail(
                        f"registry kept failing after {attempt} tries",
                        method,
                        path,
                        f"HTTP {status}{_error_detail(body)}",
                    )
                self.sleep(self._backoff(attempt, resp.getheader("Retry-After")))
                continue
            if status == 404:
                if missing_ok:
                    return resp
                raise self.fail("not found", method, path, f"HTTP 404{_error_detail(body)}")
            if status == 403:
                raise self.fail("access denied", method, path, f"HTTP 403{_error_detail(body)}")
            raise self.fail(
                "registry refused the request", method, path, f"HTTP {status}{_error_detail(body)}"
            )

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        delay = self.retry.base_delay * 2.0 ** (attempt - 1)
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                delay = max(delay, float(retry_after))  # HTTP-date form: fall back to backoff
        return min(delay, self.retry.max_delay)

    def _send(
        self, method: str, url: urllib.parse.SplitResult, headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        host = url.hostname or ""
        if self.offline and not is_loopback(host):
            raise RegistryError(
                f"{self.ref}: refusing to contact {host} ({method} {url.path}): PATCHKIT_OFFLINE=1 allows loopback only"
            )
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            conn = http.client.HTTPSConnection(host, url.port, timeout=self.retry.timeout)
        else:
            conn = http.client.HTTPConnection(host, url.port, timeout=self.retry.timeout)
        target = url.path + (f"?{url.query}" if url.query else "")
        headers.setdefault("User-Agent", "patchkit")
        try:
            conn.request(method, target, headers=headers)
            resp = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        # the response keeps the socket; closing the response releases it
        return resp

    def _fetch_token(self, params: dict[str, str], method: str, path: str) -> str:
        where = token_url(params, self.ref.repository)
        if isinstance(where, str):  # why the challenge cannot be answered
            raise self.fail(where, method, path, "HTTP 401")
        attempt = 0
        while True:
            try:
                resp = self._send("GET", where, {"Accept": "application/json"})
                status, body = resp.status, read_small(resp, 1024 * 1024)
            except RegistryError:
                raise
            except OSError as e:
                status, body = 0, b""
                err: str = f"{type(e).__name__}: {e}"
            else:
                err = f"HTTP {status}"
            if 200 <= status < 300:
                break
            attempt += 1
            if status not in (0, *_RETRY_STATUSES) or attempt >= self.retry.attempts:
                raise self.fail(
                    "token server refused an anonymous pull token", "GET", where.path, err
                )
            self.sleep(self._backoff(attempt, None))
        token = token_from_reply(body)
        if token is None:
            raise self.fail("token server answered without a token", "GET", where.path)
        return token
