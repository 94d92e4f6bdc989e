"""The deployment (infra/bicep, azure.yaml, docker-compose.yml, the workflows, docs/deploy.md) agrees with the code.

The Bicep CLI cannot run here: tree-sitter-bicep parses every file (a syntax error fails with file:line), and the
parsed declarations are read back as Python values to check what a reviewer would check by hand: the resource
types, the flags that turn off keys and SAS, the role assignments, that the app settings are the names the code
reads, that the Cosmos containers are the ones shared/adapters/cosmos.py creates, and that nothing secret leaks
into an app setting or an output.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import tree_sitter_bicep
import yaml
from tree_sitter import Language, Node, Parser

from shared.adapters.cosmos import COSMOS_CONTAINERS
from shared.settings import Settings
from tests.support.settings_names import setting_names

REPO = Path(__file__).resolve().parents[2]
BICEP_DIR = REPO / "infra" / "bicep"
MAIN = BICEP_DIR / "main.bicep"
MODULES = BICEP_DIR / "modules"
LOCAL_VALUES: dict[str, str] = json.loads((REPO / "local.settings.json").read_text())["Values"]

# Settings of the Functions host itself for identity-based connections (not read by our code): the host storage and
# the Event Hub trigger's connection with the user-assigned identity, and Entra-authenticated telemetry.
HOST_IDENTITY_SETTINGS = {
    "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
    "EVENTHUB__credential", "EVENTHUB__clientId", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "COSMOS__credential", "COSMOS__clientId",  # the change feed trigger of the event relay
}
# Settings whose value in Azure is a Key Vault reference (the query API reads the admin key from ADMIN_API_KEY).
KEY_VAULT_REFERENCES = {"ADMIN_API_KEY"}
# Local-only host settings of local.settings.json (Flex Consumption sets the runtime in functionAppConfig).
LOCAL_HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"}
# Settings of the Python worker, the same locally and in Azure: HTTP streams need the worker to index the app at
# start (function_app.py, docs/streaming.md); numpy's BLAS computes on the worker's one thread (docs/capacity.md).
WORKER_SETTINGS = {"PYTHON_ENABLE_INIT_INDEXING": "1", "OPENBLAS_NUM_THREADS": "1"}
# Outputs azd itself uses (written to .azure/<env>/.env) besides those named like app settings.
AZD_OUTPUTS = {"AZURE_LOCATION", "AZURE_TENANT_ID", "AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME",
               "AZURE_FUNCTION_APP_URL", "AZURE_KEY_VAULT_NAME"}

ROLE_IDS = {
    "Azure Event Hubs Data Sender": "2b629674-e913-4c01-ae53-ef4638d8f975",
    "Azure Event Hubs Data Receiver": "a638d3c7-ab3a-418d-83e6-5f17a39d4fde",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "EventGrid Data Sender": "d5a91429-5739-47e2-a06b-3470a27159e7",
}
COSMOS_BUILT_IN_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"


# ----------------------------------------------------------------------------------------------- Bicep reading
@dataclass(frozen=True)
class Expr:
    """A Bicep expression that is not a literal (a reference, a call, an interpolated string): its source text."""

    text: str


@dataclass(frozen=True)
class Declaration:
    kind: str  # param, var, output, resource, module
    name: str
    node: Node  # the declaration node
    value: Node | None  # the value (for resources and modules: the body object, inside any for / if)
    decorators: dict[str, Any]
    type_text: str = ""  # param / output type, resource type string or module path
    condition: str = ""  # the `if (...)` of a conditional resource or module
    file: Path = MAIN


@lru_cache(maxsize=1)
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bicep.language()))


def parse(text: bytes) -> Node:
    return _parser().parse(text).root_node


def first_problem(root: Node) -> Node | None:
    """The first ERROR or MISSING node in document order, if any."""
    if root.type == "ERROR" or root.is_missing:
        return root
    if not root.has_error:
        return None
    for child in root.children:
        found = first_problem(child)
        if found is not None:
            return found
    return root  # has_error without a reachable ERROR/MISSING child: report the node itself


def text_of(node: Node) -> str:
    return node.text.decode()


def value(node: Node) -> Any:
    """Literal Bicep (strings, numbers, booleans, null, arrays, objects) as Python; anything else as Expr."""
    kind = node.type
    if kind == "string":
        if any(child.type == "interpolation" for child in node.children):
            return Expr(text_of(node))
        return "".join(text_of(c) for c in node.children if c.type in ("string_content", "escape_sequence"))
    if kind == "multiline_string":
        return text_of(node)[3:-3]
    if kind == "number":
        return int(text_of(node))
    if kind == "boolean":
        return text_of(node) == "true"
    if kind == "null":
        return None
    if kind == "array":
        return [value(c) for c in node.named_children if c.type != "comment"]
    if kind == "object":
        result = {}
        for prop in node.named_children:
            if prop.type != "object_property":
                continue
            key_node, value_node = prop.named_children[0], prop.named_children[-1]
            key = value(key_node) if key_node.type == "string" else text_of(key_node)
            result[key] = value(value_node)
        return result
    if kind == "unary_expression" and text_of(node).startswith("-") and node.named_children[-1].type == "number":
        return -int(text_of(node.named_children[-1]))
    return Expr(text_of(node))


def _decorators(node: Node) -> dict[str, Any]:
    found: dict[str, Any] = {}
    previous = node.prev_named_sibling
    if previous is None or previous.type != "decorators":
        return found
    for decorator in previous.named_children:
        call = next((c for c in decorator.named_children if c.type == "call_expression"), None)
        if call is None:
            continue
        name = text_of(call.named_children[0])
        args = [value(a) for a in call.named_children[1].named_children] if len(call.named_children) > 1 else []
        found[name] = args[0] if len(args) == 1 else args
    return found


def _body(node: Node) -> tuple[Node | None, str]:
    """The object of a resource/module body, looking through `[for ...: ...]` and `if (...)`."""
    condition = ""
    while node is not None and node.type in ("for_statement", "if_statement"):
        if node.type == "if_statement":
            condition = text_of(node.named_children[0])
        node = node.named_children[-1]
    return node, condition


@cache
def declarations(path: Path) -> tuple[Declaration, ...]:
    root = parse(path.read_bytes())
    result = []
    for node in root.named_children:
        kind = node.type.removesuffix("_declaration")
        if kind not in ("parameter", "variable", "output", "resource", "module"):
            continue
        kind = {"parameter": "param", "variable": "var"}.get(kind, kind)
        children = node.named_children
        name = text_of(children[0])
        if kind in ("param", "output"):
            type_node = next((c for c in children[1:] if c.type == "type"), None)
            type_text = text_of(type_node) if type_node is not None else ""
            rest = [c for c in children[1:] if c.type != "type"]
            result.append(Declaration(kind, name, node, rest[-1] if rest else None, _decorators(node), type_text,
                                      file=path))
        elif kind == "var":
            result.append(Declaration(kind, name, node, children[-1], _decorators(node), file=path))
        else:
            body, condition = _body(children[-1])
            result.append(Declaration(kind, name, node, body, _decorators(node), value(children[1]),
                                      condition, file=path))
    return tuple(result)


def declared(path: Path, kind: str) -> dict[str, Declaration]:
    return {d.name: d for d in declarations(path) if d.kind == kind}


def bicep_files() -> list[Path]:
    return sorted(BICEP_DIR.rglob("*.bicep"))


def resources(path: Path | None = None) -> list[Declaration]:
    paths = [path] if path else bicep_files()
    return [d for p in paths for d in declarations(p) if d.kind == "resource"]


def resource_type(decl: Declaration) -> str:
    return decl.type_text.split("@")[0]


def is_existing(decl: Declaration) -> bool:
    """`resource x '...' existing = {...}`: a reference to a resource declared elsewhere."""
    return any(child.type == "existing" for child in decl.node.children)


def resources_of_type(type_name: str) -> list[Declaration]:
    """The resources of a type that the templates create (not `existing` references)."""
    return [d for d in resources() if resource_type(d) == type_name and not is_existing(d)]


def body(decl: Declaration) -> dict[str, Any]:
    return value(decl.value)


def param_default(path: Path, name: str) -> Any:
    decl = declared(path, "param")[name]
    return value(decl.value) if decl.value is not None else None


def identity_forms(names: set[str]) -> set[str]:
    """`<PREFIX>__accountEndpoint` and the like: the Azure form of a connection setting."""
    return {n for n in names if "__" in n}


def connection_string_forms(names: set[str]) -> set[str]:
    """The plain `<PREFIX>` names that hold a connection string locally."""
    return {n.split("__")[0] for n in identity_forms(names)}


def main_app_settings() -> dict[str, Any]:
    return value(declared(MAIN, "var")["appSettings"].value)


def host_app_settings() -> dict[str, Any]:
    return value(declared(MODULES / "functionapp.bicep", "var")["hostSettings"].value)


def bicep_app_settings() -> dict[str, Any]:
    return {**main_app_settings(), **host_app_settings()}


def evaluate(node: Node, env: dict[str, Any]) -> Any:
    """The value of a Bicep expression of literals, names, `!`, `&&`, `||`, `==`, `!=` and `? :`, given the values
    of the names it uses (a name missing from env is a KeyError: a test states every input it depends on)."""
    kind = node.type
    if kind == "identifier":
        return env[text_of(node)]
    if kind == "parenthesized_expression":
        return evaluate(node.named_children[0], env)
    if kind == "unary_expression" and text_of(node).startswith("!"):
        return not evaluate(node.named_children[-1], env)
    if kind == "binary_expression":
        left, operator, right = node.children
        a, b = evaluate(left, env), evaluate(right, env)
        operations = {"&&": lambda: a and b, "||": lambda: a or b, "==": lambda: a == b, "!=": lambda: a != b}
        return operations[operator.type]()
    if kind == "ternary_expression":
        condition, when_true, when_false = node.named_children
        return evaluate(when_true if evaluate(condition, env) else when_false, env)
    literal = value(node)
    if isinstance(literal, Expr):
        raise NotImplementedError(f"the test evaluator does not take: {text_of(node)}")
    return literal


def evaluate_text(expression: Expr | Any, env: dict[str, Any]) -> Any:
    """evaluate() for a value read with value(): an Expr is parsed again, a literal is itself."""
    if not isinstance(expression, Expr):
        return expression
    [declaration] = parse(f"var v = {expression.text}\n".encode()).named_children
    return evaluate(declaration.named_children[-1], env)


# ----------------------------------------------------------------------------------------------- parsing
def test_there_is_a_main_template_and_its_modules():
    names = {p.relative_to(BICEP_DIR).as_posix() for p in bicep_files()}
    assert "main.bicep" in names
    assert {f"modules/{m}.bicep" for m in ("functionapp", "storage", "eventhubs", "cosmos", "keyvault",
                                           "monitoring", "identity", "roles")} <= names


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(BICEP_DIR).as_posix())
def test_every_bicep_file_parses_without_error(path: Path):
    problem = first_problem(parse(path.read_bytes()))
    if problem is not None:
        line, column = problem.start_point
        snippet = path.read_text().splitlines()[line] if line < len(path.read_text().splitlines()) else ""
        kind = "missing " + problem.type if problem.is_missing else problem.type
        pytest.fail(f"{path.relative_to(REPO)}:{line + 1}:{column + 1}: {kind} near: {snippet.strip()}")


@pytest.mark.parametrize("broken", [
    b"resource s 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n",  # unclosed object
    b"param p int = \nvar v = 1\n",  # no value
    b"var x = [for c in y: { a: 1 }\n",  # unclosed for
    b"output o string = concat('a' 'b')\n",  # missing comma
])
def test_the_parse_check_does_catch_syntax_errors(broken: bytes):
    assert first_problem(parse(broken)) is not None


def test_modules_are_called_with_the_params_they_declare_and_outputs_they_have():
    """What `bicep build` would reject first: unknown or missing module params, and outputs that do not exist."""
    for path in bicep_files():
        source = path.read_text()
        for module in (d for d in declarations(path) if d.kind == "module"):
            target = (path.parent / module.type_text).resolve()
            assert target.is_file(), f"{path.name}: module {module.name} points at missing {module.type_text}"
            params = declared(target, "param")
            given = set(body(module).get("params", {}))
            required = {n for n, d in params.items() if d.value is None}
            assert given <= set(params), f"{module.name}: unknown params {sorted(given - set(params))}"
            assert required <= given, f"{module.name}: missing params {sorted(required - given)}"
            outputs = set(declared(target, "output"))
            used = set(re.findall(rf"\b{module.name}\.outputs\.(\w+)", source))
            assert used <= outputs, f"{module.name}: no such outputs {sorted(used - outputs)}"


def referenced_identifiers(root: Node) -> dict[str, tuple[int, int]]:
    """Identifiers used as values (not keys, declared names, called functions or property names): name -> position."""
    found: dict[str, tuple[int, int]] = {}
    local: set[str] = set()

    def walk(node: Node) -> None:
        if node.type == "lambda_expression":
            local.update(text_of(c) for c in node.named_children[:-1] if c.type == "identifier")
        if node.type == "for_statement":
            # `for x in ...` names its variable as the initializer; `for (x, i) in ...` has for_loop_parameters
            initializer = node.child_by_field_name("initializer") or next(
                c for c in node.named_children if c.type == "for_loop_parameters")
            loop_names = [initializer] if initializer.type == "identifier" else initializer.named_children
            local.update(text_of(n) for n in loop_names)
        if node.type == "identifier":
            parent = node.parent
            is_key = parent.type == "object_property" and parent.named_children[0] == node
            is_declared_name = parent.type.endswith("_declaration") and parent.named_children[0] == node
            is_function = parent.type == "call_expression" and parent.named_children[0] == node
            if not (is_key or is_declared_name or is_function):
                found.setdefault(text_of(node), node.start_point)
        for child in node.children:
            walk(child)

    walk(root)
    return {name: at for name, at in found.items() if name not in local}


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(BICEP_DIR).as_posix())
def test_every_identifier_used_is_declared(path: Path):
    """A misspelt parameter, variable, resource or module name fails here, as `bicep build` would fail."""
    names = {d.name for d in declarations(path)}
    for name, (line, column) in referenced_identifiers(parse(path.read_bytes())).items():
        assert name in names, f"{path.relative_to(REPO)}:{line + 1}:{column + 1}: {name} is not declared"


# ----------------------------------------------------------------------------------------------- resources
REQUIRED_RESOURCE_TYPES = {
    "Microsoft.Resources/resourceGroups",
    "Microsoft.ManagedIdentity/userAssignedIdentities",
    "Microsoft.Web/serverfarms",
    "Microsoft.Web/sites",
    "Microsoft.Web/sites/config",
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Storage/storageAccounts/blobServices/containers",
    "Microsoft.Storage/storageAccounts/managementPolicies",
    "Microsoft.EventHub/namespaces",
    "Microsoft.EventHub/namespaces/eventhubs",
    "Microsoft.EventHub/namespaces/eventhubs/consumergroups",
    "Microsoft.DocumentDB/databaseAccounts",
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases",
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers",
    "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments",
    "Microsoft.KeyVault/vaults",
    "Microsoft.KeyVault/vaults/secrets",
    "Microsoft.Insights/components",
    "Microsoft.OperationalInsights/workspaces",
    "Microsoft.Authorization/roleAssignments",
    "Microsoft.EventGrid/topics",
}


def test_the_required_resource_types_are_declared():
    declared_types = {resource_type(d) for d in resources() if not is_existing(d)}
    assert REQUIRED_RESOURCE_TYPES <= declared_types, sorted(REQUIRED_RESOURCE_TYPES - declared_types)


# Types whose only current API version is a preview: diagnostic settings have had no GA version since 2016-09-01,
# which has only the older subscription-style 'service' shape; 2021-05-01-preview is the one Azure documents.
PREVIEW_ONLY_TYPES = {"Microsoft.Insights/diagnosticSettings": "2021-05-01-preview"}


def test_every_resource_has_a_pinned_stable_api_version():
    for decl in resources():
        if resource_type(decl) in PREVIEW_ONLY_TYPES:
            assert decl.type_text.split("@")[1] == PREVIEW_ONLY_TYPES[resource_type(decl)], decl.type_text
            continue
        assert re.fullmatch(r"[\w.]+(/\w+)+@\d{4}-\d{2}-\d{2}", decl.type_text), f"{decl.name}: {decl.type_text}"


def test_function_app_runs_python_311_on_flex_consumption_with_its_identity():
    [plan] = resources_of_type("Microsoft.Web/serverfarms")
    assert body(plan)["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert body(plan)["properties"]["reserved"] is True  # Linux
    [site] = resources_of_type("Microsoft.Web/sites")
    site_body = body(site)
    assert site_body["kind"] == "functionapp,linux"
    assert site_body["identity"]["type"] == "UserAssigned"
    properties = site_body["properties"]
    assert properties["httpsOnly"] is True
    assert properties["keyVaultReferenceIdentity"] == Expr("identityId")
    config = properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": Expr("identityId")}
    scale = config["scaleAndConcurrency"]
    assert scale == {"instanceMemoryMB": Expr("instanceMemoryMB"), "maximumInstanceCount": Expr("maximumInstanceCount"),
                     "alwaysReady": Expr("alwaysReady")}
    # The three knobs are parameters of main.bicep, passed through to the module.
    module = body(declared(MAIN, "module")["functionApp"])["params"]
    for name in ("instanceMemoryMB", "maximumInstanceCount", "alwaysReadyHttpInstances", "alwaysReadyProcessorInstances"):
        assert module[name] == Expr(name)
        assert name in declared(MAIN, "param")
    assert param_default(MAIN, "instanceMemoryMB") in declared(MAIN, "param")["instanceMemoryMB"].decorators["allowed"]


@lru_cache(maxsize=1)
def function_bindings() -> dict[str, list[dict[str, Any]]]:
    """Each function's bindings, from a fresh interpreter: `get_functions()` may run once per app object, and the
    tests in tests/functions call it on theirs."""
    script = ("import json, function_app; print(json.dumps({f.get_function_name(): "
              "json.loads(f.get_function_json())['bindings'] for f in function_app.app.get_functions()}))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_always_ready_names_the_real_event_hub_function():
    by_name = function_bindings()
    source = (MODULES / "functionapp.bicep").read_text()
    names = set(re.findall(r"name: 'function:(\w+)'", source))
    assert names, "no per-function always-ready entry"
    for name in names:
        assert name in by_name and by_name[name][0]["type"] == "eventHubTrigger", name


def test_publishing_with_user_names_and_passwords_is_off():
    policies = {body(d)["name"]: body(d)["properties"]["allow"]
                for d in resources_of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies")}
    assert policies == {"ftp": False, "scm": False}


def test_no_service_accepts_keys_or_shared_access_signatures():
    [namespace] = resources_of_type("Microsoft.EventHub/namespaces")
    assert body(namespace)["properties"]["disableLocalAuth"] is True
    assert body(namespace)["sku"]["name"] == "Standard"
    [cosmos] = resources_of_type("Microsoft.DocumentDB/databaseAccounts")
    assert body(cosmos)["properties"]["disableLocalAuth"] is True
    assert body(cosmos)["properties"]["disableKeyBasedMetadataWriteAccess"] is True
    [storage] = resources_of_type("Microsoft.Storage/storageAccounts")
    storage_properties = body(storage)["properties"]
    assert storage_properties["allowSharedKeyAccess"] is False
    assert storage_properties["allowBlobPublicAccess"] is False
    assert storage_properties["minimumTlsVersion"] == "TLS1_2"
    [vault] = resources_of_type("Microsoft.KeyVault/vaults")
    assert body(vault)["properties"]["enableRbacAuthorization"] is True
    [topic] = resources_of_type("Microsoft.EventGrid/topics")
    assert body(topic)["properties"]["disableLocalAuth"] is True
    assert body(topic)["properties"]["inputSchema"] == "CloudEventSchemaV1_0"
    [insights] = resources_of_type("Microsoft.Insights/components")
    assert body(insights)["properties"]["DisableLocalAuth"] == Expr("disableLocalAuth")
    assert param_default(MAIN, "appInsightsDisableLocalAuth") is True
    assert body(declared(MAIN, "module")["monitoring"])["params"]["disableLocalAuth"] == Expr("appInsightsDisableLocalAuth")


def test_both_storage_accounts_use_the_locked_down_module():
    modules = {d.name: body(d) for d in declarations(MAIN) if d.kind == "module" and d.type_text == "modules/storage.bicep"}
    assert set(modules) == {"hostStorage", "analyticsStorage"}


def test_analytics_storage_has_its_containers_and_a_cool_tier_rule():
    params = body(declared(MAIN, "module")["analyticsStorage"])["params"]
    containers = params["containerNames"]
    assert isinstance(containers, Expr) and "analyticsContainerName" in containers.text
    assert "deadletterContainerName" in containers.text
    assert "sitesContainerName" in containers.text  # the site models (shared/adapters/site_documents.py)
    assert params["coolTierPrefix"] == Expr("'${analyticsContainerName}/'")
    [policy] = resources_of_type("Microsoft.Storage/storageAccounts/managementPolicies")
    [rule] = body(policy)["properties"]["policy"]["rules"]
    assert rule["definition"]["actions"]["baseBlob"]["tierToCool"] == {"daysAfterModificationGreaterThan": Expr("coolAfterDays")}
    assert rule["definition"]["filters"]["prefixMatch"] == [Expr("coolTierPrefix")]


def test_event_hub_has_the_partition_parameter_the_consumer_group_and_optional_capture():
    assert param_default(MAIN, "eventHubPartitionCount") == 8
    assert param_default(MAIN, "eventHubCaptureEnabled") is False
    [hub] = resources_of_type("Microsoft.EventHub/namespaces/eventhubs")
    assert body(hub)["properties"]["partitionCount"] == Expr("partitionCount")
    capture = body(hub)["properties"]["captureDescription"]
    assert isinstance(capture, Expr) and capture.text.startswith("captureEnabled ?")
    [group] = resources_of_type("Microsoft.EventHub/namespaces/eventhubs/consumergroups")
    assert body(group)["name"] == Expr("consumerGroupName")
    module = body(declared(MAIN, "module")["eventHubs"])["params"]
    assert module["partitionCount"] == Expr("eventHubPartitionCount")
    assert module["consumerGroupName"] == Expr("eventHubConsumerGroupName")


def test_cosmos_capacity_mode_is_a_parameter():
    allowed = declared(MAIN, "param")["cosmosCapacityMode"].decorators["allowed"]
    assert set(allowed) == {"serverless", "autoscale"}
    [cosmos] = resources_of_type("Microsoft.DocumentDB/databaseAccounts")
    capabilities = body(cosmos)["properties"]["capabilities"]
    assert "EnableServerless" in capabilities.text
    [database] = resources_of_type("Microsoft.DocumentDB/databaseAccounts/sqlDatabases")
    assert "autoscaleSettings" in body(database)["properties"]["options"].text


def test_cosmos_containers_match_the_code():
    """Names, partition keys, indexed paths and TTLs as shared/adapters/cosmos.py COSMOS_CONTAINERS declares them."""
    cosmos = MODULES / "cosmos.bicep"
    declared_containers = {c["name"]: c for c in value(declared(cosmos, "var")["cosmosContainers"].value)}
    assert set(declared_containers) == {spec.name for spec in COSMOS_CONTAINERS}
    retention_ttls = {"visits-v2": Expr("visitsTtl")}  # a deployment parameter; the code sets none
    for spec in COSMOS_CONTAINERS:
        container = declared_containers[spec.name]
        assert container["partitionKey"] == spec.partition_key, spec.name
        assert sorted(included["path"] for included in container["includedPaths"]) == sorted(spec.indexed_paths), spec.name
        expected_ttl = spec.default_ttl_s if spec.default_ttl_s is not None else retention_ttls.get(spec.name)
        assert container["defaultTtl"] == expected_ttl, spec.name
    [containers] = resources_of_type("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers")
    source = text_of(containers.value)
    expected_policy = COSMOS_CONTAINERS[0].indexing_policy()
    assert f"indexingMode: '{expected_policy['indexingMode']}'" in source
    excluded = [e["path"] for e in expected_policy["excludedPaths"]]
    assert re.findall(r"path: '([^']+)'", source) == excluded
    assert "includedPaths: container.includedPaths" in source
    assert re.search(r"paths:\s*\[\s*container\.partitionKey\s*\]", source)


# ----------------------------------------------------------------------------------------------- hardening and zones
def test_the_evaluator_follows_bicep_operators():
    env = {"a": True, "b": False, "s": "x"}
    assert evaluate_text(Expr("a && !b ? 'yes' : 'no'"), env) == "yes"
    assert evaluate_text(Expr("(b || s == 'y') ? 1 : 2"), env) == 2
    assert evaluate_text(Expr("s != 'x' ? 'p' : (a ? 'q' : 'r')"), env) == "q"
    with pytest.raises(KeyError):
        evaluate_text(Expr("unknown ? 1 : 2"), env)


def test_key_vault_is_recoverable_and_the_admin_key_expires():
    [vault] = resources_of_type("Microsoft.KeyVault/vaults")
    properties = body(vault)["properties"]
    # soft delete with purge protection: nobody, an attacker with Owner included, can destroy the vault for good
    assert properties["enableSoftDelete"] is True and properties["enablePurgeProtection"] is True
    assert "keyVaultPurgeProtection" not in declared(MAIN, "param")  # no way to turn it off
    keyvault = MODULES / "keyvault.bicep"
    [secret] = [d for d in resources(keyvault) if resource_type(d) == "Microsoft.KeyVault/vaults/secrets"]
    attributes = body(secret)["properties"]["attributes"]
    assert attributes["exp"] == Expr("dateTimeToEpoch(dateTimeAdd(now, 'P${adminApiKeyValidityDays}D'))")
    assert param_default(keyvault, "now") == Expr("utcNow()")  # counted from each provisioning
    validity = declared(MAIN, "param")["adminApiKeyValidityDays"]
    assert validity.decorators["minValue"] <= param_default(MAIN, "adminApiKeyValidityDays") <= validity.decorators["maxValue"]
    assert body(declared(MAIN, "module")["keyVault"])["params"]["adminApiKeyValidityDays"] == Expr("adminApiKeyValidityDays")


def test_the_platform_health_check_probes_the_public_health_route():
    from functions.gate import PUBLIC_PATHS
    from functions.http_api import create_api

    [site] = resources_of_type("Microsoft.Web/sites")
    path = body(site)["properties"]["siteConfig"]["healthCheckPath"]
    assert path in PUBLIC_PATHS  # a probe has no key
    assert "get" in create_api().openapi()["paths"][path]  # the route the app serves


def test_tls_1_2_is_the_minimum_everywhere():
    [site] = resources_of_type("Microsoft.Web/sites")
    site_config = body(site)["properties"]["siteConfig"]
    assert site_config["minTlsVersion"] == site_config["scmMinTlsVersion"] == "1.2"
    assert site_config["ftpsState"] == "Disabled" and body(site)["properties"]["httpsOnly"] is True
    [storage] = resources_of_type("Microsoft.Storage/storageAccounts")
    assert body(storage)["properties"]["minimumTlsVersion"] == "TLS1_2"
    assert body(storage)["properties"]["supportsHttpsTrafficOnly"] is True
    [namespace] = resources_of_type("Microsoft.EventHub/namespaces")
    assert body(namespace)["properties"]["minimumTlsVersion"] == "1.2"
    [cosmos] = resources_of_type("Microsoft.DocumentDB/databaseAccounts")
    assert body(cosmos)["properties"]["minimalTlsVersion"] == "Tls12"


def test_zone_redundancy_is_one_parameter_for_the_plan_cosmos_event_hubs_and_storage():
    assert param_default(MAIN, "zoneRedundant") is False  # a trial pays for no zones
    parameters = json.loads((BICEP_DIR / "main.parameters.json").read_text())["parameters"]
    assert re.fullmatch(r"\$\{SPACEFLOW_ZONE_REDUNDANT=false\}", parameters["zoneRedundant"]["value"])
    modules = {d.name: body(d)["params"] for d in declarations(MAIN) if d.kind == "module"}
    for module in ("functionApp", "cosmos", "eventHubs"):
        assert modules[module]["zoneRedundant"] == Expr("zoneRedundant"), module
    storage_sku = value(declared(MAIN, "var")["storageSku"].value)
    assert evaluate_text(storage_sku, {"zoneRedundant": True}) == "Standard_ZRS"
    assert evaluate_text(storage_sku, {"zoneRedundant": False}) == "Standard_LRS"
    for module in ("hostStorage", "analyticsStorage"):
        assert modules[module]["skuName"] == Expr("storageSku"), module
    # ...and each module puts it where the resource takes it
    [plan] = resources_of_type("Microsoft.Web/serverfarms")
    assert body(plan)["properties"]["zoneRedundant"] == Expr("zoneRedundant")
    [cosmos] = resources_of_type("Microsoft.DocumentDB/databaseAccounts")
    [location] = body(cosmos)["properties"]["locations"]
    assert location["isZoneRedundant"] == Expr("zoneRedundant")
    [namespace] = resources_of_type("Microsoft.EventHub/namespaces")
    assert body(namespace)["properties"]["zoneRedundant"] == Expr("zoneRedundant")
    [storage] = resources_of_type("Microsoft.Storage/storageAccounts")
    assert body(storage)["sku"]["name"] == Expr("skuName")
    assert "Standard_ZRS" in declared(MODULES / "storage.bicep", "param")["skuName"].decorators["allowed"]


def test_each_data_service_sends_its_audit_logs_to_the_workspace():
    diagnostics = MODULES / "diagnostics.bicep"
    settings = {d.name: d for d in resources(diagnostics) if resource_type(d) == "Microsoft.Insights/diagnosticSettings"}
    targets = {d.name: resource_type(d) for d in resources(diagnostics) if is_existing(d)}
    scoped = {}
    for name, setting in settings.items():
        setting_body = body(setting)
        scope = setting_body["scope"].text.split("[")[0]
        scoped[targets[scope]] = {log["category"] for log in setting_body["properties"]["logs"]}
        assert setting_body["properties"]["workspaceId"] == Expr("logAnalyticsWorkspaceId"), name
        assert all(log["enabled"] is True for log in setting_body["properties"]["logs"]), name
        assert "metrics" not in setting_body["properties"], name  # platform metrics stay free in Azure Monitor
    assert scoped == {
        "Microsoft.DocumentDB/databaseAccounts": {"ControlPlaneRequests"},
        "Microsoft.EventHub/namespaces": {"OperationalLogs", "AutoScaleLogs"},
        "Microsoft.KeyVault/vaults": {"AuditEvent"},
        "Microsoft.Storage/storageAccounts/blobServices": {"StorageDelete"},
    }
    # per-request categories would fill the workspace's daily cap at the ingest rate (and stop the app's telemetry)
    assert not {"DataPlaneRequests", "StorageRead", "StorageWrite"} & set().union(*scoped.values())
    params = body(declared(MAIN, "module")["diagnostics"])["params"]
    assert params["logAnalyticsWorkspaceId"] == Expr("monitoring.outputs.logAnalyticsId")
    assert params["storageAccountNames"] == [Expr("hostStorage.outputs.name"), Expr("analyticsStorage.outputs.name")]


# ----------------------------------------------------------------------------------------------- private networking
PRIVATE_DNS_ZONES = {  # private endpoint sub-resource (groupId) -> the zone its address is registered in
    "Sql": "privatelink.documents.azure.com",
    "namespace": "privatelink.servicebus.windows.net",
    "blob": "privatelink.blob.core.windows.net",
    "vault": "privatelink.vaultcore.azure.net",
    "topic": "privatelink.eventgrid.azure.net",
}


def private_endpoints() -> list[dict[str, Any]]:
    return body(declared(MAIN, "module")["privateEndpoints"])["params"]["endpoints"]


def zone_name(reference: Expr) -> str:
    """`privateDnsZoneNames.cosmos` -> the zone name in main.bicep's variable."""
    variable, key = reference.text.split(".")
    return value(declared(MAIN, "var")[variable].value)[key]


