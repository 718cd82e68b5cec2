"""Configuration: environment variables (pydantic-settings) and the operators' YAML files.

Every variable is listed in the README's configuration table; ``tests/unit/test_config.py`` fails when one is
missing there. Secrets (tokens, passwords) are ``SecretStr`` so they never reach a log or a repr; in
production they come from Secret Manager as secret environment variables.
"""

from __future__ import annotations

import json
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain.deadlines import DeadlinePolicy
from shared.domain.errors import ConfigError
from shared.domain.models import Department, RoutingRule
from shared.domain.worktime import ProductionCalendar
from shared.source_config import SOURCE_KINDS, SourceConfig, SourcesFile

# Beside the deployed function (build/functions/<name>/config) and at the repo root in development.
_DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OTKLIK_", extra="ignore", frozen=True)

    project_id: str = Field(
        default="otklik-local",
        validation_alias=AliasChoices("OTKLIK_PROJECT_ID", "GOOGLE_CLOUD_PROJECT"),
        description="Google Cloud project of Firestore and Pub/Sub (or GOOGLE_CLOUD_PROJECT)",
    )
    firestore_database: str = Field(default="(default)", description="Firestore database id")
    config_dir: Path = Field(default=_DEFAULT_CONFIG_DIR, description="folder with sources.yaml and departments.yaml")
    topic_posts: str = Field(default="otklik-posts", description="topic ingest publishes fetched posts to")
    topic_incidents: str = Field(default="otklik-incidents", description="topic classify publishes stored incidents to")
    vk_api_base: str = Field(default="https://api.vk.com", description="VK API base URL")
    vk_api_version: str = Field(default="5.199", description="VK API version sent as v=")
    vk_token: SecretStr | None = Field(default=None, description="VK access token (secret)")
    vk_token_kind: Literal["user", "community", "service"] = Field(
        default="service", description="kind of OTKLIK_VK_TOKEN; sets the default request rate"
    )
    vk_requests_per_second: float | None = Field(
        default=None, gt=0, description="VK request rate per token (default: user 3, community 20, service 3)"
    )
    vk_reply_token: SecretStr | None = Field(
        default=None,
        description="VK community token with the wall right: answers and follow-up questions as the community's "
        "comments under the authors' posts; unset: nothing is posted to VK (secret)",
    )
    vk_official_ids: str = Field(
        default="",
        description="comma-separated VK ids whose comments under a post count as the official answer "
        "(the community itself always counts)",
    )
    vk_callback_secret: SecretStr | None = Field(
        default=None, description="the secret VK sends in every Callback API request (secret)"
    )
    telegram_api_base: str = Field(default="https://api.telegram.org", description="Telegram Bot API base URL")
    telegram_bot_token: SecretStr | None = Field(default=None, description="Telegram bot token (secret)")
    # dev.max.ru: bots call platform-api2.max.ru (platform-api.max.ru is the old address).
    max_api_base: str = Field(default="https://platform-api2.max.ru", description="MAX Bot API base URL")
    max_bot_token: SecretStr | None = Field(default=None, description="MAX bot token (secret)")
    ok_api_base: str = Field(default="https://api.ok.ru", description="Odnoklassniki API base URL")
    ok_application_key: str | None = Field(default=None, description="Odnoklassniki application public key")
    ok_application_secret_key: SecretStr | None = Field(
        default=None, description="Odnoklassniki application secret key, for sig (secret)"
    )
    ok_access_token: SecretStr | None = Field(default=None, description="Odnoklassniki access token (secret)")
    inbox_token: SecretStr | None = Field(
        default=None, description="bearer token other systems send to the inbox function (secret)"
    )
    ingest_budget_seconds: float = Field(
        default=240.0, gt=0, description="ingest stops starting new sources after this long (function timeout 300 s)"
    )
    source_retry_attempts: int = Field(default=5, ge=1, description="tries of one source API call before giving up")
    source_backoff_seconds: float = Field(default=1.0, gt=0, description="base of the exponential backoff")
    source_backoff_max_seconds: float = Field(default=60.0, gt=0, description="longest wait between two tries")
    http_timeout_seconds: float = Field(default=10.0, gt=0, description="timeout of outgoing HTTP calls")
    smtp_host: str | None = Field(default=None, description="SMTP server for e-mail notifications")
    smtp_port: int = Field(default=587, description="SMTP port")
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls", description="starttls, ssl or none (none only on loopback sinks)"
    )
    smtp_user: str | None = Field(default=None, description="SMTP login")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password (secret)")
    mail_from: str = Field(default="otklik@localhost", description="From: address of notifications")
    mail_provider: Literal["smtp", "ses"] = Field(default="smtp", description="smtp, or ses (Amazon SES API)")
    ses_region: str = Field(default="eu-central-1", description="Amazon SES region (mail_provider ses)")
    ses_endpoint_url: str | None = Field(default=None, description="Amazon SES endpoint override (tests, proxies)")
    webhook_secrets: SecretStr | None = Field(
        default=None,
        description='JSON object {"department id": "signing secret"}: each department\'s webhook HMAC key (secret)',
    )
    webhook_attempts: int = Field(default=3, ge=1, description="tries of one webhook call within one delivery")
    public_api_url: str | None = Field(
        default=None, description="public URL of the department_api function: answer links in e-mails"
    )
    link_signing_key: SecretStr | None = Field(
        default=None, description="key that signs answer links in e-mails (secret)"
    )
    answer_link_days: int = Field(default=14, gt=0, description="how long an answer link in an e-mail works")
    directory_ttl_seconds: float = Field(
        default=60.0, gt=0, description="how long route keeps the department directory before re-reading Firestore"
    )
    undelivered_after_seconds: float = Field(
        default=1800.0, gt=0, description="remind hands an incident still undelivered this long back to route"
    )
    remind_batch_size: int = Field(default=200, gt=0, description="incidents remind handles per run")
    notification_lease_seconds: float = Field(
        default=60.0, gt=0, description="how long a claimed notification is not sent by another worker"
    )
    max_retry_age_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="a message still failing this long after publish is quarantined instead of retried",
    )
    local_mode: bool = Field(
        default=False,
        description="development only: remind accepts a clock override, webhooks may use http and loopback",
    )
    log_level: str = Field(default="INFO", description="log level of the JSON logs")

    def secret_values(self) -> list[str]:
        """Every secret's value, for ``logs.hide``: each SecretStr, and each department's webhook secret on its own
        (the JSON object as a whole never appears in a message, its values might)."""
        values = [
            v.get_secret_value() for name in type(self).model_fields if isinstance(v := getattr(self, name), SecretStr)
        ]
        if self.webhook_secrets is not None:
            try:
                parsed = json.loads(self.webhook_secrets.get_secret_value())
            except ValueError:
                parsed = None  # reported where it is used (adapters/webhook.py), without quoting it
            if isinstance(parsed, dict):
                values.extend(v for v in parsed.values() if isinstance(v, str))
        return values

    @property
    def vk_rate(self) -> float:
        default = {"user": 3.0, "community": 20.0, "service": 3.0}[self.vk_token_kind]
        return self.vk_requests_per_second or default

    @cached_property
    def sources(self) -> list[SourceConfig]:
        return load_sources(self.config_dir / "sources.yaml")

    @cached_property
    def routing(self) -> RoutingConfig:
        return load_routing(self.config_dir / "departments.yaml")

    @cached_property
    def deadline_policy(self) -> DeadlinePolicy:
        return load_deadlines(self._config_file("deadlines.yaml"))

    @cached_property
    def calendar(self) -> ProductionCalendar:
        return load_calendar(self._config_file("calendar.yaml"))

    def _config_file(self, name: str) -> Path:
        """From OTKLIK_CONFIG_DIR if it has one, else the shipped default (the calendar is the country's, the
        deadlines a sensible practice: a config folder need not copy them)."""
        own = self.config_dir / name
        return own if own.exists() else _DEFAULT_CONFIG_DIR / name


