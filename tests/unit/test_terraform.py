"""infra/terraform/: the deployment matches topology.json and keeps its security promises.

No terraform binary is needed. The checks parse the .tf files with python-hcl2 and read them statically.
python-hcl2 8.x keeps the quotes around strings and block labels, wraps expressions as ``${...}`` and adds
``__is_block__`` and ``__comments__`` keys. Older versions do none of this. ``_clean`` and ``_expr`` normalise
both forms. Terraform expressions cannot be evaluated here, so ``_expand`` inlines the text of the locals an
expression uses. "Derived from topology.json" then means that the expanded text iterates
``local.topology.<...>``. A resource that does not use for_each is instead checked by its literal name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

from otklik import REPO_ROOT
from otklik.stack.topology import dead_letter_subscription
from shared.config import Settings

TF_DIR = REPO_ROOT / "infra" / "terraform"
TOPOLOGY: dict[str, Any] = json.loads((TF_DIR / "topology.json").read_text(encoding="utf-8"))
FUNCTIONS = set(TOPOLOGY["functions"])
TOPICS = {t["name"] for t in TOPOLOGY["topics"]}
DEAD_LETTER_TOPICS = {t["dead_letter_topic"] for t in TOPOLOGY["topics"]}
SCHEDULED = {name for name, f in TOPOLOGY["functions"].items() if f.get("schedule")}
OWN_FILES = ["versions.tf", "variables.tf", "main.tf", "pubsub.tf", "functions.tf", "outputs.tf"]
SECRETISH = re.compile(r"secret|token|password|passwd|credential|private_key|api_key", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------------
# Normalising python-hcl2's output
# ---------------------------------------------------------------------------------------------------------


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == '"' and text[-1] == '"' else text


def _clean(value: Any) -> Any:
    """Plain Python values: no surrounding quotes, no ``__is_block__``/``__comments__`` bookkeeping keys."""
    if isinstance(value, dict):
        return {_unquote(str(k)): _clean(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


def _expr(value: Any) -> str:
    """The expression text of an attribute: ``${local.x}`` -> ``local.x``. Literals come back as text."""
    if not isinstance(value, str):
        return json.dumps(value)
    if value.startswith("${") and value.endswith("}"):
        depth = 0
        for i, char in enumerate(value[1:], start=1):
            depth += char == "{"
            depth -= char == "}"
            if depth == 0:  # the leading "${" closes here: unwrap only if that is the very end
                return value[2:-1] if i == len(value) - 1 else value
    return value


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return _clean(hcl2.load(fh))  # type: ignore[no-any-return]


@cache
def _documents() -> dict[str, dict[str, Any]]:
    return {path.name: _load(path) for path in sorted(TF_DIR.glob("*.tf"))}


def _blocks(kind: str) -> Iterator[dict[str, Any]]:
    for document in _documents().values():
        yield from document.get(kind, [])


def _labelled(kind: str, type_: str) -> dict[str, dict[str, Any]]:
    """Resources or data sources of one type, by name."""
    found: dict[str, dict[str, Any]] = {}
    for block in _blocks(kind):
        for name, body in block.get(type_, {}).items():
            found[name] = body
    return found


def resources(type_: str) -> dict[str, dict[str, Any]]:
    return _labelled("resource", type_)


def _named(kind: str) -> dict[str, dict[str, Any]]:
    """Variables or outputs, by name."""
    return {name: body for block in _blocks(kind) for name, body in block.items()}


@cache
def _locals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in _blocks("locals"):
        merged.update(block)
    return merged


def _block(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body[name]
    return value[0] if isinstance(value, list) else value  # type: ignore[no-any-return]


def _nested(body: dict[str, Any], name: str) -> list[tuple[dict[str, Any], str | None]]:
    """The ``name`` blocks of a body, static or dynamic, with the dynamic block's for_each (None if static)."""
    found: list[tuple[dict[str, Any], str | None]] = [(b, None) for b in body.get(name, [])]
    for dynamic in body.get("dynamic", []):
        for label, spec in dynamic.items():
            if label == name:
                found += [(content, _expr(spec["for_each"])) for content in spec["content"]]
    return found


