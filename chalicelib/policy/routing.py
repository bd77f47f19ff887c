"""Which route a request goes to: by host, then by the longest path prefix.

Route matching depends only on the policy's routes, never on who asks; the
engine (:mod:`chalicelib.policy.engine`) memoises it per host and path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from chalicelib.policy.document import is_reserved_path
from chalicelib.policy.paths import fold_case

if TYPE_CHECKING:
    from chalicelib.policy.document import Route


class RouteTable:
    """The routes of one policy, indexed by host and case-folded path prefix.

    Parameters
    ----------
    routes:
        The policy's routes, in document order (the first wins a tie).
    """

    def __init__(self, routes: Sequence[Route]) -> None:
        # host -> path prefix -> route (the first in document order wins a tie)
        self._by_host: dict[str, dict[str, Route]] = {}
        for route in routes:
            prefix = fold_case(route.path_prefix)
            self._by_host.setdefault(route.host, {}).setdefault(prefix, route)

    def route_for(self, host: str, path: str) -> Route | None:
        """The route for a request: exact host before ``*``, then longest prefix.

        Prefixes match ignoring letter case, as deny globs do: a backend that
        routes ``/Admin`` like ``/admin`` must not be reached through another
        route (and its rules) by changing case. Paths under ``/.gatehouse``
        have none: the gateway sends paths it does not match exactly
        (``/.gatehouse/grants/``, ``/.gatehouse/x``) to the proxy.
        """
        if is_reserved_path(path):
            return None
        bare_host = host.split(":", 1)[0].lower().rstrip(".")
        folded = fold_case(path)
        for by_prefix in (self._by_host.get(bare_host), self._by_host.get("*")):
            if not by_prefix:
                continue
            for prefix in _covering_prefixes(folded):
                route = by_prefix.get(prefix)
                if route is not None:
                    return route
        return None


def _covering_prefixes(path: str) -> Iterator[str]:
    """Every route prefix that covers ``path``, longest first.

    ``/a/b`` is covered by ``/a/b``, ``/a/``, ``/a`` and ``/`` (see
    :meth:`Route.covers_path`): one dict lookup per segment, however many
    routes there are.
    """
    yield path
    end = len(path)
    while end > 0:
        end = path.rfind("/", 0, end)
        if end < 0:
            return
        yield path[: end + 1]
        if end:
            yield path[:end]