def test_network_isolation_is_a_parameter_off_by_default():
    assert param_default(MAIN, "networkIsolation") is False  # a trial stays one command, reachable from anywhere
    parameters = json.loads((BICEP_DIR / "main.parameters.json").read_text())["parameters"]
    assert parameters["networkIsolation"]["value"] == "${SPACEFLOW_NETWORK_ISOLATION=false}"
    modules = {d.name: d for d in declarations(MAIN) if d.kind == "module"}
    for name in ("network", "privateEndpoints"):
        assert modules[name].condition == "(networkIsolation)", name
    for name in ("cosmos", "eventHubs", "keyVault", "eventGrid"):
        assert body(modules[name])["params"]["networkIsolation"] == Expr("networkIsolation"), name


@pytest.mark.parametrize("isolated", [True, False])
@pytest.mark.parametrize("capture", [True, False])
def test_isolated_data_services_take_no_public_traffic(isolated: bool, capture: bool):
    env = {"networkIsolation": isolated, "eventHubCaptureEnabled": capture}
    closed = "Disabled" if isolated else "Enabled"
    for type_name in ("Microsoft.DocumentDB/databaseAccounts", "Microsoft.EventHub/namespaces", "Microsoft.KeyVault/vaults",
                      "Microsoft.EventGrid/topics"):
        [service] = resources_of_type(type_name)
        assert evaluate_text(body(service)["properties"]["publicNetworkAccess"], env) == closed, type_name
    [vault] = resources_of_type("Microsoft.KeyVault/vaults")
    assert evaluate_text(body(vault)["properties"]["networkAcls"]["defaultAction"], env) == ("Deny" if isolated else "Allow")
    [storage] = resources_of_type("Microsoft.Storage/storageAccounts")
    storage_properties = body(storage)["properties"]
    assert storage_properties["publicNetworkAccess"] == Expr("publicNetworkAccess")
    assert storage_properties["networkAcls"] == {"defaultAction": Expr("networkDefaultAction"), "bypass": "AzureServices"}
    modules = {d.name: body(d)["params"] for d in declarations(MAIN) if d.kind == "module"}
    for name in ("hostStorage", "analyticsStorage"):
        assert evaluate_text(modules[name]["networkDefaultAction"], env) == ("Deny" if isolated else "Allow"), name
    assert evaluate_text(modules["hostStorage"]["publicNetworkAccess"], env) == closed
    # Capture writes as a trusted service, let in only through "enabled for selected networks" (none: default Deny)
    analytics = evaluate_text(modules["analyticsStorage"]["publicNetworkAccess"], env)
    assert analytics == ("Enabled" if capture or not isolated else "Disabled")


