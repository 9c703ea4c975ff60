"""The registry's ASGI app: the routes of Elastic's package-registry (spec: epr-api §1–§3)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware import Middleware
from starlette.types import ASGIApp

from fleetgap.config import Settings
from fleetgap.packages.index import PackageIndex


class IndexHolder:
    """The index being served; `replace` swaps in a new one atomically (one reference)."""

    def __init__(self, index: PackageIndex) -> None:
        self.index = index

    def replace(self, index: PackageIndex) -> None:
        self.index = index


def create_app(
    settings: Settings, holder: IndexHolder, *, middleware: Sequence[Middleware] = ()
) -> ASGIApp:
    raise NotImplementedError
