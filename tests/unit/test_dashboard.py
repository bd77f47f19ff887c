"""The dashboard and alarms in ``infra/gatehouse.yaml`` against the metrics the code emits.

The emitted names are read from the code itself (its syntax tree), not from a
list kept by hand: every ``add_metric(name=...)``, every name the Powertools
helpers of :mod:`chalicelib.observability` are given, and every literal
passed to a function that forwards its argument as a metric's name (the
proxy's ``_count``, ``put_dimensioned``). Every metric the code emits must
be on the dashboard, and every alarm on the functions' EMF namespace must
name one the code emits.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeGuard

import pytest

from chalicelib.observability import NAMESPACE, SERVICE
from gatehouse.audit_commands import VERIFY_METRIC_NAME, VERIFY_METRIC_NAMESPACE
from gatehouse.deploy.templates import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "gatehouse.yaml"
# What the functions call to publish a metric, and the argument that names it.
EMITTERS = {"add_metric": ("name", 0), "put_dimensioned": ("name", 0), "single_metric": ("name", 0)}


def _name_argument(call: ast.Call, keyword: str, position: int) -> ast.expr | None:
    for given in call.keywords:
        if given.arg == keyword:
            return given.value
    return call.args[position] if len(call.args) > position else None


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return call.func.id if isinstance(call.func, ast.Name) else None


def _strings_assigned(function: ast.AST, variable: str) -> set[str]:
    """Every string literal assigned to ``variable`` in ``function`` (tuple targets too)."""
    found: set[str] = set()
    for node in ast.walk(function):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs: list[tuple[ast.expr, ast.expr]] = [(target, node.value)]
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(target.elts, node.value.elts, strict=False))
            for name, value in pairs:
                if isinstance(name, ast.Name) and name.id == variable and _text(value):
                    found.add(value.value)
    return found


def _text(node: ast.expr | None) -> TypeGuard[ast.Constant]:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _trees() -> Iterator[ast.Module]:
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        yield ast.parse(path.read_text(), filename=str(path))


def _emits(
    function: ast.FunctionDef | ast.AsyncFunctionDef, names: set[str], forwarders: dict[str, int]
) -> None:
    """Add the metric names ``function`` emits; note it when it forwards a parameter as one."""
    parameters = [arg.arg for arg in function.args.args if arg.arg not in ("self", "cls")]
    for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
        callee = _callee(call)
        if callee not in EMITTERS or function.name in EMITTERS:
            continue
        argument = _name_argument(call, *EMITTERS[callee])
        if _text(argument):
            names.add(argument.value)
        elif isinstance(argument, ast.Name) and argument.id in parameters:
            forwarders[function.name] = parameters.index(argument.id)
        elif isinstance(argument, ast.Name):
            names |= _strings_assigned(function, argument.id)


@functools.cache
def emitted_metric_names() -> frozenset[str]:
    """The names of every metric the deployed code publishes, read from its source."""
    names: set[str] = set()
    # Functions that pass one of their parameters on as a metric's name: {function: position}.
    forwarders: dict[str, int] = {}
    trees = list(_trees())
    for tree in trees:
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                _emits(function, names, forwarders)
    for tree in trees:
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            callee = _callee(call)
            if callee in forwarders and len(call.args) > forwarders[callee]:
                argument = call.args[forwarders[callee]]
                if _text(argument):
                    names.add(argument.value)
    return frozenset(names)


@functools.cache
def _template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def dashboard() -> dict[str, Any]:
    """The dashboard's body, its ``${...}`` substitutions filled as CloudFormation would."""
    resources = _template()["Resources"]
    (body,) = [
        resource["Properties"]["DashboardBody"]["Fn::Sub"]
        for resource in resources.values()
        if resource["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    for reference in re.findall(r"\$\{([^}]+)\}", body):
        resource = reference.split(".")[0]
        assert resource.startswith("AWS::") or resource in resources, reference
    filled = re.sub(r"\$\{([^}]+)\}", "placeholder", body)
    document: dict[str, Any] = json.loads(filled)
    return document


def dashboard_metrics() -> set[tuple[str, str]]:
    """(namespace, name) of every metric a widget shows, directly or through a SEARCH."""
    shown: set[tuple[str, str]] = set()
    for widget in dashboard()["widgets"]:
        for entry in widget["properties"].get("metrics", []):
            head = entry[0]
            if isinstance(head, dict):
                search = re.search(r"\{([^,}]+)[^}]*\} MetricName=\"([^\"]+)\"", head["expression"])
                assert search, head
                shown.add((search.group(1), search.group(2)))
            else:
                shown.add((entry[0], entry[1]))
    return shown


def alarms() -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in _template()["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_the_code_scan_finds_the_metrics_it_must() -> None:
    # A scan that found nothing would make the checks below pass vacuously.
    names = emitted_metric_names()
    assert {
        "AccessAllowed",  # assigned to a variable, then emitted (count_decision)
        "AuditEventsStored",  # add_metric(name=...)
        "UpstreamErrors",  # through the proxy's _count
        "Decisions",  # put_dimensioned
        "DecisionLatency",
        "UpstreamLatency",
    } <= names
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", name) for name in names), names


def test_every_metric_the_code_emits_is_on_the_dashboard() -> None:
    shown = dashboard_metrics()
    missing = {name for name in emitted_metric_names() if (NAMESPACE, name) not in shown}
    assert missing == set()


def test_the_dashboard_shows_nothing_the_code_does_not_emit() -> None:
    emitted = emitted_metric_names()
    ours = {name for namespace, name in dashboard_metrics() if namespace == NAMESPACE}
    assert ours - emitted == set()


def test_the_dashboard_shows_the_dead_letter_queue_depth() -> None:
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in dashboard_metrics()


@pytest.mark.parametrize("name", sorted(alarms()), ids=sorted(alarms()))
def test_each_alarm_on_gatehouse_metrics_names_one_the_code_emits(name: str) -> None:
    alarm = alarms()[name]
    namespace = alarm.get("Namespace")
    if namespace == VERIFY_METRIC_NAMESPACE and alarm["MetricName"] == VERIFY_METRIC_NAME:
        return  # `gatehouse audit verify --publish-metric` puts it (per stage), not a function
    if namespace != NAMESPACE:
        assert namespace is not None
        return  # AWS's own metrics (SQS, Lambda) or a log metric filter's
    assert alarm["MetricName"] in emitted_metric_names()
    # Powertools publishes every metric under the service dimension.
    assert alarm["Dimensions"] == [{"Name": "service", "Value": SERVICE}]


def test_the_alarms_the_dashboard_lists_exist() -> None:
    (widget,) = [w for w in dashboard()["widgets"] if w["type"] == "alarm"]
    body = _template()["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]
    listed = re.findall(r"\$\{([A-Za-z]+)\.Arn\}", body["Fn::Sub"])
    assert len(listed) == len(widget["properties"]["alarms"])
    assert set(listed) <= set(alarms())
