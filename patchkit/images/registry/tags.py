"""A repository's tags (``GET /v2/NAME/tags/list``, paginated) and what each points to now.

One :class:`TagReader` holds one transport, so the whole listing and every ``HEAD`` after it
share one Bearer token; the ``HEAD``s run on a small thread pool, each on a copy of the
transport carrying that token (a :class:`Transport` is not thread-safe).

>>> parse_link_next('</v2/app/tags/list?last=b&n=2>; rel="next"')
'/v2/app/tags/list?last=b&n=2'
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from patchkit.images.registry.client import TagDigest, head_tag, open_transport
from patchkit.images.registry.reference import RegistryRef
from patchkit.images.registry.transport import RetryPolicy, Transport

__all__ = ["PAGE_SIZE", "WORKERS", "TagDigest", "TagReader", "parse_link_next"]

PAGE_SIZE = 1000  # tags asked per page (`n=`); a registry may answer with fewer
WORKERS = 8  # parallel HEADs: enough to hide latency, few enough for a registry's rate limits
_MAX_PAGE_BYTES = 16 * 1024 * 1024
_MAX_PAGES = 10_000

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def parse_link_next(header: str) -> str | None:
    """The target of the ``rel="next"`` link of a ``Link`` header (RFC 8288), or None.

    Several links may be given, comma-separated; ``rel`` may hold several relation types
    (``rel="prev next"``), quoted or not. ValueError when the header is not a Link header.
    """
    pos, end = 0, len(header)
    while pos < end:
        while pos < end and header[pos] in " \t,":
            pos += 1
        if pos >= end:
            break
        if header[pos] != "<":
            raise ValueError(f"expected '<' at {pos}")
        close = header.find(">", pos)
        if close < 0:
            raise ValueError("unterminated '<'")
        target = header[pos + 1 : close]
        pos = close + 1
        rels: list[str] = []
        while True:
            while pos < end and header[pos] in " \t":
                pos += 1
            if pos >= end or header[pos] == ",":
                break
            if header[pos] != ";":
                raise ValueError(f"expected ';' or ',' at {pos}")
            pos += 1
            while pos < end and header[pos] in " \t":
                pos += 1
            start = pos
            while pos < end and header[pos] in _TOKEN_CHARS:
                pos += 1
            name = header[start:pos].lower()
            if not name:
                raise ValueError(f"expected a parameter name at {pos}")
            while pos < end and header[pos] in " \t":
                pos += 1
            value = ""
            if pos < end and header[pos] == "=":
                pos += 1
                while pos < end and header[pos] in " \t":
                    pos += 1
                value, pos = _param_value(header, pos)
            if name == "rel" and not rels:  # RFC 8288: only the first rel counts
                rels = value.lower().split() or ["?"]
        if "next" in rels:
            return target
    return None


def _param_value(header: str, pos: int) -> tuple[str, int]:
    if pos < len(header) and header[pos] == '"':
        out: list[str] = []
        pos += 1
        while pos < len(header):
            char = header[pos]
            if char == "\\" and pos + 1 < len(header):
                out.append(header[pos + 1])
                pos += 2
            elif char == '"':
                return "".join(out), pos + 1
            else:
                out.append(char)
                pos += 1
        raise ValueError("unterminated quoted string")
    start = pos
    while pos < len(header) and header[pos] not in ";, \t":
        pos += 1
    return header[start:pos], pos


class TagReader:
    """The tags of one repository and their digests, over one transport (one token)."""

    def __init__(
        self,
        ref: RegistryRef,
        *,
        mirror: str | None = None,
        insecure: bool | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        repo_ref = dataclasses.replace(ref, tag=None, digest=None)  # messages name the repository
        self.transport = open_transport(repo_ref, mirror=mirror, insecure=insecure, retry=retry)

    @property
    def name(self) -> str:
        return str(self.transport.ref)

    def tags(
        self, *, page_size: int = PAGE_SIZE, on_page: Callable[[int], None] | None = None
    ) -> tuple[str, ...]:
        """Every tag, following ``Link: <...>; rel="next"`` from page to page (relative or
        absolute links, on this registry only); ``on_page(tags so far)`` after each page."""
        transport = self.transport
        path: str | None = f"/v2/{transport.ref.repository}/tags/list?n={page_size}"
        seen: set[str] = set()
        tags: dict[str, None] = {}
        for _ in range(_MAX_PAGES):
            if path is None:
                return tuple(tags)
            seen.add(path)
            resp = transport.request("GET", path, {"Accept": "application/json"})
            with contextlib.closing(resp):
                body = resp.read(_MAX_PAGE_BYTES + 1)
                link = resp.getheader("Link")
            if len(body) > _MAX_PAGE_BYTES:
                raise transport.fail(f"tag list larger than {_MAX_PAGE_BYTES} bytes", "GET", path)
            for tag in _page_tags(transport, path, body):
                tags[tag] = None
            if on_page is not None:
                on_page(len(tags))
            path = self._next_path(path, link) if link else None
            if path is not None and path in seen:
                raise transport.fail("tag list pages link back to a page already read", "GET", path)
        raise transport.fail(f"tag list has more than {_MAX_PAGES} pages", "GET", path or "")

    def _next_path(self, path: str, link: str) -> str | None:
        transport = self.transport
        try:
            target = parse_link_next(link)
        except ValueError as e:
            raise transport.fail("unreadable Link header", "GET", path, str(e)) from None
        if target is None:
            return None
        here = transport.url(path).geturl()
        url = urllib.parse.urlsplit(urllib.parse.urljoin(here, target))
        base = transport.base
        prefix = base.path.rstrip("/")
        if (url.scheme, url.netloc) != (base.scheme, base.netloc) or not url.path.startswith(
            prefix + "/v2/"
        ):
            raise transport.fail(
                "the next page's link leaves the registry", "GET", path, f"Link: {target}"
            )
        return url.path[len(prefix) :] + (f"?{url.query}" if url.query else "")

    def digests(
        self, tags: Iterable[str], *, workers: int = WORKERS
    ) -> dict[str, TagDigest | None]:
        """What each tag points to now (None: the registry has no such tag any more)."""
        wanted = list(dict.fromkeys(tags))
        out: dict[str, TagDigest | None] = {}
        if not wanted:
            return out
        if self.transport.token is None:  # the first answers the challenge: one token for all
            out[wanted[0]] = head_tag(self.transport, wanted[0], missing_ok=True)
            wanted = wanted[1:]
        if workers <= 1 or len(wanted) <= 1:
            out.update((tag, head_tag(self.transport, tag, missing_ok=True)) for tag in wanted)
            return out
        with ThreadPoolExecutor(max_workers=min(workers, len(wanted))) as pool:
            futures = {tag: pool.submit(self._head, tag) for tag in wanted}
            try:
                for tag, future in futures.items():
                    out[tag] = future.result()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return out

    def _head(self, tag: str) -> TagDigest | None:
        return head_tag(dataclasses.replace(self.transport), tag, missing_ok=True)

    def tags_and_digests(
        self,
        early: Iterable[str],
        later: Callable[[tuple[str, ...]], Iterable[str]],
        *,
        page_size: int = PAGE_SIZE,
        workers: int = WORKERS,
    ) -> tuple[tuple[str, ...], dict[str, TagDigest | None]]:
        """Every tag, and what ``early`` and ``later(tags)`` point to now, in fewer round trips
        than :meth:`tags` then :meth:`digests`: the ``HEAD``s of ``early`` (tags known before
        the listing, e.g. the tracked ones) start once the first page has brought the token,
        while the next pages are read; those of ``later`` follow the listing."""
        first = list(dict.fromkeys(early))
        futures: dict[str, Future[TagDigest | None]] = {}
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:

            def started(_: int) -> None:
                if not futures:
                    futures.update((tag, pool.submit(self._head, tag)) for tag in first)

            try:
                tags = self.tags(page_size=page_size, on_page=started)
                started(0)
                for tag in later(tags):
                    if tag not in futures:
                        futures[tag] = pool.submit(self._head, tag)
                out = {tag: future.result() for tag, future in futures.items()}
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return tags, out


def _page_tags(transport: Transport, path: str, body: bytes) -> Sequence[str]:
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise transport.fail("tag list is not JSON", "GET", path, str(e)) from None
    tags = doc.get("tags") if isinstance(doc, Mapping) else None
    if tags is None and isinstance(doc, Mapping):
        return ()  # a repository without tags answers "tags": null
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise transport.fail("tag list has no list of strings under 'tags'", "GET", path)
    return tags
