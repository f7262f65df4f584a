"""Every page of a portal checked as its user sees it: axe-core (npm) at desktop and phone width with no
critical or serious violation, nothing wider than a 360 px screen, and the screenshots README shows.

``MEDSHARE_SCREENSHOTS=1 ./run test tests/web/test_portal_staff.py tests/web/test_portal_studies.py``
writes the screenshots into docs/ (otherwise they go to the test's temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
NARROWEST = {"width": 360, "height": 740}
PAGES = ("records", "read", "mydata", "studies", "consortium")
SERIOUS = ("critical", "serious")

_AXE = """async () => {
  const result = await axe.run(document, { resultTypes: ['violations'] });
  return result.violations.filter((v) => ['critical', 'serious'].includes(v.impact)).map((v) => ({
    id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
}"""


def visible_pages(page) -> list[str]:
    """The pages (tabs) this member's portal offers."""
    return [name for name in PAGES if page.locator(f"#tabs li:not(.d-none) > #tab-{name}").count()]


def show(page, name: str) -> None:
    """Switch to page ``name`` as a user would: through the collapsed menu where the width collapses it."""
    toggler = page.locator(".navbar-toggler")
    if toggler.is_visible():
        if page.locator("#nav-pages.show").count() == 0:
            toggler.click()
            page.wait_for_selector("#nav-pages.show")
        page.click(f"#tab-{name}")
        page.wait_for_selector("#nav-pages:not(.show):not(.collapsing)", state="attached")
    else:
        page.click(f"#tab-{name}")
    page.wait_for_selector(f"#{name}.tab-pane.active.show")


def serious_violations(page) -> list[dict]:
    return page.evaluate(_AXE)


def overflow(page) -> int:
    """How many pixels the document is wider than the viewport (0: nothing overflows)."""
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


def check_every_page(page, role: str, shots: Path, ready: dict[str, str] | None = None,
                     shoot: tuple[str, ...] = ()) -> list[str]:
    """Each page this member sees, at desktop, phone and the narrowest width: axe finds nothing critical
    or serious, and nothing overflows. Returns what failed (empty: all good). The pages in ``shoot``
    are photographed at desktop and phone width as ``portal-PAGE-SIZE.png``."""
    problems = []
    folder = ROOT / "docs" if os.environ.get("MEDSHARE_SCREENSHOTS") else shots
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE), ("narrowest", NARROWEST)):
        page.set_viewport_size(size)
        for name in visible_pages(page):
            show(page, name)
            if ready and name in ready:
                page.wait_for_selector(ready[name])
            if size_name != "narrowest":
                for violation in serious_violations(page):
                    problems.append(f"{role} {name} {size_name}: {violation}")
                if name in shoot:
                    page.screenshot(path=str(folder / f"portal-{name}-{size_name}.png"), full_page=True)
            extra = overflow(page)
            if extra > 0:
                problems.append(f"{role} {name} {size_name}: the document is {extra} px wider than the screen")
    page.set_viewport_size(DESKTOP)
    return problems
