"""Suite files: `load_suite` for shipped names or paths, and the validation of every cell.

A suite is a TOML file with a `[suite]` table and `[[cell]]` tables; each cell's `kind` names a
module of `scalegym.suites.cells`, whose rules and checks judge its fields. The `[suite]` table's
`imports` names the modules that register the suite's own envs; they are imported before any env
id is looked up. Every problem found is reported at once, each naming the file, the table and the
field.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from scalegym.suites.cells import KINDS
from scalegym.suites.schema import (
    COMMON_RULES,
    INHERIT,
    NAME_PATTERN,
    SUITE_RULES,
    Cell,
    EnvCache,
    SuiteError,
    check_table,
    where,
)


@dataclass(frozen=True)
class SuiteSpec:
    """A validated suite: its cells in file order and the hash of the file they came from."""

    name: str
    description: str
    path: str
    sha256: str
    seeds: int
    seed: int
    cells: tuple[Cell, ...]
    source: bytes = field(repr=False, compare=False)  # the file's bytes, copied into each run
    # The envs validation built, each (id, params) once; the local runner runs these objects.
    envs: EnvCache = field(default_factory=EnvCache, repr=False, compare=False)
    imports: tuple[str, ...] = ()  # modules imported first: they register the suite's own envs


def shipped_suites() -> list[str]:
    """Names of the suites that ship with scalegym (`scalegym/suites/*.toml`)."""
    folder = resources.files("scalegym.suites")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_suite(name_or_path: str | Path, *, check_envs: bool = True) -> SuiteSpec:
    """Load and validate a shipped suite by name (`smoke`) or a suite file by path.

    Raises `SuiteError` listing every problem, each naming the file, the table and the field.
    `check_envs` also builds every cell's env with its `env_params` (cheap: no compilation).
    """
    text = str(name_or_path)
    path_like = isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text
    if path_like or "\\" in text or (text not in shipped_suites() and Path(text).is_file()):
        path = Path(name_or_path)
        if not path.is_file():
            raise SuiteError([f"{path}: no such suite file"])
        return parse_suite(path.read_bytes(), str(path), check_envs=check_envs)
    if text not in shipped_suites():
        shipped = ", ".join(shipped_suites())
        raise SuiteError(
            [f"unknown suite {text!r}; shipped suites: {shipped}; or give a path to a .toml file"]
        )
    resource = resources.files("scalegym.suites") / f"{text}.toml"
    return parse_suite(resource.read_bytes(), str(resource), check_envs=check_envs)


def parse_suite(
    source: bytes, path: str, *, check_envs: bool = True, envs: EnvCache | None = None
) -> SuiteSpec:
    """Validate the bytes of a suite file; `path` is only used in messages and the manifest."""
    try:
        data = tomllib.loads(source.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise SuiteError([f"{path}: not valid TOML: {err}"]) from None
    envs = envs if envs is not None else EnvCache()
    errors: list[str] = []
    for key in sorted(set(data) - {"suite", "cell"}):
        errors.append(f'{path}: top level: unknown table "{key}"; allowed: suite, cell')
    suite_table = data.get("suite")
    if not isinstance(suite_table, dict):
        errors.append(f'{path}: [suite]: missing table; it needs at least name = "..."')
        suite_table = {}
    suite = check_table(suite_table, SUITE_RULES, f"{path}: [suite]", errors)
    if "name" in suite and not NAME_PATTERN.match(suite["name"]):
        errors.append(
            f'{path}: [suite]: field "name": {suite["name"]!r} must match [A-Za-z0-9_.-]+'
        )
    errors.extend(import_problems(suite.get("imports", ()), path))
    included, digest = _included_cells(suite, path, errors, check_envs, envs)
    raw_cells = data.get("cell", [])
    if not isinstance(raw_cells, list) or not (raw_cells or included):
        errors.append(f"{path}: no [[cell]] tables; a suite needs at least one cell")
        raw_cells = []
    cells: list[Cell] = list(included)
    first_use: dict[str, int] = {cell.name: -1 for cell in included}
    for index, table in enumerate(raw_cells):
        cell = _check_cell(table, index, suite, path, errors, first_use)
        if cell is not None:
            cells.append(cell)
    for kind in KINDS.values():
        errors.extend(kind.suite_problems(cells, path))
    if check_envs:  # also when other cells had problems: one pass reports every error found
        for cell in cells:
            for problem in cell.env_problems(f"{path}: {where(cell.index, cell.name)}", envs):
                errors.append(problem + (UNKNOWN_ID_HINT if "unknown env id" in problem else ""))
    if errors:
        raise SuiteError(errors)
    return SuiteSpec(
        name=suite["name"],
        description=suite["description"],
        path=path,
        sha256=hashlib.sha256(source + digest).hexdigest(),  # included suites count too
        seeds=suite["seeds"],
        seed=suite["seed"],
        cells=tuple(cells),
        imports=suite["imports"],
        source=source,
        envs=envs,
    )


UNKNOWN_ID_HINT = (
    '; an env of your own? name the module that registers it in [suite]: imports = ["my_envs"] '
    "(run from the folder that holds it), or pass --import MODULE"
)


def import_problems(modules: tuple[str, ...], path: str) -> list[str]:
    """Import each module of the [suite] table's `imports`; one message per one that fails."""
    from scalegym.core.registry import MODULE_PATTERN, import_env_module

    at = f'{path}: [suite]: field "imports"'
    problems = []
    for module in modules:
        if not MODULE_PATTERN.match(module):
            problems.append(
                f'{at}: "{module}" is not a module name; name the module (my_envs for '
                "my_envs.py) and run from the folder that holds it"
            )
            continue
        try:
            import_env_module(module)
        except ImportError as err:
            problems.append(f"{at}: cannot import {module} ({err})")
    return problems


