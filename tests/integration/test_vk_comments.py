"""The COMMENT channel's real httpx code (wall.createComment) against the VK stand-in on loopback, and the
round trip: the community's comment is fetched back by the wall connector as the community's own."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from otklik.standins.vk import DEMO_COMMENTS, DEMO_WALLS, VkStandIn
from shared.adapters.politeness import Polite
from shared.adapters.vk import VkClient, VkCommentSender, VkWallConnector, vk_comment, vk_post
from shared.domain.errors import PermanentError
from shared.domain.models import Answer, Department, Incident, IncidentStatus, Post, ReplyTarget
from shared.ports import Delivery
from shared.source_config import VkWallSource
from tests.builders import T0, make_incident

pytestmark = pytest.mark.integration
READ_TOKEN = "read-token"
COMMUNITY_TOKEN = "community-token"
SHAKHTY = -210000001
ROADS = Department(id="roads", name="Отдел дорог г. Шахты", email="roads@shakhty.example")


@pytest.fixture
def vk() -> Iterator[VkStandIn]:
    with VkStandIn(DEMO_WALLS, READ_TOKEN, DEMO_COMMENTS, reply_token=COMMUNITY_TOKEN) as server:
        yield server  # type: ignore[misc]


def sender(vk: VkStandIn, token: str = COMMUNITY_TOKEN) -> VkCommentSender:
    return VkCommentSender(VkClient(httpx.Client(timeout=5), vk.api_base, token, "5.199", Polite(None, attempts=2)))


def answered(post: Post) -> Incident:
    answer = Answer(text="Яму засыплем в четверг.", at=T0, department_id="roads")
    return make_incident("1", IncidentStatus.ANSWERED, post=post, answers=(answer,))


def first_wall_post(vk: VkStandIn) -> Post:
    item = next(i for owner, i in vk.all_posts() if owner == SHAKHTY and not i.get("is_pinned"))
    return vk_post({**item, "owner_id": SHAKHTY}, "vk-shakhty", "shakhty")


def test_the_answer_is_the_communitys_comment_under_the_post_and_a_resend_is_the_same_comment(vk: VkStandIn) -> None:
    post = first_wall_post(vk)
    delivery = Delivery(ROADS, answered(post), "inc.roads.comment.answer.0", "answer.0")
    sender(vk).send(delivery)
    sender(vk).send(delivery)  # the same notification again: VK keeps one comment for one guid

    mine = [c for c in vk.official_comments() if c["text"].startswith("Яму засыплем")]
    assert len(mine) == 1
    assert mine[0]["from_id"] == SHAKHTY and mine[0]["text"] == "Яму засыплем в четверг.\n\n— Отдел дорог г. Шахты"
    [call, again] = [c for c in vk.calls if c["method"] == "wall.createComment"]
    assert call["from_group"] == str(-SHAKHTY) and call["guid"] == again["guid"] and len(call["guid"]) == 32


def test_the_connector_reads_the_communitys_comment_back_as_the_communitys(vk: VkStandIn) -> None:
    post = first_wall_post(vk)
    sender(vk).send(Delivery(ROADS, answered(post), "inc.roads.comment.answer.0", "answer.0"))
    config = VkWallSource.model_validate({"id": "vk-shakhty", "kind": "vk_wall", "owner_id": SHAKHTY, "comments": True})
    client = VkClient(httpx.Client(timeout=5), vk.api_base, READ_TOKEN, "5.199", Polite(None, attempts=2))
    fetched = VkWallConnector(config, client).fetch(None).posts
    [comment] = [p for p in fetched if p.parent_post_id == post.post_id and p.text.startswith("Яму засыплем")]
    assert comment.author_id == str(SHAKHTY)
    assert comment.community == str(SHAKHTY) and comment.text.startswith("Яму засыплем")


def test_an_answer_to_a_comment_goes_into_its_thread(vk: VkStandIn) -> None:
    raw = next(c for c in vk.all_comments() if int(c["owner_id"]) == SHAKHTY and "reply_to_comment" not in c)
    comment = vk_comment(raw, "vk-shakhty", "shakhty")
    sender(vk).send(Delivery(ROADS, answered(comment), "inc.roads.comment.answer.0.c", "answer.0"))
    [call] = [c for c in vk.calls if c["method"] == "wall.createComment"]
    assert call["post_id"] == comment.parent_post_id and call["reply_to_comment"] == str(raw["id"])


def test_closed_comments_a_wrong_token_or_another_network_fail_for_good(vk: VkStandIn) -> None:
    post = first_wall_post(vk)
    delivery = Delivery(ROADS, answered(post), "inc.roads.comment.answer.0", "answer.0")
    vk.closed_comments.add((SHAKHTY, int(post.post_id)))
    with pytest.raises(PermanentError, match="213"):
        sender(vk).send(delivery)
    vk.closed_comments.clear()
    with pytest.raises(PermanentError, match="error 5"):
        sender(vk, token="a-revoked-token").send(delivery)
    telegram = post.model_copy(update={"source": "telegram"})
    with pytest.raises(PermanentError, match="telegram"):
        sender(vk).send(Delivery(ROADS, answered(telegram), "x", "answer.0"))
    message = post.model_copy(update={"direct": True, "reply_to": ReplyTarget(channel="vk_message", chat_id="5")})
    with pytest.raises(PermanentError, match="conversation"):  # a message to the community is answered there
        sender(vk).send(Delivery(ROADS, answered(message), "y", "answer.0"))
    assert not [c for c in vk.official_comments() if c["text"].startswith("Яму засыплем")]  # nothing was added