def test_isolated_app_sends_its_traffic_through_the_vnet_after_the_endpoints_exist():
    function_app = body(declared(MAIN, "module")["functionApp"])
    assert function_app["params"]["virtualNetworkSubnetId"] == Expr(
        "networkIsolation ? network.outputs.appSubnetId : ''")
    assert {e.text for e in function_app["dependsOn"]} == {"appRoles", "privateEndpoints"}
    [site] = resources_of_type("Microsoft.Web/sites")
    assert body(site)["properties"]["virtualNetworkSubnetId"] == Expr(
        "empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId")
    [vnet] = resources_of_type("Microsoft.Network/virtualNetworks")
    subnets = {subnet["name"]: subnet["properties"] for subnet in body(vnet)["properties"]["subnets"]}
    app_subnet, endpoint_subnet = subnets[Expr("appSubnetName")], subnets[Expr("privateEndpointSubnetName")]
    # Flex Consumption integrates only with a subnet delegated to Microsoft.App/environments
    assert [d["properties"]["serviceName"] for d in app_subnet["delegations"]] == ["Microsoft.App/environments"]
    assert endpoint_subnet["privateEndpointNetworkPolicies"] == "Enabled"  # its NSG applies to the endpoints
    nsgs = {d.name for d in resources_of_type("Microsoft.Network/networkSecurityGroups")}
    assert {app_subnet["networkSecurityGroup"]["id"].text, endpoint_subnet["networkSecurityGroup"]["id"].text} == {
        f"{n}.id" for n in nsgs}
    outputs = declared(MODULES / "network.bicep", "output")
    for output, subnet in (("appSubnetId", "appSubnetName"), ("privateEndpointSubnetId", "privateEndpointSubnetName")):
        assert text_of(outputs[output].value) == (
            f"resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, {subnet})"), output


