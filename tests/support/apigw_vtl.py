"""API Gateway's request and response handling, run offline: mapping templates through a Velocity
engine, gateway responses and access-log formats by plain substitution.

moto stores API Gateway templates but runs none of them, so this module stands in for what API
Gateway does with them, written to AWS's documentation (API Gateway developer guide):

- "Variables for data transformations for API Gateway" (the ``$context``, ``$input`` and ``$util``
  reference), https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html:
  ``$input.body`` is the raw payload as a string; ``$input.json(x)`` evaluates a JSONPath expression
  and returns the result as a JSON string; ``$input.path(x)`` returns the result as an object that
  VTL can work on natively (``$input.path('$.pets').size()``); ``$util.escapeJavaScript()`` escapes
  with JavaScript string rules and turns ``'`` into ``\\'``; ``$util.parseJson()`` turns stringified
  JSON into an object. ``$context.error.messageString`` is "the quoted value of
  $context.error.message", and ``$context.error.message`` can only be used by simple substitution in a
  gateway response and in access logging.
- "Use a mapping template to override an API's request and response parameters and status codes",
  https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-override-request-response-parameters.html:
  ``$context.responseOverride.status`` and ``$context.responseOverride.header.NAME``; "Overrides are
  final": a second override of the same parameter is an error (a 5XX), so :class:`ResponseOverride`
  raises.
- "x-amazon-apigateway-gateway-responses.responseTemplates object",
  https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-gateway-responses.responseTemplates.html:
  a gateway response's template "isn't processed by the Velocity Template Language (VTL) engine"; it
  supports simple variable substitution only (:func:`substitute`).
- "x-amazon-apigateway-integration.responses object",
  https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-integration-responses.html,
  and the IntegrationResponse ``selectionPattern`` reference: for an AWS (non-Lambda) integration the
  selection pattern is matched against the back end's HTTP status code; the response without a
  pattern is the default (:func:`select_integration_response`).
- "Variables for access logging for API Gateway",
  https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-variables-for-access-logging.html.

Where the documentation is silent the stand-ins say what they assume: ``$context.error.messageString``
is the message as a JSON string literal (API Gateway's own default gateway responses are
``{"message":$context.error.messageString}``, which is only JSON that way); an access-log variable
without a value is written ``-`` (and ``messageString`` without an error ``"-"``); an empty payload
reads as ``{}``. Behaviour the documentation leaves open and the templates here must not rely on
(JSONPath on a payload that is not JSON, ``$input.json`` of a missing path) raises
:class:`UndocumentedBehaviour` instead of guessing.

The Velocity engine is ``airspeed-ext`` (LocalStack's, modelled on AWS's), with Velocity's rule for
null in conditions put back while a template renders (:func:`velocity_null_rules`). Values ``$input.path`` and
``$util.parseJson`` return are lists and numbers, objects are :class:`JavaMap` and strings
:class:`JavaString`, which offer the ``java.util.Map`` and ``java.lang.String`` methods the templates
and tests call, and only those.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import airspeed
from airspeed import operators

JSON = "application/json"
_PATH_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\['([^']*)'\]|\[(\d+)\]")
_CONTEXT_VARIABLE = re.compile(r"\$(context(?:\.[A-Za-z0-9_]+)+)")
_MESSAGE_STRING = "context.error.messageString"
_MESSAGE = "context.error.message"


class UndocumentedBehaviour(LookupError):
    """A template asked for something whose result AWS does not document: the template must not depend on it."""


class OverrideError(RuntimeError):
    """A response parameter overridden twice in one template: API Gateway answers 5XX."""


class JavaString:
    """A string as VTL sees one: of ``java.lang.String``, the methods the templates and tests call, and nothing of
    Python's."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return str(other) == self.text if isinstance(other, (str, JavaString)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.text)

    def matches(self, regex: str) -> bool:
        """Java's ``String.matches``: the whole string matches (the patterns used are Java- and Python-compatible)."""
        return re.fullmatch(str(regex), self.text) is not None

    def replaceAll(self, regex: str, replacement: str) -> JavaString:
        return JavaString(re.sub(str(regex), str(replacement), self.text))


class JavaMap(dict):
    """A JSON object as VTL sees one: ``get`` and, of the other ``java.util.Map`` methods, ``size``."""

    def size(self) -> int:
        return len(self)


def _as_vtl(value: Any) -> Any:
    """A parsed JSON value with every string a :class:`JavaString` and every object a :class:`JavaMap`
    (arrays stay lists: the engine gives them ``size``, ``get`` and ``contains``)."""
    if isinstance(value, str):
        return JavaString(value)
    if isinstance(value, list):
        return [_as_vtl(item) for item in value]
    if isinstance(value, dict):
        return JavaMap({key: _as_vtl(item) for key, item in value.items()})
    return value


