"""Hypothesis strategies for tar entries, shared by the tests that write archives with
another implementation's writer (`tarfile`'s, Go's) and read them back."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["component", "ids", "names"]

# One path component: any printable text but "/", NUL, "." and "..".
component = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\0"),
    min_size=1,
    max_size=40,
).filter(lambda c: c not in (".", ".."))
# Relative paths of 1 to 8 components (long ones need a GNU long name or a pax record).
names = st.lists(component, min_size=1, max_size=8).map("/".join)
# Owner ids, half of them too big for the 7 octal digits of a ustar field.
ids = st.one_of(st.integers(0, 2**21 - 1), st.integers(2**21, 2**40))
