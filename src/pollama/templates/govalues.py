"""Go values for the template interpreter: records, truth, ``fmt`` printing and ``json.Marshal``.

Templates see plain Python data: ``dict`` is a Go ``map[string]any`` (missing keys read as nil,
ranges and JSON go in sorted key order), ``list``/``tuple`` a slice, ``str``/``int``/``float``/
``bool``/``None`` the Go basic values. Three wrappers model the Go types Ollama hands its
templates:

* :class:`GoStruct` — a struct: fixed Go field names for ``.Field`` access, a JSON shape
  (``json:"name,omitempty"`` tags) for ``json``, always true, and an unknown field is an error;
* :class:`JSONMap` / :class:`JSONList` — a map or slice whose ``String()`` is its JSON (Ollama's
  ``templateArgs``, ``templateProperties``, ``templateTools``), so ``{{ .Function.Arguments }}``
  prints ``{"city":"Paris"}``;
* :class:`OrderedJSONMap` — a map that marshals in insertion order (``ToolPropertiesMap``).

>>> go_json({"b": 1, "a": "<x>"})
'{"a":"\\\\u003cx\\\\u003e","b":1}'
>>> sprint_value([1, 2.5, "x", None, True])
'[1 2.5 x <nil> true]'
>>> sprintf("%s has %d items (%5.2f%%) %q", ["cart", 3, 12.5, "ok"])
'cart has 3 items (12.50%) "ok"'
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

__all__ = [
    "GoStruct",
    "JSONList",
    "JSONMap",
    "OrderedJSONMap",
    "go_float_json",
    "go_float_v",
    "go_json",
    "go_quote",
    "go_type_name",
    "is_true",
    "sprint",
    "sprint_value",
    "sprintf",
    "sprintln",
]

JSONField = tuple[str, str, bool]
"""One JSON tag: (json key, Go field name, omitempty)."""


class GoStruct(Mapping[str, Any]):
    """A Go struct value: named fields, a JSON layout, optionally a ``String()`` that is its JSON.

    >>> s = GoStruct("Point", {"X": 1, "Y": 0}, json=(("x", "X", False), ("y", "Y", True)))
    >>> s["X"], go_json(s)
    (1, '{"x":1}')
    """

    __slots__ = ("_fields", "json_fields", "stringer", "type_name")

    def __init__(
        self,
        type_name: str,
        fields: Mapping[str, Any],
        json: Sequence[JSONField] = (),
        stringer: bool = False,
    ) -> None:
        self.type_name = type_name
        self._fields = dict(fields)
        self.json_fields: tuple[JSONField, ...] = tuple(json) or tuple(
            (name, name, False) for name in self._fields
        )
        self.stringer = stringer

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GoStruct):
            return self.type_name == other.type_name and self._fields == other._fields
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"GoStruct({self.type_name!r}, {self._fields!r})"


class JSONMap(dict[str, Any]):
    """A Go map whose ``String()`` marshals it to JSON (sorted keys, like any Go map)."""


class OrderedJSONMap(JSONMap):
    """A JSON-printing map that keeps insertion order when marshalled."""


class JSONList(list[Any]):
    """A Go slice whose ``String()`` marshals it to JSON."""


class UnsupportedValue(ValueError):
    """``json.Marshal`` cannot encode the value (NaN, infinities, unknown Python types)."""


# --- truth -------------------------------------------------------------------------------------


def is_true(value: Any) -> bool:
    """Go template truth: false, 0, nil, and empty strings, slices and maps are false.

    >>> [is_true(v) for v in (0, 0.0, "", [], {}, None, False, "x", 1, GoStruct("T", {}))]
    [False, False, False, False, False, False, False, True, True, True]
    """
    if value is None:
        return False
    if isinstance(value, GoStruct):
        return True
    if isinstance(value, (bool, int, float, str, bytes, list, tuple, dict, Mapping)):
        return bool(value)
    return True


# --- type names (for error messages) ------------------------------------------------------------


def go_type_name(value: Any) -> str:
    """The Go type name fmt would print for ``value`` (``string``, ``int``, ``[]interface {}`` …)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, GoStruct):
        return value.type_name
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    return type(value).__name__


