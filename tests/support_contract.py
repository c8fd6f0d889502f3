"""Checks of the configuration contract (docker-compose.yaml against what the code reads), as functions.

Each ``*_problems`` function takes a compose document (as ``yaml.safe_load`` reads it: anchors and
merge keys resolved, ``${...}`` left as written) and returns a list of problems, so the tests run
them on the real file and on defective copies of it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from modelgate_dev.production import contract

REPO = Path(__file__).resolve().parents[1]
SECRET_DUMMY = "dummy"
LOCAL_ONLY = re.compile(r"127\.0\.0\.1|localhost|(^|/)\.local(/|$)|^sqlite:")
REPO_DATA_DIR = re.compile(r"(?:parents\[\d\]|REPO)\s*/\s*\"([A-Za-z_]+)\"")


# ---------------------------------------------------------------------- what the code reads


def _load(dotted: str) -> Any:
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def settings_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Environment variable → field name, for every field of a settings class."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    out: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            out.update({str(c): name for c in alias.choices})
        else:
            out[f"{prefix}{name}".upper()] = name
    return out


@cache
def airflow_options() -> frozenset[str]:
    """Every ``AIRFLOW__SECTION__KEY`` Airflow (core and installed providers) declares, from a clean process."""
    code = (
        "import json; from airflow.configuration import conf; d = conf.configuration_description; "
        "print(json.dumps([f'AIRFLOW__{s.upper()}__{o.upper()}' for s in d for o in d[s]['options']]))"
    )
    env = {"PATH": os.environ.get("PATH", ""), "AIRFLOW_HOME": str(REPO / ".local" / "contract-airflow")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return frozenset(json.loads(res.stdout.strip().splitlines()[-1]))


def hook_connections() -> set[str]:
    """``AIRFLOW_CONN_<ID>`` of each hook's default connection id (``CONN_ID`` in ``plugins/*_hook.py``)."""
    names = set()
    for path in sorted((REPO / "plugins").glob("*_hook.py")):
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "CONN_ID" for t in node.targets)
                and isinstance(node.value, ast.Constant)
            ):
                names.add(f"AIRFLOW_CONN_{str(node.value.value).upper()}")
    return names


def declared(component: str) -> set[str]:
    """Every variable a component's programs read."""
    if component in contract.FOREIGN:
        return set(contract.FOREIGN[component])
    names: set[str] = set()
    for dotted in contract.COMPONENTS[component]:
        obj = _load(dotted)
        if isinstance(obj, type) and issubclass(obj, BaseSettings):
            names |= set(settings_names(obj))
        else:  # a click command: its options' envvar
            names |= {p.envvar for p in obj.params if isinstance(getattr(p, "envvar", None), str)}
    if component == "airflow":
        names |= airflow_options() | hook_connections() | contract.FOREIGN["python"]
    return names


def component_of(service: str) -> str | None:
    """The component (or foreign program) reading a compose service's environment."""
    if service in contract.SERVICES:
        return contract.SERVICES[service].component
    if service.startswith("airflow-"):
        return "airflow"
    return {"postgres-init": "libpq"}.get(service)


# ---------------------------------------------------------------------- compose helpers


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def command_variables(service: dict[str, Any]) -> set[str]:
    """Variables a service's own shell command reads (``$${NAME}`` in compose)."""
    return set(re.findall(r"\$\$\{([A-Za-z_][A-Za-z0-9_]*)\}", " ".join(command_of(service))))


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for v in service.get("volumes") or []:
        source, target = (v.split(":")[:2]) if isinstance(v, str) else (v["source"], v["target"])
        out.append((source, target))
    return out


def with_dummies(value: str) -> str:
    """``${VAR:-default}`` → default, ``${VAR:?msg}`` → ``dummy`` (what compose gives with secrets set)."""
    value = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}", SECRET_DUMMY, value)


# ---------------------------------------------------------------------- the checks


def rendering_problems(doc: dict[str, Any]) -> list[str]:
    """Services of the contract whose compose environment is not the contract's compose rendering."""
    problems = []
    for name in contract.SERVICES:
        service = doc["services"].get(name)
        if service is None:
            problems.append(f"{name}: missing from compose")
            continue
        want, have = contract.render(name, contract.COMPOSE), env_of(service)
        for key in sorted(set(want) | set(have)):
            if want.get(key) != have.get(key):
                problems.append(f"{name}.{key}: compose {have.get(key)!r}, contract {want.get(key)!r}")
    return problems


def unread_variable_problems(doc: dict[str, Any]) -> list[str]:
    """Variables compose sets that no program of the service reads."""
    problems = []
    for name, service in doc["services"].items():
        component = component_of(name)
        known = declared(component) if component else set()
        if name in contract.SERVICES:
            for extra in contract.SERVICES[name].also_reads:
                known |= contract.FOREIGN[extra]
        known |= command_variables(service)
        problems += [f"{name}.{key}: no code reads it" for key in sorted(env_of(service)) if key not in known]
    return problems


