"""The schema of ``sources.yaml``: which communities, chats, feeds and searches are watched, and where from.

One entry per source, told apart by ``kind``. Polled kinds (``vk_wall``, ``vk_search``, ``telegram``, ``max``,
``ok_group``, ``rss``) are fetched by the ingest timer; pushed kinds (``vk_callback``, ``inbox``) describe who may
push posts to the HTTP functions of the same names.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

SourceId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="unique, lower-case")]


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: SourceId
    municipality: str | None = Field(default=None, description="where its posts come from, if the text does not say")
    enabled: bool = Field(default=True, description="false pauses the source and keeps its cursor")

    @property
    def polled(self) -> bool:
        return True


class VkWallSource(_Source):
    """A VK community wall (``wall.get``) and, with ``comments``, the comments under its newest posts."""

    kind: Literal["vk_wall"]
    owner_id: int | None = Field(default=None, description="community id, negative: -<group id>")
    domain: str | None = Field(default=None, description="the community's short name, instead of owner_id")
    max_posts_first_run: int = Field(default=100, gt=0, description="how far back the very first fetch goes")
    comments: bool = Field(default=False, description="also fetch comments (wall.getComments)")
    comments_on_newest_posts: int = Field(default=20, gt=0, le=100, description="posts whose comments are followed")

    @field_validator("owner_id")
    @classmethod
    def _community_is_negative(cls, value: int | None) -> int | None:
        if value is not None and value >= 0:
            raise ValueError("a VK community's owner_id is negative (-<group id>)")
        return value

    @model_validator(mode="after")
    def _one_address(self) -> VkWallSource:
        if (self.owner_id is None) == (self.domain is None):
            raise ValueError("give exactly one of owner_id and domain")
        return self


class VkSearchSource(_Source):
    """VK's keyword / place search over all public posts (``newsfeed.search``)."""

    kind: Literal["vk_search"]
    query: str = Field(min_length=1, description="search words, as typed in VK's search")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    first_run_hours: float = Field(default=24, gt=0, description="how far back the very first fetch goes")

    @model_validator(mode="after")
    def _both_coordinates(self) -> VkSearchSource:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


class TelegramSource(_Source):
    """Chats and channels where the bot is a member or an admin (Bot API ``getUpdates``; one cursor per bot), and
    residents writing to the bot itself in a private chat."""

    kind: Literal["telegram"]
    chats: dict[str, str | None] = Field(
        default_factory=dict,
        description="chat id or @username -> municipality; empty: every chat the bot sees, with `municipality`",
    )
    private_chats: bool | None = Field(
        default=None,
        description="take what residents write to the bot in private chats (posts written to the city, answerable "
        "in that chat); unset: only when `chats` is empty (every chat)",
    )
    private_chats_municipality: str | None = Field(
        default=None, description="the municipality of private chats with the bot; unset: `municipality`"
    )


class MaxSource(_Source):
    """The city's bot in the MAX messenger (Bot API ``GET /updates``; one cursor per bot): residents' private
    dialogs with the bot, and the house chats and channels where it is an admin allowed to read all messages."""

    kind: Literal["max"]
    chats: dict[int, str | None] = Field(
        default_factory=dict,
        description="chat or channel id -> municipality (null: `municipality`); other chats are skipped",
    )
    private_chats: bool = Field(
        default=True, description="take what residents write to the bot in private dialogs (answerable there)"
    )
    private_chats_municipality: str | None = Field(
        default=None, description="the municipality of private dialogs with the bot; unset: `municipality`"
    )


class OkGroupSource(_Source):
    """An Odnoklassniki group's feed (REST API with ``sig`` signing)."""

    kind: Literal["ok_group"]
    group_id: str = Field(pattern=r"^\d+$")
    max_posts_first_run: int = Field(default=50, gt=0)


class RssSource(_Source):
    """An RSS or Atom feed of a local news site or a city portal."""

    kind: Literal["rss"]
    url: HttpUrl


class VkCallbackSource(_Source):
    """A VK community that pushes new posts and comments to the ``vk_callback`` function (Callback API)."""

    kind: Literal["vk_callback"]
    group_id: int = Field(gt=0, description="the community id, positive, as VK sends it")
    confirmation_code: str = Field(min_length=1, description="the string VK shows in the Callback API settings")

    @property
    def polled(self) -> bool:
        return False


class InboxSource(_Source):
    """Another system (a city portal form, a chat bot) that POSTs posts to the ``inbox`` function."""

    kind: Literal["inbox"]

    @property
    def polled(self) -> bool:
        return False


SOURCE_KINDS = ("vk_wall", "vk_search", "telegram", "max", "ok_group", "rss", "vk_callback", "inbox")
SourceConfig = Annotated[
    VkWallSource
    | VkSearchSource
    | TelegramSource
    | MaxSource
    | OkGroupSource
    | RssSource
    | VkCallbackSource
    | InboxSource,
    Field(discriminator="kind"),
]


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sources: tuple[SourceConfig, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> SourcesFile:
        ids = [s.id for s in self.sources]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"source ids must be unique, repeated: {dupes}")
        return self
