"""What a sweep runs: a notebook, or a module's research function, read once.

The sweep ships the strategy's text with every run instead of a path, so a worker on another
machine needs no copy, and editing the notebook while a sweep runs cannot mix two versions in
one results table. The hash that keys finished runs covers what executes: a notebook's cell
types and sources (not its outputs, so re-running it in JupyterLab does not invalidate a
sweep), or a module's exact text plus the function's name.

A module strategy is `file.py[:function]` (default function `research`): a plain function
taking the swept parameters as keyword arguments, trading through SimBroker into
`workspace().simulation_database` (or `quantstrip.db_handler`, pointed there too). Each run
calls it in a kernel through a two-cell notebook, so both kinds run, fail, time out and cancel
the same way, and both leave an output notebook to read.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nbformat

from quantstrip.errors import ValidationError

DEFAULT_FUNCTION = "research"
MODULE_NAME = "quantstrip_research_strategy"


@dataclass(frozen=True)
class StrategySource:
    path: Path
    kind: Literal["notebook", "module"]
    text: str
    digest: str
    declared: dict[str, Any]  # parameter -> literal default (None when not a literal)
    accepts_any: bool = False  # a module function with **kwargs
    function: str | None = None

    @property
    def name(self) -> str:
        return self.path.stem

    def check(self, names: list[str]) -> None:
        """Every swept parameter must be one the strategy declares (a typo would otherwise
        run the whole grid with the default value)."""
        if self.accepts_any:
            return
        unknown = [n for n in names if n not in self.declared]
        if unknown:
            where = (
                "the notebook's parameters cell"
                if self.kind == "notebook"
                else f"{self.function}()'s arguments"
            )
            raise ValidationError(
                unknown[0],
                f"not declared in {where} (declared: {', '.join(self.declared) or 'none'})",
            )

    def notebook(self, module_path: Path | None = None, names: list[str] | None = None) -> Any:
        """The notebook a run executes (for a module: the wrapper that calls its function)."""
        if self.kind == "notebook":
            return nbformat.reads(self.text, as_version=4)
        assert module_path is not None
        declared = "\n".join(f"{n} = {self.declared.get(n)!r}" for n in names or [])
        call = ", ".join(f"{n}={n}" for n in names or [])
        parameters = nbformat.v4.new_code_cell(declared or "# no parameters")
        parameters.metadata["tags"] = ["parameters"]
        location = f"{MODULE_NAME!r}, {str(module_path)!r}"
        body = nbformat.v4.new_code_cell(
            "import importlib.util, sys\n"
            f"_spec = importlib.util.spec_from_file_location({location})\n"
            "_module = importlib.util.module_from_spec(_spec)\n"
            f"sys.modules[{MODULE_NAME!r}] = _module\n"
            "_spec.loader.exec_module(_module)\n"
            f"_module.{self.function}({call})"
        )
        return nbformat.v4.new_notebook(
            cells=[parameters, body],
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
        )


def _literal(node: ast.AST | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def notebook_parameters(nb: Any) -> dict[str, Any]:
    """Names assigned in the cell tagged `parameters`, with their literal defaults."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            declared: dict[str, Any] = {}
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            declared[target.id] = _literal(node.value)
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    declared[node.target.id] = _literal(node.value)
            return declared
    return {}


def _load_notebook(path: Path) -> StrategySource:
    text = path.read_text()
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:
        raise ValidationError("source", f"{path} is not a readable notebook: {exc}") from None
    declared = notebook_parameters(nb)
    if not declared:
        raise ValidationError(
            "source",
            f"{path.name} has no cell tagged 'parameters': papermill injects each run's values "
            "after it (tag the cell that sets the defaults)",
        )
    kernel = nb.metadata.get("kernelspec", {}).get("name", "")
    executed = [(c.cell_type, c.source) for c in nb.cells if c.cell_type != "markdown"]
    digest = hashlib.sha256(json.dumps([kernel, executed]).encode()).hexdigest()
    return StrategySource(path, "notebook", text, digest, declared)


def _load_module(path: Path, function: str) -> StrategySource:
    text = path.read_text()
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ValidationError("source", f"{path.name} line {exc.lineno}: {exc.msg}") from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
            declared = {a.arg: _literal(d) for a, d in zip(positional, defaults, strict=True)}
            declared.update(
                {a.arg: _literal(d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)}
            )
            digest = hashlib.sha256(f"{function}\n{text}".encode()).hexdigest()
            return StrategySource(
                path, "module", text, digest, declared, args.kwarg is not None, function
            )
    raise ValidationError(
        "source", f"{path.name} defines no top-level function {function}() to call for each run"
    )


def load_source(spec: str | Path) -> StrategySource:
    """`notebook.ipynb` or `module.py[:function]`."""
    text = str(spec)
    function = DEFAULT_FUNCTION
    if not text.endswith(".ipynb") and ":" in Path(text).name:
        text, _, function = text.rpartition(":")
    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise ValidationError("source", f"{spec} does not exist")
    if path.suffix.lower() == ".ipynb":
        return _load_notebook(path)
    if path.suffix.lower() == ".py":
        return _load_module(path, function)
    raise ValidationError("source", "must be a notebook (.ipynb) or a module (.py[:function])")