def _expand(expression: str, seen: frozenset[str] = frozenset()) -> str:
    """The expression followed by the text of every local it uses, transitively."""
    parts = [expression]
    for name in re.findall(r"\blocal\.(\w+)", expression):
        if name not in seen and name in _locals():
            parts.append(_expand(_expr(_locals()[name]), seen | {name}))
    return "\n".join(parts)


def _iterates(expression: str, collection: str) -> bool:
    return re.search(rf"\bfor\s+[\w, ]+\s+in\s+local\.topology\.{collection}\b", _expand(expression)) is not None


def _for_each(body: dict[str, Any]) -> str | None:
    return _expr(body["for_each"]) if "for_each" in body else None


def _functions() -> dict[str, dict[str, Any]]:
    found = resources("google_cloudfunctions2_function")
    assert found, "no google_cloudfunctions2_function"
    return found


# ---------------------------------------------------------------------------------------------------------
# Files and versions
# ---------------------------------------------------------------------------------------------------------


def test_the_configuration_files_exist_and_parse() -> None:
    for name in [*OWN_FILES, "example.tfvars", "README.md"]:
        assert (TF_DIR / name).is_file(), f"infra/terraform/{name} is missing"
    for name in OWN_FILES:
        assert _documents()[name], f"{name} parsed to nothing"


def test_versions_pin_terraform_the_google_provider_and_archive() -> None:
    [terraform] = _documents()["versions.tf"]["terraform"]
    assert re.fullmatch(r">=\s*1\.5(\.0)?", terraform["required_version"])
    providers: dict[str, Any] = {}
    for block in terraform["required_providers"]:
        providers.update(block)
    assert providers["google"]["source"] == "hashicorp/google"
    assert re.fullmatch(r"~>\s*6\.0", providers["google"]["version"])
    assert providers["archive"]["source"] == "hashicorp/archive"


def test_topology_json_is_the_source_of_truth() -> None:
    topology = _expr(_locals()["topology"])
    assert "jsondecode(" in topology and "file(" in topology and "topology.json" in topology


# ---------------------------------------------------------------------------------------------------------
# Functions, topics, subscriptions
# ---------------------------------------------------------------------------------------------------------


def test_every_topology_function_is_a_python311_gen2_function() -> None:
    covered: set[str] = set()
    for name, body in _functions().items():
        build = _block(body, "build_config")
        assert build["runtime"] == "python311"
        for_each = _for_each(body)
        if for_each is None:
            covered.add(name)
            assert build["entry_point"] == TOPOLOGY["functions"][name]["entry_point"]
        else:
            assert _iterates(for_each, "functions"), f"{name}: for_each is not derived from topology.json"
            assert re.search(r"\bentry_point\s*=\s*\w+\.entry_point\b", _expand(for_each))
            assert _expr(build["entry_point"]) == "each.value.entry_point"
            covered |= FUNCTIONS
    assert covered == FUNCTIONS


def test_pubsub_functions_get_a_retrying_messagepublished_trigger() -> None:
    assert {name for name, f in TOPOLOGY["functions"].items() if f["trigger"] == "pubsub"}, "nothing to check"
    for name, body in _functions().items():
        triggers = _nested(body, "event_trigger")
        expected = body.get("for_each") is not None or TOPOLOGY["functions"][name]["trigger"] == "pubsub"
        assert bool(triggers) == expected, f"{name}: event_trigger presence does not match its trigger"
        for trigger, only_if in triggers:
            assert trigger["event_type"] == "google.cloud.pubsub.topic.v1.messagePublished"
            assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
            assert "google_pubsub_topic." in _expr(trigger["pubsub_topic"])
            assert "google_service_account." in _expr(trigger["service_account_email"])
            if only_if is not None:
                assert '"pubsub"' in only_if, "the dynamic event_trigger must be limited to pubsub functions"


