"""infra/terraform/: the deployment matches topology.json and keeps its security promises.

No terraform binary is needed. The checks parse the .tf files with python-hcl2 and read them statically.
python-hcl2 8.x keeps the quotes around strings and block labels, wraps expressions as ``${...}`` and adds
``__is_block__`` and ``__comments__`` keys. Older versions do none of this. ``_clean`` and ``_expr`` normalise
both forms. Terraform expressions cannot be evaluated here, so ``_expand`` inlines the text of the locals an
expression uses. "Derived from topology.json" then means that the expanded text iterates
``local.topology.<...>``. A resource that does not use for_each is instead checked by its literal name.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import subprocess
import textwrap
import typing
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from pydantic import SecretStr

from otklik import REPO_ROOT
from otklik.stack.topology import dead_letter_subscription
from shared.adapters.firestore import (
    INCIDENTS,
    PUBLISHED_POSTS,
    VK_CALLBACK_EVENTS,
    FirestoreIncidents,
    FirestoreMarkers,
)
from shared.config import Settings

TF_DIR = REPO_ROOT / "infra" / "terraform"
TOPOLOGY: dict[str, Any] = json.loads((TF_DIR / "topology.json").read_text(encoding="utf-8"))
FUNCTIONS = set(TOPOLOGY["functions"])
TOPICS = {t["name"] for t in TOPOLOGY["topics"]}
DEAD_LETTER_TOPICS = {t["dead_letter_topic"] for t in TOPOLOGY["topics"]}
SCHEDULED = {name for name, f in TOPOLOGY["functions"].items() if f.get("schedule")}
PUBLIC = {name for name, f in TOPOLOGY["functions"].items() if f.get("public") is True}
OWN_FILES = [
    "versions.tf",
    "variables.tf",
    "main.tf",
    "pubsub.tf",
    "functions.tf",
    "firestore.tf",
    "monitoring.tf",
    "outputs.tf",
]
SECRETISH = re.compile(r"secret|token|password|passwd|credential|private_key|api_key", re.IGNORECASE)
# The SecretStr settings of shared/config.py: only ever Secret Manager secret environment variables.
SECRET_FIELDS = {
    name
    for name, field in Settings.model_fields.items()
    if SecretStr in (field.annotation, *typing.get_args(field.annotation))
}
# Which functions read each secret (shared/bootstrap.py), and whether a deployment may leave it out.
SECRET_OWNERS = {
    "OTKLIK_VK_TOKEN": {"ingest"},
    "OTKLIK_TELEGRAM_BOT_TOKEN": {"ingest"},
    "OTKLIK_MAX_BOT_TOKEN": {"ingest"},
    "OTKLIK_OK_ACCESS_TOKEN": {"ingest"},
    "OTKLIK_OK_APPLICATION_SECRET_KEY": {"ingest"},
    "OTKLIK_VK_CALLBACK_SECRET": {"vk_callback"},
    "OTKLIK_INBOX_TOKEN": {"inbox"},
    # Everything that sends e-mail: route (notifications), remind (reminders, escalations), digest.
    "OTKLIK_SMTP_PASSWORD": {"route", "remind", "digest"},
    "OTKLIK_WEBHOOK_SECRETS": {"route", "remind"},
    # route posts departments' answers under the authors' VK posts; remind asks the follow-up question there.
    "OTKLIK_VK_REPLY_TOKEN": {"route", "remind"},
    # route signs the answer links it puts in e-mails; department_api checks them.
    "OTKLIK_LINK_SIGNING_KEY": {"route", "department_api", "digest"},
}
OPTIONAL_SECRETS = {
    "OTKLIK_VK_REPLY_TOKEN",
    "OTKLIK_TELEGRAM_BOT_TOKEN",
    "OTKLIK_MAX_BOT_TOKEN",
    "OTKLIK_OK_ACCESS_TOKEN",
    "OTKLIK_OK_APPLICATION_SECRET_KEY",
    "OTKLIK_SMTP_PASSWORD",
}


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


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _resource_name(template: str, function: str) -> str:
    """A name template of a for_each over the functions (``otklik-${each.value.resource_name}``) for one function."""
    if "${each.value.resource_name}" in template:
        # Google names take no "_": local.functions must derive resource_name from the key with "_" as "-".
        assert re.search(r"\bresource_name\s*=\s*replace\(name,\s*\"_\",\s*\"-\"\)", _expand("local.functions"))
        return template.replace("${each.value.resource_name}", function.replace("_", "-"))
    return template.replace("${each.key}", function)


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


def test_state_is_kept_in_a_gcs_bucket_named_outside_the_configuration() -> None:
    [terraform] = _documents()["versions.tf"]["terraform"]
    [backend] = terraform["backend"]
    assert set(backend) == {"gcs"} and not backend["gcs"], "partial configuration: no bucket written in the module"
    example = _load(TF_DIR / "backend.example.hcl")
    assert set(example) == {"bucket", "prefix"}
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    # -reconfigure: TFBACKEND may name another environment's state; never migrate one state into the other.
    assert re.search(r"init -input=false -reconfigure -backend-config=\$\(abspath \$\(TFBACKEND\)\)", makefile)
    ignored = (REPO_ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "infra/terraform/backend.hcl" in ignored


def test_topology_json_is_the_source_of_truth() -> None:
    topology = _expr(_locals()["topology"])
    assert "jsondecode(" in topology and "file(" in topology and "topology.json" in topology


def test_topology_names_the_publishers_of_each_topic_and_the_public_functions() -> None:
    for topic in TOPOLOGY["topics"]:
        assert "published_by" not in topic, "published_by was replaced by the publishers list"
        publishers = topic["publishers"]
        assert publishers and len(publishers) == len(set(publishers)) and set(publishers) <= FUNCTIONS, topic["key"]
        # A function triggered by a topic must not publish to it: every message would trigger it again.
        triggered = {n for n, f in TOPOLOGY["functions"].items() if f.get("topic") == topic["key"]}
        assert not set(publishers) & triggered, f"{topic['key']}: {sorted(set(publishers) & triggered)} loop"
    for name, function in TOPOLOGY["functions"].items():
        assert function.get("public", False) in (True, False), f"{name}: public must be true or false"
    assert PUBLIC, "nothing to check"
    for name in PUBLIC:
        # Public means called by others over HTTP: never a Pub/Sub or a scheduled function.
        assert TOPOLOGY["functions"][name]["trigger"] == "http" and not TOPOLOGY["functions"][name].get("schedule")


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
            names = {_resource_name(body["name"], function) for function in FUNCTIONS}
            assert len(names) == len(FUNCTIONS), "two functions get the same name"
            for service in names:  # also the name of the Cloud Run service behind it
                assert re.fullmatch(r"[a-z]([-a-z0-9]{0,47}[a-z0-9])?", service), service
            covered |= FUNCTIONS
    assert covered == FUNCTIONS


def test_no_function_has_an_eventarc_trigger() -> None:
    # Eventarc-managed subscriptions take no dead-letter policy from Terraform (provider issue #17697): the
    # Pub/Sub-triggered functions are reached by our own push subscriptions instead (next test).
    for name, body in _functions().items():
        assert not _nested(body, "event_trigger"), f"{name} has an event_trigger"


def test_every_topology_subscription_pushes_to_its_function_with_backoff_and_a_dead_letter_topic() -> None:
    pushes = [b for b in resources("google_pubsub_subscription").values() if "push_config" in b]
    assert len(pushes) == 1, "expected one for_each push subscription over topology.json's subscriptions"
    [push] = pushes
    expanded = _flat(_expand(_expr(push["for_each"])))
    assert "local.topology.topics" in expanded and "t.subscriptions" in expanded, expanded
    assert "topic = t.name" in expanded and "dead_letter_topic = t.dead_letter_topic" in expanded, expanded
    assert _expr(push["name"]) == "each.key"
    assert _expr(push["topic"]) == "google_pubsub_topic.this[each.value.topic].id"
    # The push request times out at the ack deadline: never before the function does.
    assert _flat(_expr(push["ack_deadline_seconds"])) == (
        "max(each.value.ack_deadline_seconds, local.functions[each.value.push_to].timeout_seconds)"
    )
    config = _block(push, "push_config")
    endpoint = "google_cloudfunctions2_function.function[each.value.push_to].service_config[0].uri"
    assert _expr(config["push_endpoint"]) == endpoint
    token = _block(config, "oidc_token")
    assert _expr(token["service_account_email"]) == "google_service_account.pusher.email"
    assert _expr(token["audience"]) == endpoint
    retry = _block(push, "retry_policy")
    assert retry["minimum_backoff"] == "${each.value.min_backoff_seconds}s"
    assert retry["maximum_backoff"] == "${each.value.max_backoff_seconds}s"
    dead = _block(push, "dead_letter_policy")
    assert _expr(dead["dead_letter_topic"]) == "google_pubsub_topic.this[each.value.dead_letter_topic].id"
    assert _expr(dead["max_delivery_attempts"]) == "each.value.max_delivery_attempts"
    # Every subscription of topology.json carries what the resource reads.
    for topic in TOPOLOGY["topics"]:
        for sub in topic["subscriptions"]:
            assert sub["push_to"] in FUNCTIONS and TOPOLOGY["functions"][sub["push_to"]]["trigger"] == "pubsub"
            assert 5 <= sub["max_delivery_attempts"] <= 100, "Pub/Sub allows 5 to 100 delivery attempts"
            assert 0 <= sub["min_backoff_seconds"] <= sub["max_backoff_seconds"] <= 600


def test_the_pubsub_service_agent_may_dead_letter_and_nothing_more() -> None:
    agent = _flat(_expr(_locals()["pubsub_service_agent"]))
    assert agent == "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    [publisher] = [b for b in resources("google_pubsub_topic_iam_member").values() if "dead_letter" in b["for_each"]]
    assert publisher["role"] == "roles/pubsub.publisher" and "pubsub_service_agent" in publisher["member"]
    [subscriber] = resources("google_pubsub_subscription_iam_member").values()
    assert subscriber["role"] == "roles/pubsub.subscriber" and "push_subscriptions" in subscriber["for_each"]
    [token] = resources("google_service_account_iam_member").values()
    assert token["role"] == "roles/iam.serviceAccountTokenCreator"
    assert _expr(token["service_account_id"]) == "google_service_account.pusher.name"


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
        if "for_each" in body and "push_config" not in body and "dead_letter_topic" in _expand(_expr(body["for_each"]))
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
    apis = ("cloudfunctions", "run", "cloudbuild", "artifactregistry", "pubsub", "firestore", "monitoring")
    required = {f"{api}.googleapis.com" for api in (*apis, "cloudscheduler", "secretmanager")}
    assert required <= enabled, f"not enabled: {sorted(required - enabled)}"


# ---------------------------------------------------------------------------------------------------------
# Firestore: indexes and TTL
# ---------------------------------------------------------------------------------------------------------


def _query_of(method: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The (field, operator) filters and (field, direction) orders of a method building one Firestore query."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
    filters, orders = [], []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if callee == "FieldFilter":
            field, op = (ast.literal_eval(a) for a in node.args[:2])
            filters.append((field, op))
        elif callee == "order_by":
            direction = "ASCENDING"
            for arg in [*node.args[1:], *(k.value for k in node.keywords if k.arg == "direction")]:
                direction = "DESCENDING" if "DESCENDING" in ast.unparse(arg) else "ASCENDING"
            orders.append((ast.literal_eval(node.args[0]), direction))
    return filters, orders


def _firestore_database(body: dict[str, Any]) -> None:
    """The functions' database (settings.firestore_database, "(default)" when unset), not a fixed one."""
    expanded = _flat(_expand(_expr(body.get("database", '"(default)"'))))
    assert 'coalesce(var.settings.firestore_database, "(default)")' in expanded, expanded


