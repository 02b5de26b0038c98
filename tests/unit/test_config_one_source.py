"""Each per-key fact of the config lives once, in estate/models.py: the role parsers take every section's
keys (and the enums, numeric ranges and email pattern they share with it) from the models, so the parser,
the model and the editor schema cannot drift.
One error names the stack's file in its header, and a project-level key set in a stack file is named by
the stack file it came from."""

from __future__ import annotations

import copy
import json
import shutil
import types
import typing
from pathlib import Path

import pytest
import yaml
from annotated_types import Ge, Le
from pydantic import BaseModel, StrictInt
from pydantic.fields import FieldInfo

from components.build.factory_config import BASES, ENGINES, SEVERITIES, SUBSCRIPTION_ENDPOINTS, parse_factory
from components.org import org_stack
from components.roots import role_settings
from components.security import security_stack
from components.security.security_stack import LOCK_MODES
from components.workload.workload_config import EGRESS_MODES, ENDPOINT_MODES, GATEWAY_ENDPOINTS
from estate import models
from estate.config import ConfigError, Problems, parse_stack_config
from estate.validate import validate_stack
from tools.mockrun import stack_config

PROJECT_DIR = Path(__file__).resolve().parents[2]
UNKNOWN = "zzUnknownKnob"


def _file(stack: str) -> dict:
    return yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]


def _decoded(stack: str) -> dict:
    """The stack's `bakehouse:` values as validate_stack decodes them (project keys merged in)."""
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    values = {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in project.items()}
    values.update(_file(stack))
    return {k.removeprefix("bakehouse:"): v for k, v in values.items() if k.startswith("bakehouse:")}


def _set(values: dict, path: tuple[str, ...], inner: dict | None) -> None:
    """Put UNKNOWN into the section at `path` (creating it as `inner` when given)."""
    node = values
    for part in path[:-1]:
        node = node.setdefault(part, {})
    if inner is not None:
        node[path[-1]] = copy.deepcopy(inner)
    node.setdefault(path[-1], {})[UNKNOWN] = 1


def _shared(values: dict) -> None:
    values["workload"]["network"]["endpointMode"] = "shared"


# (stack, section path, the model that declares it, the section's value when the example has none, a tweak)
SECTIONS = [
    ("dev", ("network",), models.Network, None, None),
    ("build", ("factory",), models.Factory, None, None),
    ("build", ("factory", "families", "al2023"), models.FactoryFamily, None, None),
    ("build", ("factory", "rescan"), models.Rescan, {}, None),
    ("build", ("factory", "lifecycle"), models.Lifecycle, {}, None),
    ("build", ("factory", "subscriptions"), models.Subscriptions, None, None),
    ("build", ("factory", "catalogTagOptions"), models.CatalogTagOptions, {}, None),
    ("build", ("factory", "memoryCapture"), models.MemoryCapture, None, None),
    ("dev", ("workload",), models.Workload, None, None),
    ("dev", ("workload", "app"), models.App, None, None),
    ("dev", ("workload", "network"), models.WorkloadNetwork, None, None),
    ("dev", ("workload", "network", "shared"), models.SharedEndpoints, {}, _shared),
    ("dev", ("workload", "network", "egress"), models.Egress, {}, None),
    ("dev", ("workload", "incidentResponse"), models.IncidentResponse, None, None),
    ("dev", ("workload", "fleet"), models.Fleet, {}, None),
    ("org", ("org",), models.Org, None, None),
    ("security", ("security",), models.Security, None, None),
]


def _role_problems(stack: str, values: dict) -> list[str]:
    """What the stack checks and the role parser alone (no model pass) say about `values`."""
    try:
        role_settings(parse_stack_config(stack, values))
    except ConfigError as err:
        return err.problems
    return []


def _model_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found = set()
    for name, info in model.model_fields.items():
        path = (*prefix, info.alias or name)
        kind, through = info.annotation, ()
        while True:
            origin = typing.get_origin(kind)
            if origin in (typing.Union, types.UnionType):
                kind = next(a for a in typing.get_args(kind) if a is not type(None))
            elif origin is dict:
                kind, through = typing.get_args(kind)[1], (*through, "*")
            elif origin is list:
                kind, through = typing.get_args(kind)[0], (*through, "[]")
            else:
                break
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found.add((*path, *through))
            found |= _model_paths(kind, (*path, *through))
    return found


def test_every_section_model_has_a_parser_case_here():
    covered = {tuple("*" if p == "al2023" else p for p in path) for _, path, *_ in SECTIONS}
    # A subscription entry is checked as a whole ({protocol, endpoint}, SUBSCRIPTION_ENDPOINTS), not key by key.
    entries = {("factory", "subscriptions", topic, "[]") for topic in ("approvers", "notifications")}
    assert _model_paths(models.StackKeys) - entries == covered


