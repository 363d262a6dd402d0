"""The API Gateway stand-ins of tests/support/apigw_vtl.py, checked on the examples AWS documents and on
JSON's own rules, before other tests trust them."""
import json

import pytest
from airspeed import TemplateExecutionError
from hypothesis import given
from hypothesis import strategies as st

from tests.support import apigw_vtl as vtl

# The documented examples of "Variables for data transformations for API Gateway"
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html)
PETS = '{"pets": [{"id": 1, "type": "dog", "price": 249.99}, {"id": 2, "type": "cat", "price": 124.99}, ' \
       '{"id": 3, "type": "fish", "price": 0.99}]}'
THINGS = '{"things": {"1": {}, "2": {}, "3": {}}}'
ERROR_MESSAGE = '{"errorMessage":"{\\"key1\\":\\"var1\\",\\"key2\\":{\\"arr\\":[1,2,3]}}"}'
PARSE_JSON_TEMPLATE = """#set ($errorMessageObj = $util.parseJson($input.path('$.errorMessage')))
{
   "errorMessageObjKey2ArrVal" : $errorMessageObj.key2.arr[0]
}
"""
# the documented way to put an escaped string into JSON: escapeJavaScript, then \' back to '
ESCAPED_IN_JSON = """{"m": "$util.escapeJavaScript($input.path('$.m')).replaceAll("\\\\'","'")"}"""


def test_input_path_gives_objects_vtl_can_count():
    assert vtl.render("$input.path('$.pets').size()", PETS) == "3"
    assert vtl.render("""{"count": "$input.path('$.things').size()", "things": $input.json('$.things')}""", THINGS) \
        == '{"count": "3", "things": {"1": {}, "2": {}, "3": {}}}'


def test_input_json_writes_a_string_as_a_quoted_json_string():
    payload = json.dumps({"m": 'a "quoted"\nline\\ and é'})
    assert json.loads(vtl.render("$input.json('$.m')", payload)) == 'a "quoted"\nline\\ and é'
    assert json.loads(vtl.render("$input.json('$')", payload)) == json.loads(payload)


def test_input_body_is_the_raw_payload():
    payload = '{"items": ["a"],\n  "k": 5}'
    assert vtl.render("$input.body", payload) == payload


def test_util_parse_json_reads_stringified_json_as_documented():
    assert json.loads(vtl.render(PARSE_JSON_TEMPLATE, ERROR_MESSAGE)) == {"errorMessageObjKey2ArrVal": 1}


def test_escape_javascript_escapes_single_quotes_as_documented():
    assert str(vtl.Util().escapeJavaScript("it's")) == "it\\'s"


@given(st.text())
def test_escape_javascript_with_the_documented_fix_gives_a_json_string(text):
    rendered = vtl.render(ESCAPED_IN_JSON, json.dumps({"m": text}))
    assert json.loads(rendered) == {"m": text}


def test_what_the_documentation_leaves_open_is_refused():
    with pytest.raises(TemplateExecutionError) as raised:
        vtl.render("$input.json('$.missing')", "{}")
    assert isinstance(raised.value.__cause__, vtl.UndocumentedBehaviour)
    with pytest.raises(TemplateExecutionError) as raised:
        vtl.render("$input.path('$.m')", "not json")
    assert isinstance(raised.value.__cause__, vtl.UndocumentedBehaviour)


@pytest.mark.parametrize(("condition", "holds"), [
    ("$input.path('$.m')", False), ("!$input.path('$.m')", True), ("$input.path('$.m').matches('x')", False),
    ("$input.path('$.t')", True), ("$input.path('$.f')", False), ("!$input.path('$.t')", False),
])
def test_conditions_follow_velocitys_null_rule(condition, holds):
    """Velocity: #if($x) is true where $x is non-null and not false (user guide, "If / ElseIf / Else")."""
    rendered = vtl.render(f"#if({condition})true#{{else}}false#end", '{"m": null, "t": "text", "f": false}')
    assert rendered == str(holds).lower()


def test_an_empty_payload_reads_as_an_empty_object():
    assert vtl.render("""#if("$!input.path('$.message')" == "")empty#end""", "") == "empty"


def test_overrides_are_final():
    context = vtl.Context()
    vtl.render("#set($context.responseOverride.status = 429)#set($context.responseOverride.header.Retry-After = '1')",
               context=context)
    assert context.responseOverride.status == 429 and context.responseOverride.header.values == {"Retry-After": "1"}
    for twice in ("#set($context.responseOverride.status = 400)#set($context.responseOverride.status = 502)",
                  "#set($context.responseOverride.header.A = 'x')#set($context.responseOverride.header.A = 'y')"):
        with pytest.raises(TemplateExecutionError) as raised:
            vtl.render(twice)
        assert isinstance(raised.value.__cause__, vtl.OverrideError)


def test_gateway_templates_are_substituted_not_run_through_vtl():
    # the documented gateway-response example, with a message holding quotes, a backslash and a newline
    # (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-gateway-responses.responseTemplates.html)
    template = '{ "message": $context.error.messageString, "type":"$context.error.responseType" }'
    message = 'Invalid "key" \\ in\nheader'
    rendered = vtl.substitute(
        template, {"context.error.message": message, "context.error.responseType": "ACCESS_DENIED"}
    )
    assert json.loads(rendered) == {"message": message, "type": "ACCESS_DENIED"}
    assert vtl.substitute("#set($a = 1)$context.stage", {"context.stage": "dev"}) == "#set($a = 1)dev"


def test_access_log_variables_without_a_value_are_dashes():
    line = vtl.access_log_line('{"caller": "$context.identity.caller", "error": $context.error.messageString}', {})
    assert json.loads(line) == {"caller": "-", "error": "-"}


@pytest.mark.parametrize(
    ("backend_status", "answered"), [(200, "200"), (424, "400"), (400, "502"), (404, "502"), (4000, "200")]
)
def test_a_selection_pattern_must_match_the_whole_status(backend_status, answered):
    responses = [{"StatusCode": "200"}, {"SelectionPattern": "424", "StatusCode": "400"},
                 {"SelectionPattern": "4(?!24)\\d{2}", "StatusCode": "502"}]
    assert vtl.select_integration_response(responses, backend_status)["StatusCode"] == answered