# Every query method of the adapters. A query on one field is served by Firestore's automatic single-field
# indexes; one on several fields needs a composite index declared in firestore.tf.
QUERIES = [
    FirestoreIncidents.due_for_check,
    FirestoreIncidents.undelivered_since,
    FirestoreIncidents.open_incidents,
    FirestoreIncidents.created_between,
    FirestoreIncidents.created_in_range_page,  # open311
    FirestoreIncidents.group_candidates,  # classify's grouping
    FirestoreIncidents.group_stored_since,  # route's check for twins
]


def test_every_query_method_is_listed_here() -> None:
    source = inspect.getsource(FirestoreIncidents)
    listed = {q.__name__ for q in QUERIES}
    methods = [getattr(FirestoreIncidents, m) for m in re.findall(r"^    def (\w+)\(", source, re.M)]
    building = {m.__name__ for m in methods if ".where(" in inspect.getsource(m)}
    assert building == listed


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.__name__)
def test_each_query_has_its_index(query: Any) -> None:
    filters, orders = _query_of(query)
    fields = {f for f, _ in filters} | {f for f, _ in orders}
    assert filters and orders, f"could not read the query of {query.__name__}"
    if len(fields) == 1:
        return  # Firestore's automatic single-field index
    equality = {field for field, op in filters if op in ("==", "in")}
    arrays = {field for field, op in filters if op in ("array_contains", "array_contains_any")}
    ranges = {field for field, op in filters if op in ("<", "<=", ">", ">=", "!=", "not-in")}
    # Firestore: equality fields first (any order), then the range/order field(s) in the order_by order.
    tail = [(field, direction) for field, direction in orders]
    tail += [(field, "ASCENDING") for field in sorted(ranges - {f for f, _ in orders})]
    matching = []
    for name, body in resources("google_firestore_index").items():
        if body["collection"] != INCIDENTS or body.get("query_scope", "COLLECTION") != "COLLECTION":
            continue
        fields = [(f["field_path"], f.get("order")) for f in body["fields"]]
        head, rest = fields[: len(fields) - len(tail)], fields[len(fields) - len(tail) :]
        contains = {f["field_path"] for f in body["fields"] if f.get("array_config") == "CONTAINS"}
        if {f for f, _ in head} == equality | arrays and len(head) == len(equality | arrays) and rest == tail:
            assert contains == arrays, f"{name}: array fields need array_config CONTAINS, and only they"
            assert all(order in ("ASCENDING", "DESCENDING") for f, order in head if f not in arrays), name
            _firestore_database(body)
            matching.append(name)
    assert len(matching) == 1, f"no composite index on {INCIDENTS} for {sorted(equality)} then {tail}"