# --- floats ------------------------------------------------------------------------------------


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of ``abs(value)`` and the decimal point position."""
    sign_digits_exp = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(str(d) for d in sign_digits_exp.digits).lstrip("0") or "0"
    exponent = int(sign_digits_exp.exponent)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped or "0"
    return digits, len(digits) + exponent


def _positional(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _exponential(digits: str, point: int, min_exp_digits: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1
    sign = "-" if exp < 0 else "+"
    return f"{mantissa}e{sign}{abs(exp):0{min_exp_digits}d}"


def _special_float(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def go_float_v(value: float) -> str:
    """``fmt.Sprint`` of a float64 (``%v``: shortest digits, ``%e`` form below 1e-4 and from 1e6).

    >>> [go_float_v(v) for v in (1.0, 2.5, 100000.0, 1e6, 123456789.0, 0.0001, 0.00001, -0.5)]
    ['1', '2.5', '100000', '1e+06', '1.23456789e+08', '0.0001', '1e-05', '-0.5']
    """
    special = _special_float(value)
    if special is not None:
        return special
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, point = _shortest_digits(value)
    exp = point - 1
    sign = "-" if value < 0 else ""
    # strconv's shortest 'g' switches to an exponent below 1e-4 and from 1e6 up.
    if exp < -4 or exp >= 6:
        return sign + _exponential(digits, point, 2)
    return sign + _positional(digits, point)


def go_float_json(value: float) -> str:
    """``encoding/json`` float64 text: positional unless < 1e-6 or >= 1e21.

    >>> [go_float_json(v) for v in (1.0, 0.1, 1e20, 1e21, 1.5e-7)]
    ['1', '0.1', '100000000000000000000', '1e+21', '1.5e-7']
    """
    if _special_float(value) is not None:
        raise UnsupportedValue(f"json: unsupported value: {go_float_v(value)}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, point = _shortest_digits(value)
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        return sign + _exponential(digits, point, 1)
    return sign + _positional(digits, point)


# --- JSON --------------------------------------------------------------------------------------

_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _json_string(text: str) -> str:
    out = ['"']
    for ch in text:
        escaped = _JSON_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        elif "\ud800" <= ch <= "\udfff":  # lone surrogate: Go sees invalid UTF-8
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _is_empty(value: Any) -> bool:
    """Go's omitempty test: false, 0, "", nil, and empty slices and maps."""
    if value is None:
        return True
    if isinstance(value, GoStruct):
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, Mapping)):
        return not value
    return False


def _json_struct(value: GoStruct) -> str:
    parts = []
    for key, field, omitempty in value.json_fields:
        item = value[field]
        if omitempty and _is_empty(item):
            continue
        parts.append(_json_string(key) + ":" + go_json(item))
    return "{" + ",".join(parts) + "}"


def _json_map(value: Mapping[Any, Any]) -> str:
    keys = list(value) if isinstance(value, OrderedJSONMap) else sorted(value, key=str)
    parts = [_json_string(str(k)) + ":" + go_json(value[k]) for k in keys]
    return "{" + ",".join(parts) + "}"