def test_isolated_variant_has_a_private_endpoint_for_every_data_service_the_app_uses():
    endpoints = private_endpoints()
    by_service = {e["serviceId"].text.split(".")[0]: e for e in endpoints}
    assert len(by_service) == len(endpoints) == len({e["name"].text for e in endpoints})
    # Every module whose outputs feed an app setting is a data service the app calls, so it needs an endpoint
    # (the identity is not a network service). A new service in the settings fails here until it has one.
    settings_source = text_of(declared(MAIN, "var")["appSettings"].value)
    used = set(re.findall(r"\b(\w+)\.outputs\.", settings_source)) - {"identity"}
    assert used == set(by_service), f"no private endpoint for {sorted(used - set(by_service))}"
    groups = {service: e["groupId"] for service, e in by_service.items()}
    assert groups == {"cosmos": "Sql", "eventHubs": "namespace", "hostStorage": "blob", "analyticsStorage": "blob",
                      "keyVault": "vault", "eventGrid": "topic"}
    for service, endpoint in by_service.items():
        assert zone_name(endpoint["dnsZoneName"]) == PRIVATE_DNS_ZONES[endpoint["groupId"]], service
    assert body(declared(MAIN, "module")["privateEndpoints"])["params"]["subnetId"] == Expr(
        "network.outputs.privateEndpointSubnetId")


