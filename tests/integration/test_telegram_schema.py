"""Every update the Telegram stand-in serves, and every update of the demo feed, reads as the Bot API's own
types: python-telegram-bot's ``Update`` (its classes follow https://core.telegram.org/bots/api field by field;
aiogram's generated pydantic models would be the first choice, but aiogram pins pydantic below the 2.14 Otklik
uses). A payload passes when ``Update.de_json`` builds it (every required field there), no field is unknown to
the schema at any depth (python-telegram-bot keeps those in ``api_kwargs``), and writing it back gives every
value as it was (nothing misread)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from telegram import Bot, TelegramObject, Update

from otklik.standins.telegram import DEMO_UPDATES, TelegramStandIn, photo

pytestmark = pytest.mark.integration
TOKEN = "7100000002:AAtest-token_of_the-Otklik-test-bot"
BOT = Bot(TOKEN)  # de_json wants one; nothing is sent
# Fields Telegram still sends that the Bot API documentation dropped long ago: the join message's pre-2017 twins
# of new_chat_members (seen in every recorded join).
UNDOCUMENTED_BUT_SENT = {"new_chat_participant", "new_chat_member"}
SHAKHTY = {"id": -1001700000001, "title": "Подслушано Шахты", "username": "podslushano_shakhty", "type": "supergroup"}
KIROV_ONLINE = {"id": -1001700000002, "title": "Киров Онлайн", "username": "kirov_online", "type": "channel"}
DISCUSSION = {
    "id": -1001700000004,
    "title": "Киров Онлайн — обсуждение",
    "username": "kirov_online_chat",
    "type": "supergroup",
}
RESIDENT = {"id": 6300000002, "first_name": "Олег", "username": "oleg_k", "type": "private"}


def schema_problems(update: dict[str, Any]) -> list[str]:
    try:
        parsed = Update.de_json(update, BOT)
    except (TypeError, KeyError, ValueError) as exc:
        return [f"not an Update: {type(exc).__name__}: {exc}"]
    if parsed is None:
        return ["not an Update"]
    unknown = [f"{path}: {sorted(extra)}" for path, extra in _unknown_fields(parsed, "update")]
    written = json.loads(json.dumps(parsed.to_dict()))  # enums as their strings, times as unix seconds
    return unknown + _changed(update, written, "update")


def _unknown_fields(obj: Any, path: str) -> Iterator[tuple[str, set[str]]]:
    if isinstance(obj, TelegramObject):
        extra = set(obj.api_kwargs) - UNDOCUMENTED_BUT_SENT
        if extra:
            yield path, extra
        for name, value in obj._get_attrs(recursive=False).items():
            yield from _unknown_fields(value, f"{path}.{name}")
    elif isinstance(obj, list | tuple):
        for n, value in enumerate(obj):
            yield from _unknown_fields(value, f"{path}[{n}]")


def _changed(sent: Any, written: Any, path: str) -> list[str]:
    """Where the schema's reading differs from what was sent (python-telegram-bot adds false flags; not those)."""
    if isinstance(sent, dict):
        if not isinstance(written, dict):
            return [f"{path}: an object read as {written!r}"]
        return [
            problem for key, value in sent.items() for problem in _changed(value, written.get(key), f"{path}.{key}")
        ]
    if isinstance(sent, list):
        if not isinstance(written, list) or len(written) != len(sent):
            return [f"{path}: a list of {len(sent)} read as {written!r}"]
        return [
            problem
            for n, pair in enumerate(zip(sent, written, strict=True))
            for problem in _changed(*pair, f"{path}[{n}]")
        ]
    return [] if type(sent) is type(written) and sent == written else [f"{path}: {sent!r} read as {written!r}"]


def test_every_demo_update_is_a_bot_api_update() -> None:
    updates = json.loads(DEMO_UPDATES.read_text(encoding="utf-8"))["updates"]
    for update in updates:
        sent = {k: v for k, v in update.items() if not k.startswith("_")}
        assert schema_problems(sent) == [], update["update_id"]


def test_the_checker_catches_what_is_not_the_schema() -> None:
    good: dict[str, Any] = {
        "update_id": 1,
        "message": {"message_id": 1, "date": 1795300000, "chat": SHAKHTY, "text": "яма"},
    }
    assert schema_problems(good) == []
    assert schema_problems({"update_id": 1, "message": {"message_id": 1, "chat": SHAKHTY}})  # no date
    photoless = {"file_id": "AgAC", "width": 90, "height": 90}  # PhotoSize without file_unique_id
    assert schema_problems({**good, "message": {**good["message"], "photo": [photoless]}})
    assert schema_problems({**good, "message": {**good["message"], "likes": 3}})  # a field Telegram has not
    assert schema_problems({**good, "message": {**good["message"], "chat": {**SHAKHTY, "kind": "group"}}})


def test_every_update_the_stand_in_serves_is_a_bot_api_update() -> None:
    with TelegramStandIn(token=TOKEN) as tg:
        tg.add_message(SHAKHTY, "Яма на Советской")
        tg.add_message(SHAKHTY, None, photo=photo("single"))
        tg.add_message(SHAKHTY, None, location={"latitude": 47.71, "longitude": 40.21})
        venue = {"location": {"latitude": 47.71, "longitude": 40.21}, "title": "Рынок", "address": "ул. Советская"}
        tg.add_message(SHAKHTY, None, venue=venue, location=venue["location"])
        album = tg.add_album(SHAKHTY, ["x1", "x2", "x3"], caption="Свалка у гаражей", caption_on=1)
        tg.add_edit(album[1], caption="Свалка у гаражей на Ленина")
        post = tg.add_message(KIROV_ONLINE, "Нет света на Ленина")
        tg.add_edit(post, text="Нет света на Ленина, 5")
        tg.add_comment(tg.add_automatic_forward(post, DISCUSSION), "У нас тоже нет")
        tg.add_message(RESIDENT, "/start", entities=[{"offset": 0, "length": 6, "type": "bot_command"}])
        tg.add_album(RESIDENT, ["r1", "r2"], caption="Открытый люк у дома 5")
        with httpx.Client(base_url=f"{tg.api_base}/bot{TOKEN}") as http:
            served = http.post("/getUpdates", json={"limit": 100}).json()["result"]
        assert len(served) == len(tg.served) == 37 + 15  # the demo feed, then what the helpers add
        for update in served:
            assert schema_problems(update) == [], update