def go_json(value: Any) -> str:
    """``json.Marshal(value)`` as Go writes it: compact, HTML characters escaped, maps sorted.

    Raises :class:`UnsupportedValue` for NaN, infinities and types JSON cannot hold.

    >>> go_json([1, 1.0, 0.5, True, None, "a&b", {"z": [], "a": {}}])
    '[1,1,0.5,true,null,"a\\\\u0026b",{"a":{},"z":[]}]'
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float_json(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, GoStruct):
        return _json_struct(value)
    if isinstance(value, Mapping):
        return _json_map(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    raise UnsupportedValue(f"json: unsupported type: {go_type_name(value)}")


# --- fmt ---------------------------------------------------------------------------------------


def _stringer(value: Any) -> str | None:
    """The ``String()`` result of the Ollama types that define one, else None."""
    if isinstance(value, (JSONMap, JSONList)) or (isinstance(value, GoStruct) and value.stringer):
        try:
            return go_json(value)
        except UnsupportedValue:
            return ""
    return None


def sprint_value(value: Any) -> str:
    """``fmt.Sprint`` of one value (``%v``).

    >>> sprint_value({"b": [1, 2], "a": "x"}), sprint_value(JSONMap({"b": 1, "a": "x"}))
    ('map[a:x b:[1 2]]', '{"a":"x","b":1}')
    """
    text = _stringer(value)
    if text is not None:
        return text
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float_v(value)
    if isinstance(value, str):
        return value
    if isinstance(value, GoStruct):
        return "{" + " ".join(sprint_value(value[k]) for k in value) + "}"
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "map[" + " ".join(f"{k}:{sprint_value(v)}" for k, v in items) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(sprint_value(v) for v in value) + "]"
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    return str(value)


def sprint(args: Sequence[Any]) -> str:
    """``fmt.Sprint``: a space between operands only when neither side is a string.

    >>> sprint(["a", 1, 2, "b"]), sprint([1, 2])
    ('a1 2b', '1 2')
    """
    out: list[str] = []
    for i, arg in enumerate(args):
        if i > 0 and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(sprint_value(arg))
    return "".join(out)


def sprintln(args: Sequence[Any]) -> str:
    """``fmt.Sprintln``: operands always separated by spaces, newline appended."""
    return " ".join(sprint_value(a) for a in args) + "\n"


def go_quote(text: str) -> str:
    """``strconv.Quote``: a double-quoted Go string literal with escapes for the unprintable.

    >>> go_quote('say "hi"\\n\\x01é')
    '"say \\\\"hi\\\\"\\\\n\\\\x01é"'
    """
    simple = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
              "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in simple:
            out.append(simple[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_MAX_WIDTH = 1_000_000  # fmt reports %!(BADWIDTH) beyond this, and so do we


class _Spec:
    """One parsed ``%`` directive."""

    __slots__ = ("flags", "precision", "verb", "width")

    def __init__(self, flags: str, width: int | None, precision: int | None, verb: str) -> None:
        self.flags = flags
        self.width = width
        self.precision = precision
        self.verb = verb


def _parse_spec(fmt: str, i: int) -> tuple[_Spec | str, int]:
    """Parse the directive after the ``%`` at ``fmt[i-1]``; return it (or an error text) and end."""
    start = i
    while i < len(fmt) and fmt[i] in "+-# 0":
        i += 1
    flags = fmt[start:i]
    width, i = _parse_int(fmt, i)
    precision: int | None = None
    if i < len(fmt) and fmt[i] == ".":
        precision, i = _parse_int(fmt, i + 1)
        precision = precision or 0
    if (width or 0) > _MAX_WIDTH or (precision or 0) > _MAX_WIDTH:
        return "%!(BADWIDTH)", min(i + 1, len(fmt))
    if i >= len(fmt):
        return "%!(NOVERB)", i
    return _Spec(flags, width, precision, fmt[i]), i + 1


def _parse_int(fmt: str, i: int) -> tuple[int | None, int]:
    start = i
    while i < len(fmt) and fmt[i].isdigit() and fmt[i].isascii():
        i += 1
    if i == start:
        return None, i
    return int(fmt[start : min(i, start + 8)]), i


def _pad(text: str, spec: _Spec, numeric: bool) -> str:
    width = spec.width or 0
    if len(text) >= width:
        return text
    if "-" in spec.flags:
        return text + " " * (width - len(text))
    if "0" in spec.flags and numeric:
        sign = text[0] if text[:1] in "+-" else ""
        return sign + "0" * (width - len(text)) + text[len(sign) :]
    return " " * (width - len(text)) + text


def _bad_verb(spec: _Spec, value: Any) -> str:
    if value is None:
        return f"%!{spec.verb}(<nil>)"
    return f"%!{spec.verb}({go_type_name(value)}={sprint_value(value)})"


def _format_int(spec: _Spec, value: int) -> str | None:
    bases = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}
    if spec.verb in bases:
        sign = "-" if value < 0 else ("+" if "+" in spec.flags else "")
        body = format(abs(value), bases[spec.verb])
        if spec.precision is not None:
            body = body.rjust(spec.precision, "0")
        return sign + body
    if spec.verb == "c":
        return chr(value) if 0 <= value <= 0x10FFFF else "\ufffd"
    if spec.verb == "q":
        return "'" + (chr(value) if 0 <= value <= 0x10FFFF else "\ufffd") + "'"
    if spec.verb == "U":
        return f"U+{value:04X}"
    return None


def _format_float(spec: _Spec, value: float) -> str | None:
    if spec.verb not in "eEfFgG":
        return None
    special = _special_float(value)
    if special is not None:
        return special if special != "+Inf" or "+" in spec.flags else "Inf"
    sign = "+" if "+" in spec.flags and value >= 0 else ""
    if spec.verb in "gG" and spec.precision is None:
        text = go_float_v(value)
        return sign + (text.upper() if spec.verb == "G" else text)
    precision = 6 if spec.precision is None else spec.precision
    text = format(value, f".{precision}{spec.verb}")
    if spec.verb in "eEgG":  # Python writes e+06 like Go; keep at least two exponent digits
        return sign + text
    return sign + text


def _format_string(spec: _Spec, value: str) -> str | None:
    if spec.verb in "sv":
        return value if spec.precision is None else value[: spec.precision]
    if spec.verb == "q":
        return go_quote(value)
    if spec.verb in "xX":
        text = value.encode("utf-8", "surrogatepass").hex()
        return text.upper() if spec.verb == "X" else text
    return None


def _format_one(spec: _Spec, value: Any) -> str:
    text: str | None
    if spec.verb == "v" or (spec.verb == "s" and not isinstance(value, (int, float, bool))):
        text = _format_string(spec, value) if isinstance(value, str) else sprint_value(value)
        if spec.verb == "s" and value is None:
            text = _bad_verb(spec, value)
    elif spec.verb == "t":
        text = ("true" if value else "false") if isinstance(value, bool) else None
    elif isinstance(value, bool):
        text = None
    elif isinstance(value, int):
        text = _format_int(spec, value)
    elif isinstance(value, float):
        text = _format_float(spec, value)
    elif isinstance(value, str):
        text = _format_string(spec, value)
    else:
        text = None
    if text is None:
        return _bad_verb(spec, value)
    return _pad(text, spec, isinstance(value, (int, float)) and not isinstance(value, bool))


def sprintf(fmt: str, args: Sequence[Any]) -> str:
    """``fmt.Sprintf`` for the common verbs: %v %s %d %q %f %e %g %t %x %X %o %b %c %U %%.

    Flags ``+ - # space 0``, width and precision work as in Go; a missing operand prints
    ``%!d(MISSING)``, a wrong type ``%!d(string=x)`` and left-over operands ``%!(EXTRA …)``.

    >>> sprintf("%-5s|%05d|%.1f|%x|%t", ["ab", -42, 3.14159, 255, True])
    'ab   |-0042|3.1|ff|true'
    >>> sprintf("%d %d", [1])
    '1 %!d(MISSING)'
    """
    out: list[str] = []
    argi = 0
    i = 0
    while i < len(fmt):
        pct = fmt.find("%", i)
        if pct < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:pct])
        if pct + 1 < len(fmt) and fmt[pct + 1] == "%":
            out.append("%")
            i = pct + 2
            continue
        spec, i = _parse_spec(fmt, pct + 1)
        if isinstance(spec, str):
            out.append(spec)
        elif argi >= len(args):
            out.append(f"%!{spec.verb}(MISSING)")
        else:
            out.append(_format_one(spec, args[argi]))
            argi += 1
    if argi < len(args):
        extra = ", ".join(f"{go_type_name(a)}={sprint_value(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
