"""The dashboard's code is laid out by page (docs/layout.md): every file of a page in one folder."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VIEWS = REPO / "dashboard" / "views"
PAGE_PATHS = {"/", "/runs", "/new", "/hidden", "/kernels", "/projections", "/attention", "/lab", "/try"}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_ly001_every_page_is_one_folder_with_one_page_module():
    found = {}
    for page in sorted(VIEWS.glob("*/page.py")):
        m = re.search(r'register_page\(__name__, path="([^"]*)"', page.read_text())
        assert m, f"{page} does not register a page"
        found[m.group(1)] = page.parent.name
    assert set(found) == PAGE_PATHS, found
    # Dash imports every file under views/ that names register_page: a helper naming it would run twice
    others = [p.relative_to(REPO) for p in VIEWS.rglob("*.py") if p.name != "page.py" and "register_page" in p.read_text()]
    assert others == []


def test_ly002_no_page_module_is_imported_and_pages_do_not_reach_into_each_other():
    for path in VIEWS.rglob("*.py"):
        page = path.parent.name
        for mod in _imports(path):
            assert not mod.endswith(".page"), f"{path} imports {mod}: a page module is loaded by Dash alone"
            if mod.startswith("dashboard.views."):
                other = mod.split(".")[2]
                assert other == page, f"{path.relative_to(REPO)} imports {mod}: move what both need up to dashboard/"


def test_ly003_the_dashboard_top_level_holds_only_shared_modules():
    top = {p.stem for p in (REPO / "dashboard").glob("*.py")}
    prefixed = sorted(n for n in top if re.match(r"(hidden|kernel|projection|lab|attention|try)_", n))
    assert prefixed == [], f"page modules outside dashboard/views: {prefixed}"
    assert not (REPO / "dashboard" / "pages").exists() and not (REPO / "dashboard" / "figures").exists()


def test_ly004_the_layout_map_names_every_view_folder():
    text = (REPO / "docs" / "layout.md").read_text()
    for folder in sorted(p.name for p in VIEWS.iterdir() if (p / "page.py").exists()):
        assert f"{folder}/" in text, f"docs/layout.md does not list dashboard/views/{folder}/"