class _ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DEFER_REFERENCES = "defer_references"


class RoutingConfig(_ConfigModel):
    departments: tuple[Department, ...]
    rules: tuple[RoutingRule, ...] = ()
    fallback: str = Field(description="department that gets what no rule matches: the regional coordinator")

    @field_validator("departments")
    @classmethod
    def _unique_ids(cls, value: tuple[Department, ...]) -> tuple[Department, ...]:
        seen: set[str] = set()
        for dep in value:
            if dep.id in seen:
                raise ValueError(f"department id {dep.id!r} appears twice")
            seen.add(dep.id)
        return value

    def model_post_init(self, context: Any) -> None:
        if isinstance(context, dict) and context.get(DEFER_REFERENCES):
            return  # load_routing reports them with their lines
        problems = self.reference_problems()
        if problems:
            raise ValueError("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))

    def reference_problems(self) -> list[tuple[tuple[int | str, ...], str]]:
        """Names of departments that do not exist, each with where it is written."""
        known = {d.id for d in self.departments}
        problems: list[tuple[tuple[int | str, ...], str]] = []
        if self.fallback not in known:
            problems.append((("fallback",), f"fallback department {self.fallback!r} is not in departments"))
        for i, rule in enumerate(self.rules):
            for j, dep in enumerate(rule.departments):
                if dep not in known:
                    problems.append((("rules", i, "departments", j), f"unknown department {dep!r}"))
        return problems


class _YamlFile:
    """A parsed YAML file that remembers where each node starts, so an error can name the line."""

    def __init__(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: file not found (set OTKLIK_CONFIG_DIR)") from exc
        try:
            self.node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        self.path = path

    def line_of(self, loc: tuple[int | str, ...]) -> int | None:
        """1-based line of the deepest node on ``loc`` that exists in the file."""
        node, line = self.node, None
        for key in loc:
            if node is None:
                break
            line = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == str(key)), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
            else:
                node = None
        if node is not None:
            line = node.start_mark.line + 1
        return line

    def explain(self, problems: list[tuple[tuple[int | str, ...], str]]) -> ConfigError:
        lines = [f"{self.path}: invalid configuration"]
        for loc, message in problems:
            line = self.line_of(loc)
            at = f"line {line}: " if line else ""
            where = ".".join(str(p) for p in loc) or "(top level)"
            lines.append(f"  {at}{where}{_entry_id(self.data, loc)}: {message}")
        return ConfigError("\n".join(lines))

    def explain_validation(self, exc: ValidationError) -> ConfigError:
        problems: list[tuple[tuple[int | str, ...], str]] = []
        kinds = set(SOURCE_KINDS)
        for err in exc.errors():
            # Drop the union member pydantic names (sources.0.vk_wall.id -> sources.0.id): the entry says its kind.
            loc = tuple(p for p in err["loc"] if str(p) not in kinds)
            if err["type"] == "union_tag_invalid":
                loc = (*loc, "kind")
            problems.append((loc, str(err["msg"]).removeprefix("Value error, ")))  # pydantic's prefix
        return self.explain(problems)


def _entry_id(raw: Any, loc: tuple[int | str, ...]) -> str:
    """`` (id vk-kirov)`` for an error inside a list entry that has an id: operators know entries by id."""
    if len(loc) < 2 or not isinstance(raw, dict) or not isinstance(loc[1], int):
        return ""
    entries = raw.get(str(loc[0]))
    if isinstance(entries, list) and loc[1] < len(entries) and isinstance(entries[loc[1]], dict):
        entry_id = entries[loc[1]].get("id")
        return f" (id {entry_id})" if entry_id is not None else ""
    return ""


def load_sources(path: Path) -> list[SourceConfig]:
    """The enabled sources of ``path``, or ConfigError naming the file, the line and the entry."""
    file = _YamlFile(path)
    try:
        parsed = SourcesFile.model_validate(file.data)
    except ValidationError as exc:
        raise file.explain_validation(exc) from exc
    return [s for s in parsed.sources if s.enabled]


def load_routing(path: Path) -> RoutingConfig:
    """Departments, rules and the fallback of ``path``, or ConfigError naming the file, the line and the entry."""
    file = _YamlFile(path)
    try:
        routing = RoutingConfig.model_validate(file.data, context={DEFER_REFERENCES: True})
    except ValidationError as exc:
        raise file.explain_validation(exc) from exc
    problems = routing.reference_problems()
    if problems:
        raise file.explain(problems)
    return routing


def load_deadlines(path: Path) -> DeadlinePolicy:
    """The deadline policy of ``path``, or ConfigError naming the file and the line."""
    file = _YamlFile(path)
    try:
        return DeadlinePolicy.model_validate(file.data)
    except ValidationError as exc:
        raise file.explain_validation(exc) from exc


class _CalendarYear(_ConfigModel):
    source: str
    holidays: tuple[date, ...] = ()
    working_weekends: tuple[date, ...] = ()
    shortened: tuple[date, ...] = ()


class _CalendarFile(_ConfigModel):
    country: str
    years: dict[int, _CalendarYear]


def load_calendar(path: Path) -> ProductionCalendar:
    """The production calendar of ``path``: each listed date must lie in its year, holidays on weekdays and
    working weekends on weekends, or ConfigError says which."""
    file = _YamlFile(path)
    try:
        parsed = _CalendarFile.model_validate(file.data)
    except ValidationError as exc:
        raise file.explain_validation(exc) from exc
    problems: list[tuple[tuple[int | str, ...], str]] = []
    for year, entry in parsed.years.items():
        for kind in ("holidays", "working_weekends", "shortened"):
            for i, day in enumerate(getattr(entry, kind)):
                weekend = day.isoweekday() >= 6
                if day.year != year:
                    problems.append((("years", year, kind, i), f"{day} is not in {year}"))
                elif kind == "holidays" and weekend:
                    problems.append((("years", year, kind, i), f"{day} is a weekend day: list weekdays only"))
                elif kind == "working_weekends" and not weekend:
                    problems.append((("years", year, kind, i), f"{day} is not a Saturday or Sunday"))
    if problems:
        raise file.explain(problems)
    return ProductionCalendar(
        holidays=frozenset(d for e in parsed.years.values() for d in e.holidays),
        working_weekends=frozenset(d for e in parsed.years.values() for d in e.working_weekends),
        shortened=frozenset(d for e in parsed.years.values() for d in e.shortened),
        years=frozenset(parsed.years),
    )
