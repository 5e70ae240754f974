"""A checker of JSON values against the Bot API as data (``../shared/telegram-bot-api/api.json``).

``ApiSpec.errors(value, "Message")`` lists every way ``value`` departs from the documented
type: a required field missing, a field the type does not have, a value of the wrong type
(``Integer``, ``String``, ``Boolean``, ``Float``, ``Array of X``, an object type), a union
(``MessageOrigin``, ``ChatMember``, ``MaybeInaccessibleMessage`` …) that matches none of its
subtypes, and the constants the documentation states (``always "hidden_user"``, ``must be
chat``, ``Always 0``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

API_JSON = Path(__file__).parents[3] / ".." / "shared" / "telegram-bot-api" / "api.json"

_ALWAYS_STRING = re.compile(r'always "([^"]+)"')
_MUST_BE = re.compile(r"must be ([a-z_]+)$")
_ALWAYS_INT = re.compile(r"^Always (\d+)\.")


class ApiSpec:
    def __init__(self, data: dict[str, Any]) -> None:
        self.types: dict[str, Any] = data["types"]
        self.methods: dict[str, Any] = data["methods"]
        self.version: str = data.get("version", "")

    @classmethod
    def load(cls, path: Path = API_JSON) -> ApiSpec:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    # ------------------------------------------------------------------------- checking

    def errors(self, value: Any, type_expr: str, path: str = "$") -> list[str]:
        if type_expr.startswith("Array of "):
            if not isinstance(value, list):
                return [f"{path}: expected {type_expr}, got {type(value).__name__}"]
            inner = type_expr.removeprefix("Array of ")
            found: list[str] = []
            for i, item in enumerate(value):
                found += self.errors(item, inner, f"{path}[{i}]")
            return found
        if type_expr == "Integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
            return [] if ok else [f"{path}: expected Integer, got {value!r}"]
        if type_expr == "Float":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return [] if ok else [f"{path}: expected Float, got {value!r}"]
        if type_expr == "String":
            return [] if isinstance(value, str) else [f"{path}: expected String, got {value!r}"]
        if type_expr in ("Boolean", "True"):
            ok = isinstance(value, bool) and (value or type_expr == "Boolean")
            return [] if ok else [f"{path}: expected {type_expr}, got {value!r}"]
        spec = self.types.get(type_expr)
        if spec is None:
            return [f"{path}: unknown type {type_expr} in api.json"]
        if "subtypes" in spec:
            return self._union_errors(value, type_expr, spec["subtypes"], path)
        return self._object_errors(value, type_expr, spec, path)

    def errors_any(self, value: Any, type_exprs: list[str], path: str = "$") -> list[str]:
        """Errors of ``value`` against the first matching alternative (none if one fits)."""
        attempts = [self.errors(value, t, path) for t in type_exprs]
        if any(not a for a in attempts):
            return []
        return min(attempts, key=len)

    def _union_errors(self, value: Any, name: str, subtypes: list[str], path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected {name} (an object), got {value!r}"]
        attempts: list[tuple[bool, list[str]]] = []
        for sub in subtypes:
            found = self.errors(value, sub, path)
            if not found:
                return []
            attempts.append((self._constants_match(value, sub), found))
        matching = [found for constants_ok, found in attempts if constants_ok]
        if len(matching) == 1:
            return matching[0]
        return [f"{path}: matches no subtype of {name} ({', '.join(subtypes)})"]

    def _constants(self, type_name: str) -> dict[str, Any]:
        constants: dict[str, Any] = {}
        for f in self.types[type_name].get("fields", []):
            desc = f["description"]
            if (m := _ALWAYS_STRING.search(desc)) or (m := _MUST_BE.search(desc)):
                constants[f["name"]] = m.group(1)
            elif m := _ALWAYS_INT.search(desc):
                constants[f["name"]] = int(m.group(1))
        return constants

    def _constants_match(self, value: dict[str, Any], type_name: str) -> bool:
        return all(value.get(k) == v for k, v in self._constants(type_name).items())

    def _object_errors(self, value: Any, name: str, spec: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected {name} (an object), got {value!r}"]
        fields = {f["name"]: f for f in spec.get("fields", [])}
        found: list[str] = []
        for key in value:
            if key not in fields:
                found.append(f"{path}.{key}: {name} has no field {key!r}")
        for key, f in fields.items():
            if key not in value:
                if f["required"]:
                    found.append(f"{path}: {name} misses the required field {key!r}")
                continue
            found += self.errors_any(value[key], f["types"], f"{path}.{key}")
        for key, constant in self._constants(name).items():
            if key in value and value[key] != constant:
                found.append(
                    f"{path}.{key}: {name}.{key} is always {constant!r}, got {value[key]!r}"
                )
        if name == "Message" and isinstance(value.get("date"), int) and value["date"] <= 0:
            found.append(f"{path}.date: a Message's date is always a positive number")
        return found