def test_the_database_is_native_protected_from_deletion_and_recoverable() -> None:
    [database] = resources("google_firestore_database").values()
    assert _expr(database["count"]) == "var.firestore.create_database ? 1 : 0"
    _firestore_database({"database": database["name"]})
    assert database["type"] == "FIRESTORE_NATIVE"
    assert _expr(database["location_id"]) == "coalesce(var.firestore.location, var.region)"
    assert database["point_in_time_recovery_enablement"] == "POINT_IN_TIME_RECOVERY_ENABLED"
    assert database["delete_protection_state"] == "DELETE_PROTECTION_ENABLED"
    assert database["deletion_policy"] == "ABANDON"
    assert database["concurrency_mode"] == "PESSIMISTIC"
    [backup] = resources("google_firestore_backup_schedule").values()
    _firestore_database(backup)
    # A weekly schedule keeps a backup up to 14 weeks (a daily one up to 7 days).
    assert _block(backup, "weekly_recurrence")["day"] == "SUNDAY" and backup["retention"] == f"{14 * 7 * 86400}s"
    # Everything on the database waits for it when Terraform creates it.
    on_database = [
        *resources("google_firestore_index").values(),
        *resources("google_firestore_field").values(),
        backup,
    ]
    for body in on_database:
        assert "google_firestore_database.this" in [_expr(d) for d in body["depends_on"]]