def unusable_default_problems(doc: dict[str, Any]) -> list[str]:
    """Settings left at a default that only works on one host (loopback URL, ``.local`` path, SQLite).

    The service's environment (secrets as dummies) and its ``--flag value`` arguments are applied,
    then every field is read back, through ``resolved_<field>()`` where the class has one.
    """
    problems = []
    for name, service in doc["services"].items():
        component = component_of(name)
        if component not in contract.COMPONENTS or component == "mlflow":
            continue
        env = {k: with_dummies(v) for k, v in env_of(service).items()}
        cmd = command_of(service)
        prefix = "ROUTER_" if component == "router" else ""
        for flag, value in zip(cmd, [*cmd[1:], ""], strict=True):
            if prefix and flag.startswith("--"):
                env[f"{prefix}{flag[2:].replace('-', '_').upper()}"] = value
        for dotted in contract.COMPONENTS[component]:
            cls = _load(dotted)
            saved = dict(os.environ)
            try:
                for key in [k for k in os.environ if k.startswith(("MODELGATE_", "ROUTER_", "MLFLOW_"))]:
                    del os.environ[key]
                os.environ.update(env)
                settings = cls()
            finally:
                os.environ.clear()
                os.environ.update(saved)
            for field in cls.model_fields:
                resolver = getattr(settings, f"resolved_{field}", None)
                value = resolver() if callable(resolver) else getattr(settings, field)
                if value is not None and LOCAL_ONLY.search(str(value)):
                    problems.append(f"{name}: {cls.__name__}.{field} = {value!s} (set it)")
    return problems


def _imports(path: Path, module_level: bool = False) -> set[str]:
    """Absolute module names imported by a file (any depth, or outside functions only), except under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
        if module_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def module_file(name: str, root: Path = REPO) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def closure(start: list[Path], root: Path = REPO, module_level: bool = False) -> tuple[set[Path], set[str]]:
    """First-party files reachable by imports from ``start`` and the third-party top-level modules.

    With ``module_level`` first-party imports inside functions are followed in the ``start`` files only
    (an entrypoint imports its job lazily; importing the modules it reaches needs their module-level
    imports); third-party modules are still collected from every import of the files reached.
    """
    files: set[Path] = set()
    third: set[str] = set()
    todo = list(start)
    while todo:
        path = todo.pop()
        if path in files:
            continue
        files.add(path)
        followed = _imports(path, module_level and path not in start)
        for name in _imports(path):
            parts = name.split(".")
            if not (root / parts[0]).exists() and module_file(parts[0], root) is None:
                if parts[0] not in sys.stdlib_module_names and parts[0] != "__future__":
                    third.add(parts[0])
                continue
            if name not in followed:
                continue
            for i in range(1, len(parts) + 1):  # the module and every package above it
                found = module_file(".".join(parts[:i]), root)
                if found is not None:
                    todo.append(found)
    return files, third


def repo_data_dirs(files: set[Path]) -> set[str]:
    """Top-level repository folders the code resolves relative to the checkout (``parents[2] / "policies"``)."""
    found = set()
    for path in files:
        found |= set(REPO_DATA_DIR.findall(path.read_text(encoding="utf-8")))
    return {d for d in found if (REPO / d).is_dir()}


def airflow_code_dirs() -> set[str]:
    """Top-level folders the Airflow components need under their code root: DAGs, plugins, packages, data."""
    start = [*REPO.joinpath("dags").glob("*.py"), *REPO.joinpath("plugins").rglob("*.py")]
    files, _ = closure(start)
    packages = {p.relative_to(REPO).parts[0] for p in files}
    return packages | repo_data_dirs(files)


def mount_problems(doc: dict[str, Any]) -> list[str]:
    """Mounted container paths no program of the service uses, and code folders Airflow needs but lacks."""
    problems = []
    needed = airflow_code_dirs()
    code_root = contract.COMPOSE.code
    for name, service in doc["services"].items():
        used = [*env_of(service).values(), *(a.partition("=")[2] or a for a in command_of(service))]
        image_paths = contract.IMAGE_PATHS.get(str(service.get("image", "")).split(":")[0], ())
        targets = set()
        for _, target in mounts(service):
            targets.add(target)
            in_code = target.startswith(code_root + "/") and target[len(code_root) + 1 :] in needed
            if not (in_code or target in image_paths or any(u == target or u.startswith(target + "/") for u in used)):
                problems.append(f"{name}: {target} is mounted but nothing reads it")
        if component_of(name) == "airflow":
            missing = sorted(d for d in needed if f"{code_root}/{d}" not in targets)
            problems += [f"{name}: {code_root}/{d} is needed by the code but not mounted" for d in missing]
    return problems


def missing_file_problems(doc: dict[str, Any]) -> list[str]:
    """Repository files and folders compose names (mount sources, build contexts, Dockerfiles) that do not exist."""
    problems = []
    for name, service in doc["services"].items():
        for source, _ in mounts(service):
            if source.startswith((".", "/")) and not (REPO / source).exists():
                problems.append(f"{name}: mount source {source} does not exist")
        build = service.get("build")
        if build:
            context = REPO / build.get("context", ".")
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                problems.append(f"{name}: Dockerfile {build.get('dockerfile')} does not exist")
    return problems


def dockerfile_copies(dockerfile: Path) -> list[str]:
    """Sources of the ``COPY`` instructions (build context: the repository root)."""
    sources = []
    for line in dockerfile.read_text().replace("\\\n", " ").splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def distribution_of(module: str) -> set[str]:
    """Normalised distribution names providing a top-level module (``-gpu`` builds count as the CPU name)."""
    dists = importlib.metadata.packages_distributions().get(module, [])
    return {re.sub(r"[-_.]+", "-", d).lower().removesuffix("-gpu") for d in dists}


def pins(path: Path) -> dict[str, str]:
    """``name → version`` of the ``name==version`` lines of a requirements file (other specifiers: ``""``)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(==\s*([^\s;]+))?", line)
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(4) or ""
    return out