@pytest.mark.parametrize(
    ("stack", "path", "model", "inner", "tweak"), SECTIONS, ids=lambda v: ".".join(v) if isinstance(v, tuple) else None
)
def test_each_role_parser_accepts_exactly_its_models_keys(stack, path, model, inner, tweak):
    values = _decoded(stack)
    if tweak:
        tweak(values)
    _set(values, path, inner)
    keys = sorted(info.alias or name for name, info in model.model_fields.items())
    where = "bakehouse:" + ".".join(path) + f".{UNKNOWN} is 1; allowed: one of the keys " + ", ".join(keys)
    problems = _role_problems(stack, values)
    assert any(where in p for p in problems), problems
    # Every key the model declares is accepted by the parser (whatever it then says of the value).
    assert not any("one of the keys" in p and f".{key} is" in p for p in problems for key in keys), problems


def test_adding_a_field_to_a_model_is_enough_for_the_parser_to_accept_the_key(monkeypatch):
    fields = dict(models.Lifecycle.__pydantic_fields__)
    fields["sweep_hour"] = FieldInfo(annotation=StrictInt | None, default=None, alias="sweepHour")
    monkeypatch.setattr(models.Lifecycle, "__pydantic_fields__", fields)
    values = _decoded("build")
    values["factory"]["lifecycle"] = {"sweepHour": 3, "sweepHours": 3}
    cfg = parse_stack_config("build", values)
    problems = Problems("build")
    parse_factory(values["factory"], cfg, problems, consumers={})
    assert not any("sweepHour is" in p for p in problems.items), problems.items
    assert any("lifecycle.sweepHours is 3" in p and "(did you mean sweepHour?)" in p for p in problems.items), problems.items


def test_enums_the_parsers_check_are_the_models_literals():
    def literal(model: type[BaseModel], field: str) -> set[str]:
        kind = model.model_fields[field].annotation
        found: set[str] = set()
        stack = [kind]
        while stack:
            item = stack.pop()
            if typing.get_origin(item) is typing.Literal:
                found |= set(typing.get_args(item))
            else:
                stack.extend(typing.get_args(item))
        return found

    assert set(BASES) == literal(models.FactoryFamily, "base")
    assert set(ENGINES) == literal(models.FactoryFamily, "engine")
    assert set(SEVERITIES) == literal(models.Factory, "severity_threshold")
    assert set(SUBSCRIPTION_ENDPOINTS) == literal(models.Subscription, "protocol")
    assert set(GATEWAY_ENDPOINTS) == literal(models.WorkloadNetwork, "gateway_endpoints")
    assert set(ENDPOINT_MODES) == literal(models.WorkloadNetwork, "endpoint_mode")
    assert set(EGRESS_MODES) == literal(models.Egress, "mode")
    assert set(LOCK_MODES) == literal(models.Security, "object_lock_mode")


def test_the_error_header_names_the_stack_file():
    values = {**_decoded("dev"), "role": "warehouse", "homeRegion": "mars-north-1"}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("dev", values)
    message = str(caught.value)
    assert message.startswith(f"Pulumi.dev.yaml has {len(caught.value.problems)} problems:\n"), message
    assert caught.value.stack == "dev"
    # A problem of Pulumi.yaml still names Pulumi.yaml on its own line.
    assert "stack dev: Pulumi.yaml: bakehouse:homeRegion is 'mars-north-1'" in message
    assert str(ConfigError("uat", ["one"])).startswith("Pulumi.uat.yaml has 1 problem:\n")


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    for path in PROJECT_DIR.glob("Pulumi*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_a_project_key_set_in_the_stack_file_is_named_by_the_stack_file(project):
    dev = yaml.safe_load((project / "Pulumi.dev.yaml").read_text())
    dev["config"]["bakehouse:homeRegion"] = "mars-north-1"
    dev["config"]["bakehouse:deployRoleName"] = "BäckereiDeploy"
    (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(dev))
    values, secrets = stack_config("dev", project)
    with pytest.raises(ConfigError) as caught:
        validate_stack("dev", values, project, secret_keys=secrets)
    named = [p for p in caught.value.problems if "bakehouse:homeRegion" in p or "bakehouse:deployRoleName" in p]
    assert any("Pulumi.dev.yaml: bakehouse:homeRegion is 'mars-north-1'" in p for p in named), named
    assert any("Pulumi.dev.yaml: bakehouse:deployRoleName is 'BäckereiDeploy'" in p for p in named), named
    assert not any("Pulumi.yaml:" in p for p in named), named


def test_a_project_key_left_in_pulumi_yaml_is_still_named_by_pulumi_yaml(project):
    doc = yaml.safe_load((project / "Pulumi.yaml").read_text())
    doc["config"]["bakehouse:homeRegion"] = {"value": "mars-north-1"}
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(doc))
    values, secrets = stack_config("dev", project)
    with pytest.raises(ConfigError) as caught:
        validate_stack("dev", values, project, secret_keys=secrets)
    assert any("stack dev: Pulumi.yaml: bakehouse:homeRegion is 'mars-north-1'" in p for p in caught.value.problems)