def test_markers_expire_through_ttl_policies() -> None:
    assert '"expire_at"' in inspect.getsource(FirestoreMarkers.mark)
    covered: set[str] = set()
    for name, body in resources("google_firestore_field").items():
        if "ttl_config" not in body:
            continue
        assert body["field"] == "expire_at", name
        assert body.get("index_config") == [{}], f"{name}: a TTL timestamp needs no single-field indexes"
        _firestore_database(body)
        collection = _expr(body["collection"])
        if collection == "each.key":
            covered |= set(re.findall(r'"(\w+)"', _expr(body["for_each"])))
        else:
            covered.add(collection)
    assert covered == {PUBLISHED_POSTS, VK_CALLBACK_EVENTS}, sorted(covered)


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
            ids = {_resource_name(account["account_id"], function) for function in FUNCTIONS}
            assert len(ids) == len(FUNCTIONS), "two functions get the same account id"
            for account_id in ids:
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


def test_functions_publish_only_to_the_topics_whose_publishers_name_them() -> None:
    [publisher] = [
        b
        for b in resources("google_pubsub_topic_iam_member").values()
        if b["role"].endswith("publisher") and "google_service_account.function" in b["member"]
    ]
    expanded = _flat(_expand(_expr(publisher["for_each"])))
    assert _iterates(_expr(publisher["for_each"]), "topics")
    # One grant per (topic, function in that topic's publishers), on that topic, to that function's account.
    pattern = r"for (\w+) in local\.topology\.topics : \{ ?for (\w+) in \1\.publishers : .*?=> ?\{(.*?)\}"
    match = re.search(pattern, expanded)
    assert match, f"the publisher grants must iterate each topic's publishers: {expanded}"
    topic_var, function_var, entry = match.groups()
    fields = dict(re.findall(r"(\w+) = ([\w.]+)", entry))
    assert fields.get("function") == function_var, entry
    assert fields.get("topic") == f"{topic_var}.name", entry
    assert _expr(publisher["topic"]) == "google_pubsub_topic.this[each.value.topic].name"
    assert re.fullmatch(
        r"serviceAccount:\$\{google_service_account\.function\[each\.value\.function\]\.email\}", publisher["member"]
    )


