"""Lists shown a page at a time (roles, sub-accounts, the audit log)."""

from __future__ import annotations


def paging(page: int, total: int, size: int) -> tuple[int, int]:
    """``page`` clamped to the pages ``total`` items of ``size`` take, and how many there are."""
    pages = max(1, -(-total // size))
    return min(max(page, 0), pages - 1), pages