def test_functions_get_the_project_and_topic_variables_that_settings_reads() -> None:
    for topic in TOPOLOGY["topics"]:
        field = topic["settings_variable"].removeprefix("OTKLIK_").lower()
        assert field in Settings.model_fields, f"{topic['settings_variable']} is not read by shared/config.py"
    for body in _functions().values():
        env = _expand(_expr(_block(body, "service_config")["environment_variables"]))
        assert "OTKLIK_PROJECT_ID" in env
        assert re.search(r"\bfor\s+(\w+)\s+in\s+local\.topology\.topics\s*:\s*\1\.settings_variable\b", env)


def test_every_topic_and_dead_letter_topic_is_created() -> None:
    covered: set[str] = set()
    for name, body in resources("google_pubsub_topic").items():
        for_each = _for_each(body)
        if for_each is None:
            covered.add(body["name"])
            continue
        expanded = _expand(for_each)
        for attribute, names in (("name", TOPICS), ("dead_letter_topic", DEAD_LETTER_TOPICS)):
            if re.search(rf"\bfor\s+(\w+)\s+in\s+local\.topology\.topics\s*:\s*\1\.{attribute}\b", expanded):
                covered |= names
        assert _expr(body["name"]) == "each.key", f"google_pubsub_topic.{name} must be named by its key"
    assert covered >= TOPICS | DEAD_LETTER_TOPICS, f"not created: {sorted(TOPICS | DEAD_LETTER_TOPICS - covered)}"


def test_each_dead_letter_topic_has_a_pull_subscription_that_never_expires() -> None:
    pulls = [
        body
        for body in resources("google_pubsub_subscription").values()
        if "for_each" in body and "dead_letter_topic" in _expand(_expr(body["for_each"]))
    ]
    assert len(pulls) == 1, "expected one for_each subscription over the dead-letter topics"
    [pull] = pulls
    assert "push_config" not in pull, "a dead-letter subscription is pulled by an operator"
    # The same name as on the local stack.
    assert pull["name"].replace("${each.key}", "x") == dead_letter_subscription("x")
    assert _block(pull, "expiration_policy")["ttl"] == ""


def test_sources_are_content_addressed_in_a_private_versioned_bucket() -> None:
    [bucket] = resources("google_storage_bucket").values()
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert _block(bucket, "versioning")["enabled"] is True
    [archive] = _labelled("data", "archive_file").values()
    assert _expr(archive["type"]) == "zip"
    [source] = resources("google_storage_bucket_object").values()
    assert re.search(r"data\.archive_file\.\w+(\[each\.key\])?\.output_(md5|sha|sha256|base64sha256)", source["name"])


def test_the_required_apis_are_enabled() -> None:
    enabled: set[str] = set()
    for body in resources("google_project_service").values():
        enabled |= set(re.findall(r"[a-z]+\.googleapis\.com", _expr(body.get("for_each", body.get("service")))))
    apis = ("cloudfunctions", "run", "cloudbuild", "artifactregistry", "eventarc", "pubsub", "firestore")
    required = {f"{api}.googleapis.com" for api in (*apis, "cloudscheduler", "secretmanager")}
    assert required <= enabled, f"not enabled: {sorted(required - enabled)}"


# ---------------------------------------------------------------------------------------------------------
# Identities and least privilege
# ---------------------------------------------------------------------------------------------------------


def test_each_function_runs_as_its_own_service_account() -> None:
    accounts = resources("google_service_account")
    used: list[str] = []
    for name, body in _functions().items():
        email = _expr(_block(body, "service_config")["service_account_email"])
        match = re.fullmatch(r"google_service_account\.(\w+)(\[each\.key\])?\.email", email)
        assert match, f"{name}: service_account_email must be a google_service_account of this configuration"
        account = accounts[match[1]]
        if match[2]:  # one account per for_each key
            assert _iterates(_expr(account["for_each"]), "functions")
            assert "${each.key}" in account["account_id"]
            for function in FUNCTIONS:
                account_id = account["account_id"].replace("${each.key}", function)
                assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account_id), account_id
            used += sorted(FUNCTIONS)
        else:
            used.append(match[1])
    assert len(used) == len(set(used)) == len(FUNCTIONS), "functions share a service account"