def _invokers() -> dict[str, dict[str, Any]]:
    return {
        name: body
        for type_ in ("google_cloud_run_service_iam_member", "google_cloud_run_v2_service_iam_member")
        for name, body in resources(type_).items()
        if body["role"] == "roles/run.invoker"
    }


def test_pubsub_push_scheduler_and_the_internet_may_invoke_each_only_its_functions() -> None:
    invokers = _invokers()
    assert invokers, "nobody may invoke the functions"
    members, public = set(), []
    for name, body in invokers.items():
        assert "[each.key]" not in body["member"], f"{name}: a function must not invoke the functions"
        members.add(body["member"])
        expanded = _expand(_expr(body["for_each"]))
        if body["member"] == "allUsers":
            public.append(name)
            # Only the functions whose topology.json entry says "public": true.
            assert re.search(r"\bpublic\s*=\s*try\(\w+\.public,\s*false\)", expanded), name
            assert re.search(r"\bif\s+\w+\.public\s*}", expanded), f"{name}: must be limited to public functions"
        else:
            assert re.search(r"\.schedule\s*!=\s*null|\.trigger\s*==\s*\"pubsub\"", expanded), name
    assert len(public) == 1, "one allUsers grant, over the public functions"
    assert len(members) == len(invokers) == 3, "one invoker identity for Pub/Sub push, one for Scheduler, allUsers"


