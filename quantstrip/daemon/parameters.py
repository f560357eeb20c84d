"""Notebook parameters checked against the notebook's own parameters cell before a run.

papermill injects whatever it is given: a `lookback = "twenty"` from client.toml ran and was
recorded a success, and a misspelt name was silently ignored. The cell tagged `parameters` is
the notebook's declaration, read with `ast` (no kernel, no papermill):

```python
lookback: int = 20          # range: 5..250
threshold = 0.5             # min: 0, max: 1
symbol = "SPY"
```

The type is the annotation (int, float, str, bool, list, dict) or, without one, the type of the
default; a `None` default accepts anything. An int is accepted where a float is declared, a bool
never stands for a number. A range is declared in the line's comment (`range: lo..hi`,
`min: lo`, `max: hi`, or `lo <= name <= hi`). A parameter the cell does not declare is refused.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PARAMETERS_TAG = "parameters"
TYPES: dict[str, type] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "dict": dict,
}
NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
RANGE = re.compile(rf"range\s*[:=]?\s*({NUMBER})\s*\.\.\s*({NUMBER})")
MIN = re.compile(rf"\bmin\s*[:=]\s*({NUMBER})")
MAX = re.compile(rf"\bmax\s*[:=]\s*({NUMBER})")
CHAINED = re.compile(rf"({NUMBER})\s*<=\s*\w+\s*<=\s*({NUMBER})")


class ParameterError(ValueError):
    """Parameters that do not match the notebook's parameters cell; the message names each."""


@dataclass(frozen=True)
class Declared:
    name: str
    type: type | None  # None: any value
    minimum: float | None = None
    maximum: float | None = None


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _comments(source: str) -> dict[int, str]:
    """Comment text by line number."""
    out: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                out[token.start[0]] = token.string
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def _bounds(comment: str) -> tuple[float | None, float | None]:
    for pattern in (RANGE, CHAINED):
        match = pattern.search(comment)
        if match:
            return _number(match.group(1)), _number(match.group(2))
    low, high = MIN.search(comment), MAX.search(comment)
    return (
        _number(low.group(1)) if low else None,
        _number(high.group(1)) if high else None,
    )


def _declared_type(annotation: ast.expr | None, default: ast.expr | None) -> type | None:
    if isinstance(annotation, ast.Name) and annotation.id in TYPES:
        return TYPES[annotation.id]
    if annotation is not None or default is None:
        return None  # an annotation we do not check (Optional[...], a class): any value
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError, TypeError):
        return None
    return None if value is None else type(value) if type(value) in TYPES.values() else None


def parse_cell(source: str) -> dict[str, Declared]:
    tree = ast.parse(source)
    comments = _comments(source)
    out: dict[str, Declared] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, annotation, default = node.target.id, node.annotation, node.value
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            name, annotation, default = node.targets[0].id, None, node.value
        else:
            continue
        low, high = _bounds(comments.get(node.lineno, ""))
        out[name] = Declared(name, _declared_type(annotation, default), low, high)
    return out


def declared(notebook: Path) -> dict[str, Declared] | None:
    """The parameters the notebook declares; None when it has no cell tagged 'parameters'."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            return parse_cell("".join(source) if isinstance(source, list) else source)
    return None


def _type_ok(expected: type, value: Any) -> bool:
    if isinstance(value, bool) and expected is not bool:
        return False
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def problems(
    cell: dict[str, Declared] | None, values: dict[str, Any], given: set[str]
) -> list[str]:
    """What is wrong with `values`; `given` are the names the client set (the daemon's own,
    such as run_id, need not be declared)."""
    if cell is None:
        return [f"{n}: the notebook has no cell tagged 'parameters'" for n in sorted(given)]
    out = []
    for name, value in values.items():
        spec = cell.get(name)
        if spec is None:
            if name in given:
                out.append(f"{name}: not declared in the parameters cell")
            continue
        if spec.type is not None and not _type_ok(spec.type, value):
            out.append(
                f"{name}: expected {spec.type.__name__}, got {type(value).__name__} {value!r}"
            )
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            if spec.minimum is not None and value < spec.minimum:
                out.append(f"{name}: {value!r} is below the minimum {spec.minimum!r}")
            if spec.maximum is not None and value > spec.maximum:
                out.append(f"{name}: {value!r} is above the maximum {spec.maximum!r}")
    return out


def check(notebook: Path, values: dict[str, Any], given: set[str]) -> None:
    """Raise ParameterError naming every parameter that does not match the notebook."""
    try:
        cell = declared(notebook)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ParameterError(f"cannot read the parameters cell of {notebook.name}: {exc}") from None
    found = problems(cell, values, given)
    if found:
        raise ParameterError("parameters: " + "; ".join(found))