def test_project_level_roles_are_only_the_unavoidable_ones() -> None:
    # Firestore has no finer IAM resource than the project, and builds need the project-wide builder role.
    # Everything else (publishing, invoking, reading secrets) is granted on one topic, service or secret.
    allowed = {"roles/datastore.user", "roles/run.builder"}
    for type_ in ("google_project_iam_member", "google_project_iam_binding"):
        for name, body in resources(type_).items():
            granted = f"{_expr(body.get('role'))} {_expr(body.get('for_each', ''))}"
            roles = set(re.findall(r"roles/[\w.]+", granted))
            assert roles and roles <= allowed, f"{type_}.{name} grants {sorted(roles - allowed)} on the project"
    assert not resources("google_project_iam_policy"), "an authoritative project policy would wipe other grants"


def test_functions_publish_only_to_the_topic_topology_json_gives_them() -> None:
    [publisher] = [b for b in resources("google_pubsub_topic_iam_member").values() if b["role"].endswith("publisher")]
    assert _iterates(_expr(publisher["for_each"]), "topics")
    assert re.search(r"google_service_account\.\w+\[each\.value\.published_by\]\.email", publisher["member"])


def test_only_eventarc_and_scheduler_may_invoke_and_each_only_its_functions() -> None:
    invokers = {
        name: body
        for type_ in ("google_cloud_run_service_iam_member", "google_cloud_run_v2_service_iam_member")
        for name, body in resources(type_).items()
        if body["role"] == "roles/run.invoker"
    }
    assert invokers, "nobody may invoke the functions"
    members = set()
    for name, body in invokers.items():
        assert "[each.key]" not in body["member"], f"{name}: a function must not invoke the functions"
        members.add(body["member"])
        expanded = _expand(_expr(body["for_each"]))
        assert re.search(r"\.schedule\s*!=\s*null|\.trigger\s*==\s*\"pubsub\"", expanded), name
    assert len(members) == len(invokers) == 2, "one invoker identity for Eventarc, one for Scheduler"


def test_scheduled_functions_are_called_by_cloud_scheduler_with_an_oidc_token() -> None:
    assert SCHEDULED, "nothing to check"
    [job] = resources("google_cloud_scheduler_job").values()
    assert re.search(r"\bif\s+\w+\.schedule\s*!=\s*null", _expand(_expr(job["for_each"])))
    assert _expr(job["schedule"]) == "each.value.schedule"
    target = _block(job, "http_target")
    assert target["http_method"] == "POST"
    oidc = _block(target, "oidc_token")
    sender = _expr(oidc["service_account_email"])
    assert re.fullmatch(r"google_service_account\.\w+\.email", sender), "one scheduler identity, not a function's"
    scheduler_invokers = [
        body
        for type_ in ("google_cloud_run_service_iam_member", "google_cloud_run_v2_service_iam_member")
        for body in resources(type_).values()
        if sender in body["member"]
    ]
    assert len(scheduler_invokers) == 1 and "schedule" in _expand(_expr(scheduler_invokers[0]["for_each"]))


# ---------------------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------------------


def test_no_secret_value_is_in_terraform() -> None:
    assert not resources("google_secret_manager_secret_version"), "a secret version would put its value in state"
    for path in TF_DIR.glob("*.tf*"):
        text = path.read_text(encoding="utf-8")
        assert "secret_data" not in text, path.name
        assert not re.search(r"vk1\.a\.|-----BEGIN", text), f"{path.name} holds what looks like a credential"


