"""The product's shape: the core is the product without a screen (importing it loads no
Textual), SQL lives in ``core/storage/`` only, and the core has no import circles."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.test_tui_structure import find_cycle

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"
STORAGE = CORE / "storage"
PRODUCT = (CORE, ROOT / "tui", ROOT / "bench")  # what ships or measures it; tests may use SQL
# The intake bench's reference: raw sqlite3 on purpose, what docbridge is measured against.
RAW_REFERENCE = ROOT / "bench" / "raw_sqlite.py"


def core_modules() -> list[str]:
    """Every module of the core package, from its files: a new module is checked without anyone
    remembering to list it."""
    names: list[str] = []
    for path in sorted(CORE.rglob("*.py")):
        parts = path.relative_to(CORE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_module_list_is_derived_from_the_files() -> None:
    modules = core_modules()
    assert {"core", "core.engine.sftp_component", "core.storage.jobs", "core.sftp.server"} <= set(
        modules
    )
    assert len(modules) == len(set(modules))


def test_importing_the_core_loads_no_textual_rich_or_tui() -> None:
    imports = "; ".join(f"import {name}" for name in core_modules())
    probe = (
        f"import sys; {imports}; "
        "bad = sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('textual', 'rich', 'tui')); print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr  # every module imports
    assert result.stdout.strip() == ""


def test_the_probe_would_notice_textual() -> None:
    """Guard against a probe that cannot fail: importing the TUI does load Textual."""
    probe = "import sys, tui.app; print('textual' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"


def test_the_asyncssh_pin_is_the_range_the_upload_hook_was_checked_against() -> None:
    """The SFTP upload hook leans on asyncssh internals checked for one range of releases; the
    dependency must not let pip install a release outside it."""
    import tomllib

    from core.sftp.close_hook import TESTED_ASYNCSSH

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    pins = [d for d in project["project"]["dependencies"] if d.startswith("asyncssh")]
    assert pins == [f"asyncssh{TESTED_ASYNCSSH}"]


# -- one door to storage ---------------------------------------------------------------------

_RUNS_SQL = {"execute", "executemany", "executescript"}
_SQL_TEXT = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
    r"|CREATE\s+(TABLE|INDEX|VIEW|TRIGGER)|DROP\s+TABLE|ALTER\s+TABLE|PRAGMA\s+\w+"
    r"|^BEGIN(\s+(IMMEDIATE|EXCLUSIVE|DEFERRED))?$|^COMMIT$|^ROLLBACK$)",
    re.DOTALL,
)


def product_files(outside: Path) -> list[Path]:
    return sorted(
        path for folder in PRODUCT for path in folder.rglob("*.py") if outside not in path.parents
    )


def sql_offences(path: Path) -> list[str]:
    """``line: what`` for each statement run (``.execute(``, ``.executemany(``,
    ``.executescript(``) and each SQL text in a string literal, in line order."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _RUNS_SQL
        ):
            found.append((node.lineno, f".{node.func.attr}("))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _SQL_TEXT.search(node.value.strip())
            if match:
                found.append((node.lineno, f"SQL {match.group(0)[:25]!r}"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_sql_lives_only_in_core_storage() -> None:
    """Callers name storage operations; no statement or SQL text outside ``core/storage/``, so
    a second backend is one new package there (docs/scale-out.md)."""
    offences = {
        str(path.relative_to(ROOT)): found
        for path in product_files(outside=STORAGE)
        if path != RAW_REFERENCE and (found := sql_offences(path))
    }
    assert offences == {}


def test_the_sql_check_would_notice_sql(tmp_path: Path) -> None:
    """Guard against a check that cannot fail: SQL as it stood in the engine before issue 8."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "def mailboxes(conn):\n"
        "    return conn.execute(\n"
        "        'SELECT mailbox_uuid FROM integrations WHERE enabled = 1'\n"
        "    ).fetchall()\n"
        "\n"
        "def sent(db, rows):\n"
        "    db.executemany('UPDATE envelopes SET sent_at = ? WHERE uuid = ?', rows)\n"
        "\n"
        "LABEL = 'Select a mailbox from the list'  # words, not SQL\n"
    )
    assert sql_offences(planted) == [
        "2: .execute(",
        "3: SQL 'SELECT mailbox_uuid FROM'",
        "7: .executemany(",
        "7: SQL 'UPDATE envelopes SET'",
    ]


def test_only_core_storage_imports_sqlite_utils() -> None:
    importers = {
        str(path.relative_to(ROOT))
        for path in product_files(outside=STORAGE)
        if any(name.split(".")[0] == "sqlite_utils" for name in imports_of(path))
    }
    assert importers == set()
    assert "sqlite_utils" in imports_of(STORAGE / "schema.py")  # the check looks where it is


def test_only_the_postgres_package_imports_psycopg() -> None:
    """A node on SQLite never loads psycopg; the rest of the code speaks to both backends
    through the same units of work."""
    postgres = STORAGE / "postgres"
    importers = {
        str(path.relative_to(ROOT))
        for path in product_files(outside=postgres)
        if any(name.split(".")[0] in ("psycopg", "psycopg_pool") for name in imports_of(path))
    }
    assert importers == set()
    assert "psycopg" in imports_of(postgres / "connection.py")  # the check looks where it is


# -- no import circles in the core ---------------------------------------------------------------


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, also inside functions and TYPE_CHECKING blocks; for
    ``from package import name`` both ``package`` and ``package.name`` (a submodule, maybe)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def core_graph() -> dict[str, set[str]]:
    modules = set(core_modules())
    graph: dict[str, set[str]] = {}
    for path in CORE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = {dep for dep in imports_of(path) if dep in modules and dep != name}
    return graph


def test_the_core_has_no_import_circle() -> None:
    """Such as the engine and its SFTP side importing each other (one under TYPE_CHECKING, one
    inside a function) before issue 8: each component gets what it needs handed in."""
    assert find_cycle(core_graph()) is None


def test_the_core_graph_sees_imports_of_every_kind() -> None:
    """Guard against a graph that misses edges: ``from package import module`` and imports
    inside functions count."""
    graph = core_graph()
    assert "core.engine.sftp_component" in graph["core.engine.engine"]
    assert "core.engine.envelope_handler" in graph["core.engine.engine"]  # from core.engine import
    assert "core.engine.engine" in graph["core.service"]  # imported inside start_engine()


def test_one_clock_tells_the_time() -> None:
    """Times come from core/clock.py only (record times pinnable for snapshots, scheduling
    times never pinned): nothing else reads the wall clock directly."""
    import re

    root = Path(__file__).resolve().parents[1]
    wall_clock = re.compile(r"\btime\.time\(\)|\bdatetime\.now\(|\bdatetime\.utcnow\(")
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for package in ("core", "tui")
        for path in sorted((root / package).rglob("*.py"))
        if path != root / "core" / "clock.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if wall_clock.search(line)
    ]
    assert offenders == []