def json_path(document: Any, expression: str) -> Any:
    """The value at a JSONPath of the forms ``$``, ``$.a.b``, ``$['a']``, ``$.a[0]``; None where it is absent."""
    expression = str(expression)
    if not expression.startswith("$"):
        raise UndocumentedBehaviour(f"JSONPath {expression!r} does not start at the root '$'")
    rest, value = expression[1:], document
    while rest:
        step = _PATH_STEP.match(rest)
        if step is None:
            raise UndocumentedBehaviour(
                f"JSONPath {expression!r}: this stand-in reads only .name, ['name'] and [index] steps"
            )
        name, quoted, index = step.groups()
        rest = rest[step.end():]
        if index is not None:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        else:
            value = value.get(name if name is not None else quoted) if isinstance(value, dict) else None
    return value


class Input:
    """``$input`` for a payload (the method request's in a request template, the back end's in a response template)."""

    def __init__(self, payload: str) -> None:
        self.body = payload

    def _document(self) -> Any:
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except json.JSONDecodeError as err:
            raise UndocumentedBehaviour(f"JSONPath on a payload that is not JSON ({err})") from None

    def json(self, expression: str) -> str:
        """The value at ``expression`` written as JSON (a string value comes back quoted and escaped)."""
        value = json_path(self._document(), expression)
        if value is None and str(expression) != "$":
            raise UndocumentedBehaviour(f"$input.json({expression!r}) of a value that is absent or null")
        return json.dumps(value)

    def path(self, expression: str) -> Any:
        """The value at ``expression`` as a VTL object (None where absent)."""
        return _as_vtl(json_path(self._document(), expression))


class Util:
    """``$util``: the functions the templates and their tests use."""

    def escapeJavaScript(self, text: Any) -> JavaString | None:
        """JavaScript string rules, as Apache Commons Lang's ``escapeJavaScript`` applies them: ``'`` to
        ``\\'`` (which AWS documents), ``"``, ``\\`` and ``/`` backslashed, control characters as ``\\n``,
        ``\\t``, ... or ``\\u00XX``, and every character above 0x7F as ``\\uXXXX`` (UTF-16 units)."""
        if text is None:
            return None
        return JavaString("".join(_escape_js_unit(unit) for unit in _utf16_units(str(text))))

    def parseJson(self, text: Any) -> Any:
        return _as_vtl(json.loads(str(text)))


def _utf16_units(text: str) -> list[int]:
    encoded = text.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(encoded[i:i + 2], "big") for i in range(0, len(encoded), 2)]


_JS_ESCAPES = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r",
               ord("'"): "\\'", ord('"'): '\\"', ord("\\"): "\\\\", ord("/"): "\\/"}


def _escape_js_unit(unit: int) -> str:
    if unit in _JS_ESCAPES:
        return _JS_ESCAPES[unit]
    if unit < 0x20 or unit > 0x7F:
        return f"\\u{unit:04X}"
    return chr(unit)


class _OverriddenHeaders:
    """``$context.responseOverride.header``: each header may be set once."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def __getitem__(self, name: str) -> str | None:
        return self.values.get(name)

    def __setitem__(self, name: str, value: Any) -> None:
        if name in self.values:
            raise OverrideError(f"header {name} overridden twice: overrides are final")
        self.values[name] = str(value)


class ResponseOverride:
    """``$context.responseOverride``: ``status`` and ``header.NAME``, each overridable once."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.header = _OverriddenHeaders()

    def __getitem__(self, name: str) -> Any:
        return {"status": self.status, "header": self.header}.get(name)

    def __setitem__(self, name: str, value: Any) -> None:
        if name != "status":
            raise OverrideError(f"$context.responseOverride.{name} is not a response parameter")
        if self.status is not None:
            raise OverrideError("status overridden twice: overrides are final")
        self.status = int(value)


class Context:
    """``$context`` in a mapping template: the given variables plus ``responseOverride``."""

    def __init__(self, **variables: Any) -> None:
        self.variables = variables
        self.responseOverride = ResponseOverride()  # the VTL name

    def __getitem__(self, name: str) -> Any:
        return self.responseOverride if name == "responseOverride" else self.variables.get(name)


def _null_is_false(condition: operators.Condition, namespace: Any, loader: Any) -> bool:
    return bool(condition.expression.calculate(namespace, loader))


def _not_null_is_true(negation: operators.UnaryOperatorValue, namespace: Any, loader: Any) -> bool:
    return negation.op(negation.value.calculate(namespace, loader))