def test_the_vk_token_is_a_secret_environment_variable_of_ingest_only() -> None:
    for name, body in _functions().items():
        secret_envs = _nested(_block(body, "service_config"), "secret_environment_variables")
        assert secret_envs, f"{name}: no secret_environment_variables"
        for env, for_each in secret_envs:
            assert _expr(env["version"]) == "latest" or env["version"].isdigit()
            assert "google_secret_manager_secret" in _expr(env["secret"]) or "var.secrets" in _expr(env["secret"])
            if for_each is None:
                assert (env["key"] == "OTKLIK_VK_TOKEN") == (name == "ingest")
                continue
            # dynamic over a local map: function -> {variable -> secret id}
            match = re.fullmatch(r"local\.(\w+)\[each\.key\]", for_each)
            assert match, f"{name}: dynamic secret_environment_variables must iterate local.<map>[each.key]"
            per_function = _locals()[match[1]]
            assert set(per_function) == FUNCTIONS
            assert "OTKLIK_VK_TOKEN" in json.dumps(per_function["ingest"])
            for other in FUNCTIONS - {"ingest"}:
                assert "OTKLIK_VK_TOKEN" not in json.dumps(per_function[other]), f"{other} must not see the token"


def test_secrets_are_readable_only_by_the_function_that_needs_them() -> None:
    accessors = resources("google_secret_manager_secret_iam_member")
    assert accessors, "the functions cannot read their secrets"
    for name, body in accessors.items():
        assert body["role"] == "roles/secretmanager.secretAccessor"
        assert "google_service_account.function[" in body["member"], f"{name}: grant it to a function's account"


def test_outputs_expose_no_secret() -> None:
    outputs = _named("output")
    assert {"function_uris", "topic_names"} <= set(outputs)
    for name, body in outputs.items():
        assert not SECRETISH.search(name), f"output {name} is named like a secret"
        assert body.get("sensitive") in (None, False, "false"), f"output {name} is marked sensitive"
        value = json.dumps(body["value"])
        assert not SECRETISH.search(value), f"output {name} is derived from a secret: {value}"


# ---------------------------------------------------------------------------------------------------------
# Variables and the example
# ---------------------------------------------------------------------------------------------------------


def _type_attributes(variable: str) -> set[str]:
    """Top-level attribute names of an object-typed variable."""
    type_ = _expr(_named("variable")[variable]["type"])
    inner = type_[type_.index("({") + 2 : type_.rindex("})")]
    depth, names, token = 0, set(), ""
    for char in inner:
        depth += char in "({["
        depth -= char in ")}]"
        if depth == 0 and char == "=":  # "<previous value>, <name> =": the name is after the last comma
            names.add(token.split(",")[-1].strip())
            token = ""
        elif depth == 0:
            token += char
    return names


def test_every_variable_is_typed_and_described() -> None:
    variables = _named("variable")
    assert {"project_id", "region", "functions", "source_dir", "settings", "secrets"} <= set(variables)
    for name, body in variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert body.get("description"), f"variable {name} has no description"
    assert variables["source_dir"]["default"] == "../../build/functions"


def test_function_sizing_covers_every_topology_function() -> None:
    assert _type_attributes("functions") == FUNCTIONS


def test_settings_are_non_secret_fields_of_shared_config() -> None:
    attributes = _type_attributes("settings")
    never_here = {"vk_token", "smtp_password", "local_mode", "project_id", "config_dir"}
    never_here |= {t["settings_variable"].removeprefix("OTKLIK_").lower() for t in TOPOLOGY["topics"]}
    assert attributes, "settings has no attributes"
    assert attributes <= set(Settings.model_fields) - never_here, sorted(attributes - set(Settings.model_fields))


def test_the_example_tfvars_sets_declared_variables_and_no_secret() -> None:
    name = "example.tfvars"
    values = _load(TF_DIR / name)
    variables = _named("variable")
    assert set(values) <= set(variables), sorted(set(values) - set(variables))
    required = {n for n, body in variables.items() if "default" not in body}
    assert required <= set(values), f"{name} misses {sorted(required - set(values))}"
    for secret_id in values.get("secrets", {}).values():
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,255}", secret_id), "secrets holds Secret Manager ids, not values"
    assert not set(values.get("settings", {})) & {"vk_token", "smtp_password", "local_mode"}