def test_private_dns_zones_are_linked_to_the_vnet_and_used_by_the_endpoints():
    zones = body(declared(MAIN, "module")["network"])["params"]["privateDnsZoneNames"]
    assert sorted(zone_name(z) for z in zones) == sorted(PRIVATE_DNS_ZONES.values())
    [link] = resources_of_type("Microsoft.Network/privateDnsZones/virtualNetworkLinks")
    assert body(link)["properties"] == {"registrationEnabled": False, "virtualNetwork": {"id": Expr("vnet.id")}}
    [zone] = resources_of_type("Microsoft.Network/privateDnsZones")
    assert body(zone)["location"] == "global"
    [group] = resources_of_type("Microsoft.Network/privateEndpoints/privateDnsZoneGroups")
    [config] = body(group)["properties"]["privateDnsZoneConfigs"]
    assert config["properties"]["privateDnsZoneId"] == Expr(
        "resourceId('Microsoft.Network/privateDnsZones', spec.dnsZoneName)")
    [endpoint] = resources_of_type("Microsoft.Network/privateEndpoints")
    endpoint_properties = body(endpoint)["properties"]
    assert endpoint_properties["subnet"] == {"id": Expr("subnetId")}
    [connection] = endpoint_properties["privateLinkServiceConnections"]
    assert connection["properties"] == {"privateLinkServiceId": Expr("spec.serviceId"), "groupIds": [Expr("spec.groupId")]}


# ----------------------------------------------------------------------------------------------- policy scan
# checkov, as an enterprise's cloud team runs it before `azd up`, from its own virtualenv (`make setup` installs
# requirements-checkov.txt there: its dependency pins clash with ours). CHECKOV=/path/to/checkov overrides.
CHECKOV = Path(os.environ.get("CHECKOV", REPO / ".venv-checkov" / "bin" / "checkov"))
# The checks suppressed inline in the Bicep, each with its reason there. Adding one is a decision to make in review:
# it has to be added here too.
SUPPRESSED_CHECKS = {
    "CKV_AZURE_13", "CKV_AZURE_17", "CKV_AZURE_35", "CKV_AZURE_63", "CKV_AZURE_65", "CKV_AZURE_66", "CKV_AZURE_80",
    "CKV_AZURE_88", "CKV_AZURE_101", "CKV_AZURE_109", "CKV_AZURE_131", "CKV_AZURE_206", "CKV_AZURE_212",
    "CKV_AZURE_222", "CKV_AZURE_225", "CKV_AZURE_193",
}
SKIP_COMMENT = re.compile(r"//\s*checkov:skip=([A-Z0-9_]+):(.*)$")