# --- numeric ranges: the model's Field(ge=..., le=...) is the parser's range --------------------------
_EGRESS = {"mode": "transit-gateway", "targetId": "tgw-0123456789abcdef0", "destinationCidr": "10.200.0.0/16"}
# (stack, path of the value, the model and field that bound it, the section the value goes into when absent)
BOUNDED = [
    ("build", ("factory", "maxCatalogVersions"), models.Factory, "max_catalog_versions", None),
    ("build", ("factory", "rescan", "batchSize"), models.Rescan, "batch_size", {}),
    ("build", ("factory", "lifecycle", "keep"), models.Lifecycle, "keep", {}),
    ("build", ("factory", "lifecycle", "keepDays"), models.Lifecycle, "keep_days", {}),
    ("build", ("factory", "lifecycle", "graceDays"), models.Lifecycle, "grace_days", {}),
    ("build", ("factory", "lifecycle", "prodRetentionYears"), models.Lifecycle, "prod_retention_years", {}),
    ("dev", ("workload", "network", "egress", "proxyPort"), models.Egress, "proxy_port", _EGRESS),
    ("dev", ("workload", "incidentResponse", "minSeverity"), models.IncidentResponse, "min_severity", {}),
    ("dev", ("workload", "fleet", "maxInstanceLifetimeDays"), models.Fleet, "max_instance_lifetime_days", {}),
    ("security", ("security", "objectLockDays"), models.Security, "object_lock_days", None),
    ("security", ("security", "glacierAfterDays"), models.Security, "glacier_after_days", None),
    ("security", ("security", "expireAfterDays"), models.Security, "expire_after_days", None),
]


def _with(stack: str, path: tuple[str, ...], value: object, inner: dict | None) -> dict:
    values = _decoded(stack)
    node = values
    for part in path[:-2]:
        node = node.setdefault(part, {})
    if path[-2] not in node and inner is not None:
        node[path[-2]] = copy.deepcopy(inner)
    node.setdefault(path[-2], {})[path[-1]] = value
    return values


def _range_named(stack: str, path: tuple[str, ...], value: object, inner: dict | None, low: object, high: object) -> bool:
    """Whether the role parser refuses `value` at `path` naming the range low..high."""
    where = "bakehouse:" + ".".join(path) + " is "
    problems = _role_problems(stack, _with(stack, path, value, inner))
    return any(where in p and f"from {low} to {high}" in p for p in problems)


def test_every_range_the_parsers_check_is_declared_on_its_model():
    for _, path, model, field, _ in BOUNDED:
        low, high = models.bounds(model, field)
        assert low is not None and high is not None, ".".join(path)


@pytest.mark.parametrize(
    ("stack", "path", "model", "field", "inner"), BOUNDED, ids=lambda v: ".".join(v) if isinstance(v, tuple) else None
)
def test_each_role_parser_refuses_exactly_outside_its_models_range(stack, path, model, field, inner):
    low, high = models.bounds(model, field)
    step = 1 if isinstance(low, int) and isinstance(high, int) else 0.1
    assert not _range_named(stack, path, low, inner, low, high)
    assert not _range_named(stack, path, high, inner, low, high)
    assert _range_named(stack, path, low - step, inner, low, high)
    assert _range_named(stack, path, high + step, inner, low, high)


@pytest.mark.parametrize(
    ("stack", "path", "model", "field", "inner"), BOUNDED, ids=lambda v: ".".join(v) if isinstance(v, tuple) else None
)
def test_narrowing_a_models_range_is_enough_for_the_parser_to_refuse_the_value(monkeypatch, stack, path, model, field, inner):
    low, high = models.bounds(model, field)
    narrower = high - 1 if isinstance(high, int) else round(high - 1.0, 1)
    info = copy.copy(model.model_fields[field])
    info.metadata = [Ge(ge=low), Le(le=narrower)]
    monkeypatch.setattr(model, "__pydantic_fields__", {**model.__pydantic_fields__, field: info})
    assert models.bounds(model, field) == (low, narrower)
    assert _range_named(stack, path, high, inner, low, narrower)


def test_the_stacks_and_the_models_share_one_email_pattern():
    assert org_stack.EMAIL is models.EMAIL and security_stack.EMAIL is models.EMAIL
    refused = "owner@example"
    with pytest.raises(ValueError):
        models.Org.model_validate({"accountEmails": {"build": refused}})
    with pytest.raises(ValueError):
        models.Security.model_validate({"alertEmails": [refused]})
    defs = json.loads((PROJECT_DIR / "schema" / "bakehouse-stack.schema.json").read_text())["$defs"]
    account = defs["Org"]["properties"]["accountEmails"]["anyOf"][0]["additionalProperties"]
    alert = defs["Security"]["properties"]["alertEmails"]["anyOf"][0]["items"]
    assert account["pattern"] == alert["pattern"] == f"^{models.EMAIL.pattern}$"