def _included_cells(
    suite: dict[str, Any], path: str, errors: list[str], check_envs: bool, envs: EnvCache
) -> tuple[list[Cell], bytes]:
    """The cells of the shipped suites `include`d, renamed "<suite>.<cell>", and the included
    files' bytes for the hash."""
    cells: list[Cell] = []
    digest = b""
    for name in suite.get("include", ()):
        if name not in shipped_suites() or name == suite.get("name"):
            allowed = ", ".join(s for s in shipped_suites() if s != suite.get("name"))
            errors.append(
                f'{path}: [suite]: field "include": {name!r} is not a shipped suite it can '
                f"include; allowed: {allowed}"
            )
            continue
        resource = resources.files("scalegym.suites") / f"{name}.toml"
        try:
            spec = parse_suite(resource.read_bytes(), str(resource), check_envs=False, envs=envs)
        except SuiteError as err:
            errors.extend(err.errors)
            continue
        digest += spec.source
        cells += [cell.included_from(name) for cell in spec.cells]
    return cells, digest


def _check_cell(
    table: Any,
    index: int,
    suite: dict[str, Any],
    path: str,
    errors: list[str],
    first_use: dict[str, int],
) -> Cell | None:
    """The cell of one [[cell]] table, or None when its fields cannot make one.

    Problems go to `errors`. A cell whose fields all parse is returned even when a value is out
    of range (threshold, agent_params), so that its env is still checked in the same pass.
    """
    name = table.get("name") if isinstance(table, dict) else None
    at = f"{path}: {where(index, name if isinstance(name, str) else None)}"
    if not isinstance(table, dict):
        errors.append(f"{at}: expected a table, got {type(table).__name__}")
        return None
    before = len(errors)
    if isinstance(name, str):
        if not NAME_PATTERN.match(name):
            errors.append(f'{at}: field "name": {name!r} must match [A-Za-z0-9_.-]+')
        elif name in first_use:
            errors.append(
                f'{at}: field "name": "{name}" is already used by cell[{first_use[name]}]'
            )
        else:
            first_use[name] = index
    kind = table.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        # Without a known kind the other fields cannot be judged, so report the kind alone.
        allowed = ", ".join(KINDS)
        problem = f'unknown kind "{kind}"' if isinstance(kind, str) else f"got {kind!r}"
        if "kind" not in table:
            errors.append(f'{at}: missing field "kind"; allowed: {allowed}')
        else:
            errors.append(f'{at}: field "kind": {problem}; allowed: {allowed}')
        return None
    cls = KINDS[kind]
    values = check_table(table, {**COMMON_RULES, **cls.rules}, at, errors)
    if len(errors) > before:
        return None
    for key in cls.rules:
        if values[key] is INHERIT:
            values[key] = suite.get(key, SUITE_RULES[key].default)
    errors.extend(cls.problems(values, at))
    values.pop("kind")
    return cls(index=index, **values)