@cache
def checkov_report() -> dict[str, Any]:
    if not CHECKOV.is_file():
        pytest.fail(f"{CHECKOV} is missing: `make setup` installs checkov (requirements-checkov.txt) into .venv-checkov")
    # --skip-download: no call to the vendor's platform (CI has no credentials for it, and needs none)
    command = [str(CHECKOV), "--directory", str(BICEP_DIR), "--framework", "bicep", "--skip-download", "--compact",
               "--output", "json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.stdout.strip(), f"checkov printed no report (exit {result.returncode}): {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    [bicep] = [r for r in reports if r.get("check_type") == "bicep"]
    return bicep


def checkov_results(kind: str) -> list[dict[str, Any]]:
    return checkov_report()["results"].get(kind, [])


def test_checkov_reads_every_template_and_finds_nothing():
    report = checkov_report()
    assert report["summary"]["parsing_errors"] == 0, checkov_results("parsing_errors")
    failures = [f"{r['check_id']} {r['check_name']}: {r['resource']} ({r['file_path']}:{r['file_line_range']})"
                for r in checkov_results("failed_checks")]
    assert not failures, "checkov findings (fix them, or suppress inline with the reason they do not apply):\n" + (
        "\n".join(failures))
    # It did look: every template that declares what checkov has checks for was checked.
    checked = {r["file_path"] for kind in ("passed_checks", "skipped_checks") for r in checkov_results(kind)}
    expected = {"/main.bicep"} | {f"/modules/{m}.bicep" for m in ("cosmos", "eventhubs", "functionapp", "keyvault",
                                                                  "storage", "eventgrid")}
    assert expected <= checked, sorted(expected - checked)


def test_every_suppression_is_inline_with_its_reason_and_still_needed():
    skipped = checkov_results("skipped_checks")
    for result in skipped:
        reason = result["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 8, f"{result['check_id']} on {result['resource']}: no real reason: {reason!r}"
    assert {r["check_id"] for r in skipped} == SUPPRESSED_CHECKS
    # Each `checkov:skip` comment in the templates silences a finding that checkov still reports: none is stale.
    comments = set()
    for path in bicep_files():
        for line in path.read_text().splitlines():
            if match := SKIP_COMMENT.search(line):
                comments.add(("/" + path.relative_to(BICEP_DIR).as_posix(), match.group(1)))
                assert len(match.group(2).split()) >= 8, line.strip()
    assert comments == {(r["file_path"], r["check_id"]) for r in skipped}
    # ...and nothing is suppressed anywhere else (a config file or a --skip-check in the Makefile)
    assert not list(REPO.glob(".checkov.y*ml")) and "--skip-check" not in (REPO / "Makefile").read_text()


# ----------------------------------------------------------------------------------------------- identity and roles
def role_assignments(path: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for decl in resources(path):
        if resource_type(decl) == "Microsoft.Authorization/roleAssignments":
            found[decl.name] = body(decl)
    return found


def test_one_user_assigned_identity_with_least_privilege_roles():
    roles_file = MODULES / "roles.bicep"
    role_vars = value(declared(roles_file, "var")["roles"].value)
    by_id = {v: k for k, v in role_vars.items()}
    assert set(by_id) == set(ROLE_IDS.values()), "role definition ids differ from Azure's built-in roles"
    scope_of = {}
    for name, assignment in role_assignments(roles_file).items():
        role_expr = assignment["properties"]["roleDefinitionId"].text
        role_key = re.search(r"roles\.(\w+)", role_expr).group(1)
        scope_of[role_vars[role_key]] = assignment["scope"]
        assert assignment["properties"]["principalId"] == Expr("principalId")
        assert assignment["properties"]["principalType"] == Expr("principalType")
        assert "principalId" in assignment["name"].text and role_key in assignment["name"].text
    existing = {d.name: resource_type(d) for d in resources(roles_file)}
    expected_scopes = {
        "Azure Event Hubs Data Sender": "Microsoft.EventHub/namespaces/eventhubs",
        "Azure Event Hubs Data Receiver": "Microsoft.EventHub/namespaces/eventhubs",
        "Storage Blob Data Owner": "Microsoft.Storage/storageAccounts",
        "Storage Blob Data Contributor": "Microsoft.Storage/storageAccounts",
        "Key Vault Secrets User": "Microsoft.KeyVault/vaults/secrets",
        "Monitoring Metrics Publisher": "Microsoft.Insights/components",
        "EventGrid Data Sender": "Microsoft.EventGrid/topics",
    }
    for role, scope_type in expected_scopes.items():
        scope = scope_of[ROLE_IDS[role]]
        assert existing[scope.text] == scope_type, f"{role} is scoped to {scope.text}"
    # Owner on the host storage, only Contributor on the analytics data.
    assert scope_of[ROLE_IDS["Storage Blob Data Owner"]] == Expr("hostStorage")
    assert scope_of[ROLE_IDS["Storage Blob Data Contributor"]] == Expr("analyticsStorage")
    [cosmos_assignment] = [body(d) for d in resources(roles_file)
                           if resource_type(d) == "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments"]
    assert declared(roles_file, "var")["cosmosDataContributor"].value.text.decode().strip("'") == COSMOS_BUILT_IN_DATA_CONTRIBUTOR
    assert "sqlRoleDefinitions/${cosmosDataContributor}" in cosmos_assignment["properties"]["roleDefinitionId"].text
    # Every assignment names a resource scope; none anywhere grants Owner, Contributor or User Access Administrator.
    broad = ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c",
             "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9")
    for path in bicep_files():
        for name, assignment in role_assignments(path).items():
            assert "scope" in assignment, f"{path.name}: {name} has no resource scope"
        assert not any(role in path.read_text() for role in broad), path.name


def test_the_identity_and_optionally_the_deploying_user_get_the_roles():
    modules = {d.name: d for d in declarations(MAIN) if d.kind == "module" and d.type_text == "modules/roles.bicep"}
    assert set(modules) == {"appRoles", "userRoles"}
    app = body(modules["appRoles"])["params"]
    assert app["principalId"] == Expr("identity.outputs.principalId")
    assert app["principalType"] == "ServicePrincipal"
    user = body(modules["userRoles"])["params"]
    assert user["principalId"] == Expr("principalId") and modules["userRoles"].condition == "(!empty(principalId))"
    identities = resources_of_type("Microsoft.ManagedIdentity/userAssignedIdentities")
    assert len(identities) == 1
    # The function app waits for its roles (host storage, Key Vault reference, Event Hubs).
    assert "appRoles" in body(declared(MAIN, "module")["functionApp"])["dependsOn"][0].text


# ----------------------------------------------------------------------------------------------- settings
def test_app_settings_are_the_settings_the_code_reads():
    """Bicep appSettings = Settings' names in their Azure (identity) form + the host's identity settings + Key
    Vault references; local.settings.json = the same names in their local (connection string) form."""
    names = setting_names()
    expected = ((names - connection_string_forms(names)) | HOST_IDENTITY_SETTINGS | KEY_VAULT_REFERENCES
                | set(WORKER_SETTINGS))
    assert set(bicep_app_settings()) == expected
    local = set(LOCAL_VALUES) - LOCAL_HOST_SETTINGS - set(WORKER_SETTINGS)
    azure_only = identity_forms(names) | {"AZURE_CLIENT_ID", "APPLICATIONINSIGHTS_CONNECTION_STRING",
                                          "EVENTGRID_TOPIC_ENDPOINT", "GRAPH_NOTIFICATION_URL"}
    assert local == names - azure_only
    # Each local connection string has its identity form in Azure and the other way round.
    for prefix in connection_string_forms(names):
        assert prefix in LOCAL_VALUES
        assert any(n.startswith(prefix + "__") for n in bicep_app_settings()), prefix
    assert not (set(bicep_app_settings()) & connection_string_forms(names)), "a connection string setting in Azure"


def test_the_worker_settings_are_the_same_locally_and_in_azure():
    for name, value in WORKER_SETTINGS.items():
        assert LOCAL_VALUES[name] == value
        assert host_app_settings()[name] == value


def test_trigger_bindings_find_their_settings_in_azure():
    settings = bicep_app_settings()
    for function_name, bindings in function_bindings().items():
        for binding in bindings:
            for key, text in binding.items():
                for name in re.findall(r"%(\w+)%", str(text)):
                    assert name in settings and name in LOCAL_VALUES, f"{function_name}.{key}: {name}"
            if connection := binding.get("connection"):
                assert settings[f"{connection}__credential"] == "managedidentity"
                assert settings[f"{connection}__clientId"] == Expr("identity.outputs.clientId")
                assert (f"{connection}__fullyQualifiedNamespace" in settings
                        or f"{connection}__accountEndpoint" in settings), connection
                assert connection in LOCAL_VALUES


def test_identity_settings_use_the_user_assigned_identity():
    settings = bicep_app_settings()
    client_id = Expr("identity.outputs.clientId")
    assert settings["AZURE_CLIENT_ID"] == client_id
    assert settings["AzureWebJobsStorage__clientId"] == client_id
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__accountName"] == Expr("hostStorage.outputs.name")
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == Expr(
        "'ClientId=${identity.outputs.clientId};Authorization=AAD'")
    assert settings["EVENT_PUBLISHER"] == LOCAL_VALUES["EVENT_PUBLISHER"] == "eventhub"


def test_only_local_development_accepts_a_loopback_identity_provider():
    assert bicep_app_settings()["IDENTITY_ALLOW_LOOPBACK"] == "false"
    assert LOCAL_VALUES["IDENTITY_ALLOW_LOOPBACK"] == "true"  # the devkit's issuer on 127.0.0.1


def test_only_local_development_delivers_webhooks_to_loopback():
    assert bicep_app_settings()["WEBHOOK_ALLOW_LOOPBACK"] == "false"
    assert LOCAL_VALUES["WEBHOOK_ALLOW_LOOPBACK"] == "true"  # the devkit's webhook receiver on 127.0.0.1


def test_key_vault_references_point_at_the_vault():
    settings = bicep_app_settings()
    for name in KEY_VAULT_REFERENCES:
        assert settings[name] == Expr("'@Microsoft.KeyVault(SecretUri=${keyVault.outputs.adminApiKeySecretUri})'")


def test_setting_values_default_to_the_local_values():
    """Parameters documented with a setting's name default to that setting's value in local.settings.json."""
    linked = {}
    for name, decl in declared(MAIN, "param").items():
        description = decl.decorators.get("description", "")
        first_word = re.split(r"[ :]", description)[0] if isinstance(description, str) else ""
        if first_word in setting_names():
            linked[first_word] = name
            assert str(value(decl.value)) == LOCAL_VALUES[first_word], f"{name} defaults to something else than {first_word}"
    assert set(linked) == {"COSMOS_DATABASE", "ANALYTICS_CONTAINER", "DEADLETTER_CONTAINER", "SITES_CONTAINER",
                           "EVENTHUB_NAME",
                           "EVENTHUB_CONSUMER_GROUP", "PRESENCE_TIMEOUT_SECONDS", "PRESENCE_SWEEP_SCHEDULE", "ROLLUP_HOURLY_SCHEDULE",
                           "ROLLUP_DAILY_SCHEDULE", "EVENT_DELIVERY_SCHEDULE", "ANALYTICS_MIN_GROUP_SIZE",
                           "DASHBOARD_SIGNIN_ORIGINS"}
    # ...and each such parameter feeds its setting, directly or through the module that creates the resource.
    settings_source = text_of(declared(MAIN, "var")["appSettings"].value)
    for setting, param in linked.items():
        line = next(line for line in settings_source.splitlines() if line.strip().startswith(setting + ":"))
        holder = line.split(":", 1)[1].strip()
        if not re.search(rf"\b{param}\b", holder):
            module = declared(MAIN, "module")[holder.split(".")[0]]
            assert re.search(rf":\s*{param}\n", text_of(module.node)), f"{setting} is not fed by {param}"


# ----------------------------------------------------------------------------------------------- secrets
SECRET_PATTERNS = re.compile(
    r"listKeys|listConnectionStrings|listAccountSas|listServiceSas|listCredentials|primaryKey|secondaryKey"
    r"|primaryMasterKey|AccountKey=|SharedAccessKey|Password=|connectionStrings", re.IGNORECASE)


def test_no_key_password_or_connection_string_in_any_template():
    for path in bicep_files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            assert not SECRET_PATTERNS.search(line), f"{path.relative_to(REPO)}:{number}: {line.strip()}"


def test_no_secret_in_app_settings():
    for name, setting in bicep_app_settings().items():
        text = setting.text if isinstance(setting, Expr) else str(setting)
        assert not SECRET_PATTERNS.search(text), name
        assert not re.search(r"\badminApiKey\b", text), f"{name} holds the admin key itself"
        if "ConnectionString" in text:
            # Application Insights' connection string names the ingestion endpoint; with local auth off it grants
            # nothing without the identity's token. It is the only one allowed.
            assert name == "APPLICATIONINSIGHTS_CONNECTION_STRING"
            assert text == "applicationInsights.properties.ConnectionString"


def test_secure_parameters_only_reach_key_vault():
    secret_values = [body(d)["properties"]["value"] for d in resources_of_type("Microsoft.KeyVault/vaults/secrets")]
    for path in bicep_files():
        secure = {n for n, d in declared(path, "param").items() if "secure" in d.decorators}
        source = path.read_text()
        for name in secure:
            uses = [line.strip() for line in source.splitlines()
                    if re.search(rf"\b{name}\b", line) and not line.strip().startswith(("param ", "//", "@"))]
            assert uses, f"{path.name}: secure param {name} unused"
            # passed on to a module's @secure() param of the same name, or the value of a Key Vault secret
            allowed = {f"{name}: {name}"} | {f"value: {v.text if isinstance(v, Expr) else v}" for v in secret_values}
            for use in uses:
                assert use in allowed, f"{path.name}: {use}"
                if use.startswith(f"{name}:"):
                    module = next(d for d in declarations(path) if d.kind == "module" and re.search(
                        rf"^\s*{name}: {name}$", text_of(d.node), re.MULTILINE))
                    assert "secure" in declared((path.parent / module.type_text).resolve(), "param")[name].decorators
    assert "secure" in declared(MAIN, "param")["adminApiKey"].decorators
    assert "secure" in declared(MODULES / "keyvault.bicep", "param")["adminApiKey"].decorators


def test_a_generated_or_given_admin_key_is_long_enough_for_the_app():
    [field] = [f for f in Settings.model_fields.values() if f.alias == "ADMIN_API_KEY"]
    min_length = next(m.min_length for m in field.metadata if hasattr(m, "min_length"))
    keyvault = MODULES / "keyvault.bicep"
    assert value(declared(keyvault, "var")["adminApiKeyMinLength"].value) == min_length
    [secret] = [d for d in resources(keyvault) if resource_type(d) == "Microsoft.KeyVault/vaults/secrets"]
    assert body(secret)["properties"]["value"] == Expr(
        "length(adminApiKey) >= adminApiKeyMinLength ? adminApiKey : generatedAdminApiKey")
    generated = value(declared(MAIN, "param")["generatedAdminApiKey"].value)
    assert generated.text.count("replace(newGuid(), '-', '')") * 32 >= min_length  # 32 hex digits per GUID


def test_outputs_are_named_like_the_settings_they_feed_and_hold_no_secret():
    outputs = declared(MAIN, "output")
    names = setting_names()
    settings = bicep_app_settings()
    for name, decl in outputs.items():
        assert name in AZD_OUTPUTS or name in settings, f"output {name} is neither an app setting nor azd's"
        assert not re.search(r"(^|_)(KEY|SECRET|PASSWORD)S?(_|$)|CONNECTION_STRING", name.replace("KEY_VAULT", "")), name
        expression = text_of(decl.value)
        assert not SECRET_PATTERNS.search(expression) and not re.search(r"\badminApiKey\b", expression), name
        assert "ConnectionString" not in expression, name
    # Every endpoint and name the code needs in Azure is an output, with the same value as the setting.
    # Fixed for Azure, not something the devkit takes from an environment (like EVENT_PUBLISHER).
    not_outputs = {"AZURE_CLIENT_ID", "APPLICATIONINSIGHTS_CONNECTION_STRING", "EVENT_PUBLISHER",
                   "IDENTITY_ALLOW_LOOPBACK", "WEBHOOK_ALLOW_LOOPBACK", "CALENDAR_ALLOW_LOOPBACK"} | KEY_VAULT_REFERENCES
    needed = {n for n in names if n in settings and n not in not_outputs}
    assert needed <= set(outputs), sorted(needed - set(outputs))
    for name in needed:
        output_value = value(outputs[name].value)
        assert output_value == settings[name] or isinstance(output_value, Expr), name


# ----------------------------------------------------------------------------------------------- azd
def test_azure_yaml_points_azd_at_the_templates_and_the_function_app():
    config = yaml.safe_load((REPO / "azure.yaml").read_text())
    assert config["infra"]["provider"] == "bicep"
    assert (REPO / config["infra"]["path"] / f"{config['infra']['module']}.bicep") == MAIN
    [(service_name, service)] = config["services"].items()
    assert service == {"project": ".", "language": "python", "host": "function"}
    assert body(declared(MAIN, "module")["functionApp"])["params"]["serviceName"] == service_name
    assert "'azd-service-name': serviceName" in (MODULES / "functionapp.bicep").read_text()


def test_main_parameters_json_sets_only_real_parameters_and_no_secret():
    parameters = json.loads((BICEP_DIR / "main.parameters.json").read_text())["parameters"]
    params = declared(MAIN, "param")
    assert set(parameters) <= set(params), sorted(set(parameters) - set(params))
    required = {name for name, decl in params.items() if decl.value is None}
    assert required <= set(parameters), sorted(required - set(parameters))
    for name, entry in parameters.items():
        # azd substitutes ${VAR} / ${VAR=default} from the environment; nothing is written in literally.
        assert re.fullmatch(r"\$\{\w+(=[\w.-]*)?\}|\$\(secretOrRandomPassword \$\{\w+\} [\w-]+\)", entry["value"]), name
    assert parameters["adminApiKey"]["value"] == "$(secretOrRandomPassword ${AZURE_KEY_VAULT_NAME} admin-api-key)"
    secret_name = value(next(d for d in resources(MODULES / "keyvault.bicep")
                             if resource_type(d) == "Microsoft.KeyVault/vaults/secrets").value)["name"]
    assert secret_name == "admin-api-key"
    assert "AZURE_KEY_VAULT_NAME" in declared(MAIN, "output")


# ----------------------------------------------------------------------------------------------- docker compose
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def emulator_config() -> dict[str, Any]:
    services = compose()["services"]
    [mount] = [v for v in services["eventhubs"]["volumes"] if "/Eventhubs_Emulator/ConfigFiles/Config.json" in v]
    return json.loads((REPO / mount.split(":")[0]).read_text())


def test_compose_runs_the_official_emulators_on_loopback():
    services = compose()["services"]
    images = {name: service["image"].split(":")[0] for name, service in services.items()}
    assert images == {
        "azurite": "mcr.microsoft.com/azure-storage/azurite",
        "eventhubs": "mcr.microsoft.com/azure-messaging/eventhubs-emulator",
        "cosmos": "mcr.microsoft.com/cosmosdb/linux/azure-cosmos-emulator",
    }
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    environment = services["eventhubs"]["environment"]
    assert environment["BLOB_SERVER"] == environment["METADATA_SERVER"] == "azurite"
    assert "azurite" in services["eventhubs"]["depends_on"]


def published(service: str) -> set[int]:
    return {int(port.split(":")[1]) for port in compose()["services"][service]["ports"]}


def test_compose_ports_are_the_ones_local_settings_use():
    def parts(connection: str) -> dict[str, str]:
        return dict(p.split("=", 1) for p in connection.split(";") if "=" in p)

    for key in ("AzureWebJobsStorage", "ANALYTICS_STORAGE"):
        endpoints = [v for k, v in parts(LOCAL_VALUES[key]).items() if k.endswith("Endpoint")]
        assert endpoints and {urlparse(e).port for e in endpoints} <= published("azurite"), key
    assert urlparse(parts(LOCAL_VALUES["COSMOS"])["AccountEndpoint"]).port in published("cosmos")
    eventhub = parts(LOCAL_VALUES["EVENTHUB"])
    assert eventhub["UseDevelopmentEmulator"] == "true" and urlparse(eventhub["Endpoint"]).hostname == "localhost"
    assert 5672 in published("eventhubs")  # AMQP, where the development connection string goes


def test_event_hubs_emulator_config_has_the_hub_and_consumer_group_of_the_settings():
    config = emulator_config()["UserConfig"]
    [namespace] = config["NamespaceConfig"]
    assert namespace["Type"] == "EventHub" and namespace["Name"] == "emulatorNs1"  # the only name it accepts
    [hub] = namespace["Entities"]
    assert hub["Name"] == LOCAL_VALUES["EVENTHUB_NAME"]
    assert [g["Name"] for g in hub["ConsumerGroups"]] == [LOCAL_VALUES["EVENTHUB_CONSUMER_GROUP"]]
    assert hub["PartitionCount"] == str(param_default(MAIN, "eventHubPartitionCount"))  # a string in this schema
    assert config["LoggingConfig"]["Type"] in {"File", "Console", "File,Console", "Console,File"}
    # Azure gets the same names by default.
    assert param_default(MAIN, "eventHubName") == hub["Name"]
    assert param_default(MAIN, "eventHubConsumerGroupName") == hub["ConsumerGroups"][0]["Name"]


def test_compose_cosmos_emulator_uses_the_key_of_local_settings():
    # The Linux emulator's key is fixed: local.settings.json must hold that very key, over https.
    well_known = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
    assert f"AccountKey={well_known};" in LOCAL_VALUES["COSMOS"]
    assert LOCAL_VALUES["COSMOS"].startswith("AccountEndpoint=https://127.0.0.1:")


# ----------------------------------------------------------------------------------------------- workflows
def workflow(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
    loaded["on"] = loaded.pop(True, loaded.get("on"))  # YAML 1.1 reads the key `on` as True
    return loaded


def steps(loaded: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in loaded["jobs"].values() for step in job.get("steps", [])]


def test_ci_workflow_runs_the_same_make_test():
    ci = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    runs = " ".join(step.get("run", "") for step in steps(ci))
    assert ".ci/run" in runs
    assert "make test" in (REPO / ".ci" / "run").read_text()
    inputs = [step.get("with", {}) for step in steps(ci)]
    assert any(str(w.get("python-version")) == "3.11" for w in inputs)
    assert any(str(w.get("node-version")) == "20" for w in inputs)


def test_deploy_workflow_uses_oidc_and_no_stored_secret():
    text = (REPO / ".github" / "workflows" / "deploy.yml").read_text()
    deploy = workflow("deploy.yml")
    assert deploy["permissions"]["id-token"] == "write"
    assert "secrets." not in text, "the deploy workflow must not read stored secrets"
    runs = " ".join(step.get("run", "") for step in steps(deploy))
    assert "azd auth login" in runs and "--federated-credential-provider github" in runs
    assert "azd provision" in runs and "azd deploy" in runs
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID"):
        assert f"vars.{name}" in text, name


# ----------------------------------------------------------------------------------------------- docs
def test_deploy_doc_commands_use_real_parameters():
    doc = (REPO / "docs" / "deploy.md").read_text()
    for needed in ("azd up", "az deployment sub create", "admin-api-key", "Roll back", "Prerequisites"):
        assert needed in doc, needed
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", doc, flags=re.DOTALL)
    [command] = [block for block in blocks if "az deployment sub create" in block]
    given = set(re.findall(r"\b(\w+)=", command))
    params = declared(MAIN, "param")
    assert given <= set(params), sorted(given - set(params))
    required = {name for name, decl in params.items() if decl.value is None}
    assert required <= given, sorted(required - given)
    assert "--template-file infra/bicep/main.bicep" in command


def test_deploy_doc_variables_are_the_ones_main_parameters_json_reads():
    doc = (REPO / "docs" / "deploy.md").read_text()
    parameters = (BICEP_DIR / "main.parameters.json").read_text()
    mentioned = set(re.findall(r"\bSPACEFLOW_\w+", doc))
    read = set(re.findall(r"\$\{(SPACEFLOW_\w+)=", parameters))
    assert {"SPACEFLOW_NETWORK_ISOLATION", "SPACEFLOW_ZONE_REDUNDANT"} <= read
    assert mentioned == read, (sorted(mentioned - read), sorted(read - mentioned))