def test_only_the_public_functions_take_traffic_from_the_internet() -> None:
    for name, body in _functions().items():
        ingress = _flat(_expr(_block(body, "service_config")["ingress_settings"]))
        if body.get("for_each") is None:
            assert ingress == ("ALLOW_ALL" if name in PUBLIC else "ALLOW_INTERNAL_ONLY"), name
        else:
            assert ingress == 'each.value.public ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"', ingress
    # allUsers appears in the one public invoker grant, allAuthenticatedUsers nowhere.
    granted = [
        f"{type_}.{name}"
        for block in _blocks("resource")
        for type_, named in block.items()
        for name, body in named.items()
        if re.search(r"\ballUsers\b|\ballAuthenticatedUsers\b", json.dumps(body))
    ]
    assert granted == ["google_cloud_run_service_iam_member.public_invoker"], granted


def test_the_public_functions_are_those_of_topology_json() -> None:
    public_functions = _flat(_expr(_locals()["public_functions"]))
    assert re.fullmatch(r"\{ ?for (\w+), (\w+) in local\.functions : \1 => \2 if \2\.public ?\}", public_functions)
    # The checkov skips on the two deliberate exceptions carry a reason.
    text = (TF_DIR / "functions.tf").read_text(encoding="utf-8")
    for check in ("CKV_GCP_102", "CKV_GCP_124"):
        assert re.search(rf"#\s*checkov:skip={check}:\S.{{20,}}", text), f"no reasoned checkov skip of {check}"


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


def _secret_env() -> dict[str, Any]:
    """The local map function -> {variable -> secret id} that every function's secret variables come from."""
    found: set[str] = set()
    for name, body in _functions().items():
        secret_envs = _nested(_block(body, "service_config"), "secret_environment_variables")
        assert secret_envs, f"{name}: no secret_environment_variables"
        for env, for_each in secret_envs:
            assert _expr(env["version"]) == "latest" or env["version"].isdigit()
            assert "google_secret_manager_secret" in _expr(env["secret"]) or "var.secrets" in _expr(env["secret"])
            assert for_each is not None, f"{name}: secret variables must come from one per-function map"
            match = re.fullmatch(r"local\.(\w+)\[each\.key\]", for_each)
            assert match, f"{name}: dynamic secret_environment_variables must iterate local.<map>[each.key]"
            found.add(match[1])
    [local] = found
    per_function: dict[str, Any] = _locals()[local]
    assert set(per_function) == FUNCTIONS
    return per_function


def test_the_secret_owners_are_the_secret_settings_of_shared_config() -> None:
    assert set(SECRET_OWNERS) == {f"OTKLIK_{name.upper()}" for name in SECRET_FIELDS}
    assert set().union(*SECRET_OWNERS.values()) <= FUNCTIONS and set(SECRET_OWNERS) >= OPTIONAL_SECRETS


def test_each_secret_is_an_environment_variable_of_its_function_only() -> None:
    per_function = _secret_env()
    for function in FUNCTIONS:
        text = json.dumps(per_function[function])
        expected = {env for env, owners in SECRET_OWNERS.items() if function in owners}
        assert set(re.findall(r"OTKLIK_\w+", text)) == expected, f"{function}: {text}"


def test_required_secrets_have_an_id_and_optional_ones_are_wired_only_when_set() -> None:
    per_function = _secret_env()
    secret_types = _type_fields("secrets")
    for env, owners in SECRET_OWNERS.items():
        text = _flat(json.dumps({owner: per_function[owner] for owner in sorted(owners)}))
        match = re.search(rf"{env}\W+=?\W*\$?\{{?var\.secrets\.(\w+)", text)
        assert match, f"{env}: not read from var.secrets in {text}"
        attribute = match[1]
        type_ = _flat(secret_types[attribute])
        if env in OPTIONAL_SECRETS:
            assert type_ == "optional(string)", f"secrets.{attribute} must default to null: {type_}"
            assert re.search(rf"var\.secrets\.{attribute} [!=]= null|if \w+ != null", text), f"{env}: always wired"
        else:
            assert re.fullmatch(r'optional\(string, "[a-z0-9-]+"\)', type_), f"secrets.{attribute} needs a default id"
    assert set(secret_types) == {m[1] for m in re.finditer(r"var\.secrets\.(\w+)", json.dumps(per_function))}


