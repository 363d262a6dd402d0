"""CloudFormation's intrinsic functions evaluated over the templates of one synthesized app.

:class:`IntrinsicResolver` walks a value of a template, follows ``Fn::ImportValue`` to the exporting stack's
output and evaluates ``Fn::Join``, ``Fn::Sub``, ``Fn::Select`` and ``Fn::Split``; what a ``Ref`` or an
``Fn::GetAtt`` stands for is the subclass's: plausible ARNs for IAM linters
(:class:`tests.support.policy_documents.AppPolicies`), names and ARNs a deployment would pass on for executed
state machines (:class:`tests.support.cfn_values.Stacks`). An intrinsic it does not know raises, naming it.
"""
from __future__ import annotations

import re
from typing import Any

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class IntrinsicResolver:
    """The templates of one app (stack name -> template) and their exports; :meth:`resolve` resolves."""

    def __init__(self, templates: dict[str, dict]):
        self.templates = templates
        self.exports = {
            output["Export"]["Name"]: (stack, output["Value"])
            for stack, template in templates.items()
            for output in template.get("Outputs", {}).values() if "Export" in output
        }

    def resolve(self, stack: str, value: Any) -> Any:
        """``value`` (from the template of ``stack``) with every intrinsic function evaluated."""
        if isinstance(value, list):
            return [self.resolve(stack, item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, argument), = value.items()
            if name == "Ref" or name.startswith("Fn::"):
                return self._intrinsic(stack, name, argument)
        return {key: self.resolve(stack, item) for key, item in value.items()}

    def _ref(self, stack: str, logical_id: str) -> Any:
        raise NotImplementedError

    def _attribute(self, stack: str, logical_id: str, attribute: str) -> Any:
        raise NotImplementedError

    def _resource(self, stack: str, logical_id: str) -> dict:
        try:
            return self.templates[stack]["Resources"][logical_id]
        except KeyError:
            raise ValueError(f"{stack}: no resource {logical_id!r}") from None

    def _intrinsic(self, stack: str, name: str, argument: Any) -> Any:
        if name == "Ref":
            return self._ref(stack, argument)
        if name == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self._attribute(stack, logical_id, attribute)
        if name == "Fn::ImportValue":
            exporter, exported = self.exports[self.resolve(stack, argument)]
            return self.resolve(exporter, exported)
        if name == "Fn::Join":
            delimiter, items = argument
            return delimiter.join(str(item) for item in self.resolve(stack, items))
        if name == "Fn::Sub":
            return self._sub(stack, argument)
        if name == "Fn::Select":
            index, items = argument
            return self.resolve(stack, items)[int(index)]
        if name == "Fn::Split":
            delimiter, text = argument
            return self.resolve(stack, text).split(delimiter)
        raise ValueError(f"{stack}: cannot resolve {name} {argument!r}")

    def _sub(self, stack: str, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        variables = {key: self.resolve(stack, item) for key, item in variables.items()}

        def value_of(match: re.Match) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self._attribute(stack, *name.split(".", 1)))
            return str(self._ref(stack, name))

        return _SUB_VARIABLE.sub(value_of, text)