@contextmanager
def velocity_null_rules() -> Iterator[None]:
    """Velocity's rule: ``#if($x)`` is true only where $x is non-null (and not false), so ``#if($null)`` is
    false and ``#if(!$null)`` true (Velocity user guide, "If / ElseIf / Else",
    https://velocity.apache.org/engine/1.7/user-guide.html#if-elseif-else). airspeed-ext 0.6.9 takes null
    for true in both; a template tested under that rule could pass here and fail on AWS."""
    with mock.patch.object(operators.Condition, "calculate", _null_is_false), \
            mock.patch.object(operators.UnaryOperatorValue, "calculate", _not_null_is_true):
        yield


def render(template: str, payload: str = "", context: Context | None = None) -> str:
    """``template`` run through the Velocity engine with ``$input`` (over ``payload``), ``$util`` and ``$context``."""
    namespace = {"input": Input(payload), "util": Util(), "context": context or Context()}
    with velocity_null_rules():
        return airspeed.Template(template).merge(namespace)


@dataclass
class Answer:
    """What the caller receives: status, the headers the API sets, body."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def select_integration_response(responses: list[dict], backend_status: int) -> dict:
    """The integration response for a back-end status: the one whose pattern matches it whole, else the default."""
    matching = [
        r for r in responses if r.get("SelectionPattern") and re.fullmatch(r["SelectionPattern"], str(backend_status))
    ]
    if len(matching) > 1:
        raise AssertionError(f"status {backend_status} matches several selection patterns")
    if matching:
        return matching[0]
    defaults = [r for r in responses if not r.get("SelectionPattern")]
    if len(defaults) != 1:
        raise AssertionError(f"{len(defaults)} default integration responses: API Gateway needs exactly one")
    return defaults[0]


def integration_answer(integration: dict, backend_status: int, backend_body: str) -> Answer:
    """The method's answer to a back-end response, given the synthesized ``Integration`` property."""
    response = select_integration_response(integration["IntegrationResponses"], backend_status)
    template = response.get("ResponseTemplates", {}).get(JSON)
    context = Context()
    body = backend_body if template is None else render(template, backend_body, context)
    headers = {name.removeprefix("method.response.header."): _static_value(value)
               for name, value in response.get("ResponseParameters", {}).items()}
    headers.update(context.responseOverride.header.values)
    return Answer(context.responseOverride.status or int(response["StatusCode"]), body, headers)


def _static_value(expression: str) -> str:
    if not (len(expression) >= 2 and expression[0] == expression[-1] == "'"):
        raise UndocumentedBehaviour(f"mapping {expression!r}: this stand-in maps only static 'values'")
    return expression[1:-1]


def substitute(template: str, variables: dict[str, str | None], missing: str = "") -> str:
    """Simple substitution of ``$context.NAME`` variables, no VTL, no escaping: what API Gateway does with a
    gateway response template and an access-log format. ``variables`` maps ``context.NAME`` to its raw
    value; ``context.error.messageString`` is derived from ``context.error.message``."""
    def value_of(match: re.Match) -> str:
        name = match.group(1)
        if name == _MESSAGE_STRING:
            message = variables.get(_MESSAGE)
            return json.dumps(missing if message is None else message)
        value = variables.get(name)
        return missing if value is None else value
    return _CONTEXT_VARIABLE.sub(value_of, template)


def gateway_response_for(responses: dict[str, dict], response_type: str, status: int) -> dict:
    """The gateway response API Gateway applies to an error of ``response_type``: its own where the API
    sets one, else DEFAULT_4XX or DEFAULT_5XX by the error's status ("Gateway response types",
    https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html)."""
    return responses.get(response_type) or responses[f"DEFAULT_{status // 100}XX"]


def gateway_answer(response: dict, status: int, variables: dict[str, str | None]) -> Answer:
    """A gateway response's answer, given its synthesized properties; ``status`` is the error's own,
    used where the gateway response sets none."""
    body = substitute(response["ResponseTemplates"][JSON], variables)
    headers = {name.removeprefix("gatewayresponse.header."): _gateway_header(value, variables)
               for name, value in response.get("ResponseParameters", {}).items()}
    return Answer(int(response.get("StatusCode", status)), body, headers)


def _gateway_header(expression: str, variables: dict[str, str | None]) -> str:
    if expression.startswith("context."):
        return variables.get(expression) or ""
    return _static_value(expression)


def access_log_line(log_format: str, variables: dict[str, str | None]) -> str:
    """One access-log line: the format with its variables substituted, ``-`` for those without a value."""
    return substitute(log_format, variables, missing="-")


def json_body(answer_text: str, where: str) -> Any:
    """``answer_text`` parsed as JSON, or an AssertionError that shows it."""
    try:
        return json.loads(answer_text)
    except json.JSONDecodeError as err:
        raise AssertionError(f"{where} is not JSON ({err}):\n{answer_text}") from None