def test_secrets_are_readable_only_by_the_function_that_needs_them() -> None:
    accessors = resources("google_secret_manager_secret_iam_member")
    assert accessors, "the functions cannot read their secrets"
    for name, body in accessors.items():
        assert body["role"] == "roles/secretmanager.secretAccessor"
        assert "google_service_account.function[" in body["member"], f"{name}: grant it to a function's account"
        # One grant per (function, variable) of the same map the functions' secret variables come from.
        assert body["member"] == "serviceAccount:${google_service_account.function[each.value.function].email}"
        bindings = re.fullmatch(r"local\.(\w+)", _expr(body["for_each"]))
        assert bindings, f"{name}: for_each must be the local map of bindings, as it is"
        expanded = _flat(_expr(_locals()[bindings[1]]))
        pattern = r"for (\w+), (\w+) in local\.(\w+) : \{ ?for \w+, \w+ in \2 : .*function = \1\b"
        match = re.search(pattern, expanded)
        assert match and _locals()[match[3]] is _secret_env(), f"{name}: not one grant per entry of the secret map"


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


def _type_fields(variable: str) -> dict[str, str]:
    """Top-level attributes of an object-typed variable, with the text of their types."""
    type_ = _expr(_named("variable")[variable]["type"])
    inner = type_[type_.index("({") + 2 : type_.rindex("})")]
    depth, fields, token, name = 0, {}, "", None
    for char in inner:
        depth += char in "({["
        depth -= char in ")}]"
        if depth == 0 and char == "=":  # "<previous type>, <name> =": the name is after the last comma
            *previous, following = token.split(",")
            if name is not None:
                fields[name] = ",".join(previous).strip()
            name, token = following.strip(), ""
        else:
            token += char
    if name is not None:
        fields[name] = token.strip()
    return fields


def _type_attributes(variable: str) -> set[str]:
    """Top-level attribute names of an object-typed variable."""
    return set(_type_fields(variable))


def test_every_variable_is_typed_and_described() -> None:
    variables = _named("variable")
    assert {"project_id", "region", "functions", "source_dir", "settings", "secrets"} <= set(variables)
    for name, body in variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert body.get("description"), f"variable {name} has no description"
    assert variables["source_dir"]["default"] == "../../build/functions"


def test_function_sizing_covers_every_topology_function() -> None:
    assert _type_attributes("functions") == FUNCTIONS


def test_ingest_outlasts_its_budget_and_runs_one_instance() -> None:
    ingest = _flat(_type_fields("functions")["ingest"])
    timeout = int(re.search(r"timeout_seconds = optional\(number, (\d+)\)", ingest)[1])  # type: ignore[index]
    budget = Settings.model_fields["ingest_budget_seconds"].default
    assert timeout == 300 and timeout > budget, ingest
    assert "max_instances = optional(number, 1)" in ingest
    conditions = [_flat(v["condition"]) for v in _named("variable")["functions"]["validation"]]
    assert "${var.functions.ingest.max_instances == 1}" in conditions, "one VK poller per token: max_instances 1"
    # A budget raised through settings must still end before the function is cut off.
    [lifecycle] = _functions()["function"]["lifecycle"]
    preconditions = [_flat(c["condition"]) for c in lifecycle["precondition"]]
    assert any(
        "ingest" in c and "timeout_seconds >" in c and "var.settings.ingest_budget_seconds" in c for c in preconditions
    ), preconditions


