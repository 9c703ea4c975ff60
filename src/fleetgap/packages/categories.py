"""Category counts for /categories (spec: epr-api §3.5, §4.6)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fleetgap.packages.search import Match
from fleetgap.packages.tables import CATEGORIES, has_category


@dataclass
class CategoryCount:
    id: str
    title: str
    count: int = 0
    parent_id: str = ""
    parent_title: str = ""

    def document(self) -> dict[str, object]:
        doc: dict[str, object] = {"id": self.id, "title": self.title, "count": self.count}
        if self.parent_id:
            doc["parent_id"] = self.parent_id
        if self.parent_title:
            doc["parent_title"] = self.parent_title
        return doc


def count_categories(
    matches: Iterable[Match], include_policy_templates: bool
) -> dict[str, CategoryCount]:
    counts: dict[str, CategoryCount] = {}

    def bump(category: str) -> None:
        counts.setdefault(category, CategoryCount(category, category)).count += 1

    for match in matches:
        package = match.package
        for category in package.categories:
            bump(category)
        if not include_policy_templates:
            continue
        templates = list(match.template_categories())
        extra: list[str] = []
        for template in templates:
            if template is None and len(templates) == 1:
                break
            for category in package.categories:
                bump(category)
            for category in template or ():
                counts.setdefault(category, CategoryCount(category, category))
                if not has_category(package.categories, category) and category not in extra:
                    extra.append(category)
                    bump(category)
                bump(category)
    return counts


def merge_counts(local: dict[str, CategoryCount], remote: Iterable[CategoryCount]) -> None:
    """Proxy mode: upstream categories join by id, adding counts."""
    for category in remote:
        mine = local.get(category.id)
        if mine is None:
            local[category.id] = category
        else:
            mine.count += category.count


def categories_document(counts: dict[str, CategoryCount]) -> list[dict[str, object]]:
    """Sorted by id; titles and parents from the built-in table (looked up by title, as Go)."""
    result = []
    for key in sorted(counts):
        entry = counts[key]
        known = CATEGORIES.get(entry.title)
        if known is not None:
            entry.title = known.title
            if known.parent is not None:
                entry.parent_id = known.parent.id
                entry.parent_title = known.parent.title
        result.append(entry.document())
    return result
