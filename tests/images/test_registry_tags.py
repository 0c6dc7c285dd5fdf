"""A repository's tags and their digests, against the real docker-registry on loopback.

Debian's docker-registry 2.8 answers tags/list whole (it ignores `n=`); pagination goes
through the tests' proxy, which pages the real registry's answer as Docker Hub and
distribution 3 do (tests/helpers/registry_server.py).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchkit.errors import RegistryError
from patchkit.images.oci import layout_tags
from patchkit.images.registry import RetryPolicy, parse_reference
from patchkit.images.registry.client import head_tag
from patchkit.images.registry.tags import TagReader, parse_link_next
from tests.helpers import registry_server as rs

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, timeout=10)


def reader(address: str, repo: str) -> TagReader:
    return TagReader(parse_reference(f"docker://{address}/{repo}"), retry=FAST)


def image(text: str) -> rs.Image:
    return rs.build_image([{"etc/version": text.encode()}])


# --- the Link header -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "target"),
    [
        ('</v2/a/tags/list?last=b&n=2>; rel="next"', "/v2/a/tags/list?last=b&n=2"),
        ("</v2/a/tags/list?n=2&last=b>; rel=next", "/v2/a/tags/list?n=2&last=b"),
        (
            '<https://r.example/v2/a/tags/list?last=b>; rel="next"',
            "https://r.example/v2/a/tags/list?last=b",
        ),
        ('</p>; rel="prev", </n>; rel="next"', "/n"),
        ('</x>; title="a, b; c"; REL="prev next"', "/x"),
        ('</x>; rel="prev"', None),
        ('</x>; rel="next"; rel="prev"', "/x"),  # only the first rel counts
        ('</x>; rel="prev"; rel="next"', None),
        ("", None),
    ],
)
def test_link_next(header: str, target: str | None) -> None:
    assert parse_link_next(header) == target


@pytest.mark.parametrize(
    "header",
    ["/v2/x; rel=next", '</x; rel="next"', '</x> rel="next"', '</x>; ="a"', '</x>; rel="next'],
)
def test_link_that_is_not_a_link_header_is_an_error(header: str) -> None:
    with pytest.raises(ValueError):
        parse_link_next(header)


_uri = st.text(
    st.characters(blacklist_characters='<>"\\', min_codepoint=33, max_codepoint=126), min_size=1
)
_rel = st.sampled_from(["next", "prev", "first", "last", "alternate"])
_quoted = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12)


@st.composite
def link_headers(draw: st.DrawFn) -> tuple[str, str | None]:
    links = draw(
        st.lists(st.tuples(_uri, st.lists(_rel, min_size=1, max_size=3), _quoted), max_size=4)
    )
    parts = []
    want: str | None = None
    for uri, rels, title in links:
        escaped = title.replace("\\", "\\\\").replace('"', '\\"')
        rel = " ".join(rels)
        rel_param = f'rel="{rel}"' if len(rels) > 1 or draw(st.booleans()) else f"rel={rel}"
        params = [rel_param, f'title="{escaped}"']
        if draw(st.booleans()):
            params.reverse()
        parts.append(
            f"<{uri}>" + "".join(f" ; {p}" if draw(st.booleans()) else f";{p}" for p in params)
        )
        if want is None and "next" in rels:
            want = uri
    return ", ".join(parts), want


@given(link_headers())
def test_link_next_finds_the_first_next_link_of_any_header(case: tuple[str, str | None]) -> None:
    header, want = case
    assert parse_link_next(header) == want


# --- listing ----------------------------------------------------------------------------------


TAGS = ["2.5.20", "2.5.21", "2.5.22", "2.5.9", "latest", "2.6.0-rc1", "2.4.9"]


def push_tags(registry: rs.Registry, repo: str, tags: list[str]) -> dict[str, str]:
    digests = {}
    for tag in tags:
        digests[tag] = rs.push_image(registry.address, repo, tag, image(tag))
    return digests


@pytest.mark.parametrize("absolute", [False, True])
def test_tags_follow_link_pages_with_one_token(
    registry: rs.Registry, proxy: rs.Proxy, repo: str, absolute: bool
) -> None:
    push_tags(registry, repo, TAGS)
    proxy.state.page_size, proxy.state.absolute_links = 100, absolute
    pages: list[int] = []
    tags = reader(proxy.address, repo).tags(page_size=2, on_page=pages.append)
    assert sorted(tags) == sorted(TAGS)
    assert pages == [2, 4, 6, 7]
    listed = [p for m, p, _ in proxy.state.log if p.endswith("/tags/list")]
    assert len(listed) == 5  # the anonymous try, then four pages
    assert len(proxy.state.token_requests) == 1


def test_tags_without_pagination_are_one_request(registry: rs.Registry, repo: str) -> None:
    push_tags(registry, repo, TAGS[:3])
    assert sorted(reader(registry.address, repo).tags()) == TAGS[:3]


def test_a_link_to_another_host_is_refused(
    registry: rs.Registry, proxy: rs.Proxy, repo: str
) -> None:
    push_tags(registry, repo, TAGS[:3])
    proxy.state.page_size = 1
    proxy.state.link_override = f'<http://127.0.0.2:1/v2/{repo}/tags/list?last=x>; rel="next"'
    with pytest.raises(RegistryError, match="the next page's link leaves the registry") as info:
        reader(proxy.address, repo).tags()
    assert str(info.value).startswith(f"docker://{proxy.address}/{repo}: ")


def test_a_link_back_to_a_page_read_is_refused(
    registry: rs.Registry, proxy: rs.Proxy, repo: str
) -> None:
    push_tags(registry, repo, TAGS[:3])
    proxy.state.page_size = 1
    proxy.state.link_override = f'</v2/{repo}/tags/list?n=1>; rel="next"'
    with pytest.raises(RegistryError, match="link back to a page already read"):
        reader(proxy.address, repo).tags(page_size=1)


def test_an_unknown_repository_is_one_line_naming_it(registry: rs.Registry, repo: str) -> None:
    with pytest.raises(RegistryError) as info:
        reader(registry.address, repo).tags()
    message = str(info.value)
    assert message.startswith(
        f"docker://{registry.address}/{repo}: not found (GET /v2/{repo}/tags/list"
    )
    assert "NAME_UNKNOWN" in message and "\n" not in message


# --- digests --------------------------------------------------------------------------------------


def test_digests_by_head_in_parallel_with_one_token(
    registry: rs.Registry, proxy: rs.Proxy, repo: str
) -> None:
    digests = push_tags(registry, repo, TAGS)
    amd, arm = (
        rs.build_image([{"a": b"amd"}]),
        rs.build_image([{"a": b"arm"}], platform="linux/arm64"),
    )
    index, children = rs.build_index([amd, arm])
    index_digest = rs.push_index(registry.address, repo, "multi", index, children)
    found = reader(proxy.address, repo).digests([*TAGS, "multi", "gone"], workers=4)
    assert {t: d.digest for t, d in found.items() if d} == {**digests, "multi": index_digest}
    assert found["gone"] is None
    assert found["multi"] is not None and found["multi"].media_type == rs.OCI_INDEX
    assert len(proxy.state.token_requests) == 1
    heads = [p for m, p, _ in proxy.state.log if m == "HEAD"]
    assert len(heads) == len(TAGS) + 2 + 1  # one anonymous try answered by the challenge
    assert not [p for m, p, _ in proxy.state.log if m == "GET" and "/manifests/" in p]


def test_a_registry_without_the_digest_header_is_read_by_get_and_sha256(
    registry: rs.Registry, proxy: rs.Proxy, repo: str
) -> None:
    digests = push_tags(registry, repo, TAGS[:2])
    proxy.state.drop_digest = True
    found = reader(proxy.address, repo).digests(TAGS[:2], workers=1)
    assert {t: d.digest for t, d in found.items() if d} == digests
    gets = [p for m, p, _ in proxy.state.log if m == "GET" and "/manifests/" in p]
    assert sorted(gets) == sorted(f"/v2/{repo}/manifests/{t}" for t in TAGS[:2])


def test_head_tag_without_missing_ok_names_the_tag(registry: rs.Registry, repo: str) -> None:
    transport = reader(registry.address, repo).transport
    with pytest.raises(RegistryError, match=r"not found \(HEAD /v2/.*/manifests/nope: HTTP 404"):
        head_tag(transport, "nope")


def test_a_registry_error_in_a_worker_is_the_one_error(
    registry: rs.Registry, proxy: rs.Proxy, repo: str
) -> None:
    push_tags(registry, repo, TAGS[:4])
    for _ in range(3):
        proxy.state.faults.append(rs.Fault("HEAD", r"/manifests/2\.5\.22$", 500))
    with pytest.raises(
        RegistryError, match=r"kept failing after 3 tries \(HEAD .*2\.5\.22: HTTP 500"
    ):
        reader(proxy.address, repo).digests(TAGS[:4], workers=3)


# --- OCI layouts ------------------------------------------------------------------------------------


def test_an_oci_layouts_ref_names_are_its_tags(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path)) / "layout"
    one, two = image("1"), image("2")
    rs.write_oci_layout(root, one, "1.0")
    rs.add_to_oci_layout(root, two, "1.1")
    rs.add_to_oci_layout(root, two, None)  # no name: not a tag
    assert layout_tags(str(root)) == {"1.0": one.digest, "1.1": two.digest}


def test_heads_of_known_tags_overlap_the_listing_with_one_token(
    registry: rs.Registry, proxy: rs.Proxy, repo: str
) -> None:
    digests = push_tags(registry, repo, TAGS)
    proxy.state.page_size = 2
    proxy.state.delay = 0.05  # each answer takes a while: the HEADs start before the last page
    tags, found = reader(proxy.address, repo).tags_and_digests(
        ["2.5.20", "2.5.21", "gone"], lambda listed: [t for t in listed if t.startswith("2.4")]
    )
    assert sorted(tags) == sorted(TAGS)
    assert {t: d.digest if d else None for t, d in found.items()} == {
        "2.5.20": digests["2.5.20"],
        "2.5.21": digests["2.5.21"],
        "gone": None,
        "2.4.9": digests["2.4.9"],
    }
    log = [(m, p) for m, p, _ in proxy.state.log if p != "/token"]
    last_page = max(i for i, (_, p) in enumerate(log) if p.endswith("/tags/list"))
    first_head = min(i for i, (m, _) in enumerate(log) if m == "HEAD")
    assert first_head < last_page
    assert len(proxy.state.token_requests) == 1