def test_settings_are_the_non_secret_fields_of_shared_config() -> None:
    attributes = _type_attributes("settings")
    never_here = SECRET_FIELDS | {"local_mode", "project_id", "config_dir"}
    never_here |= {t["settings_variable"].removeprefix("OTKLIK_").lower() for t in TOPOLOGY["topics"]}
    assert attributes, "settings has no attributes"
    assert attributes <= set(Settings.model_fields) - never_here, sorted(attributes - set(Settings.model_fields))
    # Every operator setting the code reads can be set in a deployment.
    missing = set(Settings.model_fields) - never_here - attributes
    assert not missing, f"var.settings lacks {sorted(missing)}"
    for name, type_ in _type_fields("settings").items():
        assert re.fullmatch(r"optional\((string|number|bool)\)", _flat(type_)), f"settings.{name}: {type_}"


def test_the_example_tfvars_sets_declared_variables_and_no_secret() -> None:
    name = "example.tfvars"
    values = _load(TF_DIR / name)
    variables = _named("variable")
    assert set(values) <= set(variables), sorted(set(values) - set(variables))
    required = {n for n, body in variables.items() if "default" not in body}
    assert required <= set(values), f"{name} misses {sorted(required - set(values))}"
    for secret_id in values.get("secrets", {}).values():
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,255}", secret_id), "secrets holds Secret Manager ids, not values"
    assert not set(values.get("settings", {})) & (SECRET_FIELDS | {"local_mode"})


def test_alerts_fire_on_dead_lettered_messages_and_failing_functions() -> None:
    policies = resources("google_monitoring_alert_policy")
    assert set(policies) == {"dead_letter_backlog", "oldest_unacked_message", "function_errors"}
    backlog = _block(policies["dead_letter_backlog"], "conditions")
    threshold = _block(backlog, "condition_threshold")
    assert "pubsub.googleapis.com/subscription/num_undelivered_messages" in threshold["filter"]
    assert "dead_letter_subscription_filter" in threshold["filter"] and threshold["threshold_value"] == 0
    subs = _flat(_expr(_locals()["dead_letter_subscription_filter"]))
    assert "local.dead_letter_topic_names" in subs and "-pull" in subs  # the pull subscriptions of pubsub.tf
    waiting = _block(_block(policies["oldest_unacked_message"], "conditions"), "condition_threshold")
    assert "pubsub.googleapis.com/subscription/oldest_unacked_message_age" in waiting["filter"]
    assert "push_subscription_filter" in waiting["filter"]
    assert "keys(local.push_subscriptions)" in _expr(_locals()["push_subscription_filter"])
    # The metric is in seconds, the variable in minutes.
    assert _flat(_expr(waiting["threshold_value"])) == "var.oldest_unacked_alert_minutes * 60"
    errors = _block(_block(policies["function_errors"], "conditions"), "condition_threshold")
    assert 'response_code_class = \\"5xx\\"' in json.dumps(errors["filter"]) or "5xx" in errors["filter"]
    assert "otklik-" in errors["filter"] and _expr(errors["threshold_value"]) == "var.function_error_alert_threshold"
    for policy in policies.values():
        assert _expr(policy["notification_channels"]) == "local.alert_channels"
    [channel] = resources("google_monitoring_notification_channel").values()
    assert _expr(channel["for_each"]) == "toset(var.alert_emails)" and channel["type"] == "email"


def test_checkov_finds_nothing_that_is_not_fixed_or_justified() -> None:
    from otklik.stack.emulators import TOOLS_DIR

    checkov = TOOLS_DIR / "checkov" / "bin" / "checkov"
    if not checkov.exists():
        pytest.fail(f"checkov is not installed at {checkov}: run make setup (scripts/setup.sh)")
    args = [str(checkov), "-d", str(TF_DIR), "--framework", "terraform", "--quiet", "--compact", "-o", "json"]
    run = subprocess.run([*args, "--skip-download"], capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(run.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert failed == [], "fix these, or skip each inline with a reason (# checkov:skip=ID:why)"
    skipped = [c for r in reports for c in r.get("results", {}).get("skipped_checks", [])]
    assert all(len(str(c.get("suppress_comment", ""))) >= 20 for c in skipped), "every skip needs its reason"
    assert sum(r.get("summary", {}).get("passed", 0) for r in reports) > 10, "checkov checked next to nothing"
