"""The open311 function: GeoReport v2 mapping, the HTTP layer, paging, and that no personal data is published."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import flask
import pytest
import yaml
from functions_framework import create_app
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import bootstrap
from shared.classifier.places import GAZETTEERS
from shared.domain.categories import CATEGORY_NAMES
from shared.domain.models import Answer, Attachment, Classification, Geo, Incident, IncidentStatus, Priority
from shared.entrypoints.open311 import Open311Api
from shared.services import open311
from shared.services.open311 import (
    REQUEST_FIELDS,
    SERVICE_FIELDS,
    Open311Reader,
    Settlement,
    load_settlements,
    service_request,
    services,
)
from tests.builders import T0, make_incident, make_post
from tests.fakes import MemoryIncidents

ROOT = Path(__file__).resolve().parents[2]
NOW = T0 + timedelta(days=10)
DEPARTMENTS = {"roads-shakhty": "Управление дорог г. Шахты", "zhkh": "Департамент ЖКХ"}
S = IncidentStatus


@cache
def settlements() -> dict[str, Settlement]:
    return load_settlements(GAZETTEERS)


def department_name(department_id: str) -> str | None:
    return DEPARTMENTS.get(department_id)


def published(incident: Incident) -> dict[str, Any]:
    return service_request(incident, department_name, settlements())


def answered(post_id: str = "1", **kw: Any) -> Incident:
    return make_incident(
        post_id,
        S.ANSWERED,
        classification=Classification(
            category="roads",
            is_complaint=True,
            danger=True,
            priority=Priority.CRITICAL,
            municipality="shakhty",
            places=("Артём", "д. 5", "Шахты"),
            confidence=0.9,
            classifier="test",
        ),
        department_ids=("roads-shakhty", "gone"),
        answers=(
            Answer(text="Яму засыплем.", at=T0 + timedelta(hours=1), department_id="roads-shakhty", interim=True),
            Answer(text="Уважаемая Мария Ивановна! Яма заделана.", at=T0 + timedelta(days=1), department_id="a"),
        ),
        updated_at=T0 + timedelta(days=1),
        resolve_due_at=T0 + timedelta(days=30),
        **kw,
    )


# --- mapping -------------------------------------------------------------------------------------------


def test_a_complaint_becomes_a_service_request_at_settlement_level() -> None:
    assert published(answered()) == {
        "service_request_id": answered().id,
        "status": "open",
        "status_notes": "Яма заделана.",
        "service_code": "roads",
        "service_name": "Дороги",
        "agency_responsible": "Управление дорог г. Шахты",
        "requested_datetime": "2026-11-23T09:00:00Z",
        "updated_datetime": "2026-11-24T09:00:00Z",
        "expected_datetime": "2026-12-23T09:00:00Z",
        "address": "Шахты, Артём",  # "д. 5" is not a gazetteer place: it may be a house
        "lat": 47.71,
        "long": 40.22,
        "media_url": None,
    }


@pytest.mark.parametrize(
    ("status", "georeport"),
    [
        *((s, "open") for s in (S.NEW, S.ROUTED, S.ACKNOWLEDGED, S.ANSWERED)),
        (S.CLOSED, "closed"),
        (S.REJECTED, "closed"),
    ],
)
def test_statuses_are_open_or_closed(status: IncidentStatus, georeport: str) -> None:
    incident = make_incident(status=status)
    assert open311.is_published(incident)
    assert published(incident)["status"] == georeport


def test_chatter_is_not_published() -> None:
    assert not open311.is_published(make_incident(status=S.IRRELEVANT))
    not_a_complaint = make_incident(status=S.ROUTED)
    not_a_complaint = not_a_complaint.model_copy(
        update={"classification": not_a_complaint.classification.model_copy(update={"is_complaint": False})}
    )
    assert not open311.is_published(not_a_complaint)


def test_an_unknown_municipality_has_no_address_and_no_coordinates() -> None:
    incident = make_incident()
    incident = incident.model_copy(
        update={"classification": incident.classification.model_copy(update={"municipality": None})}
    )
    request = published(incident)
    assert (request["address"], request["lat"], request["long"], request["agency_responsible"]) == (None,) * 4
    assert request["status_notes"] is None and request["expected_datetime"] is None


def test_services_are_the_categories() -> None:
    listed = services()
    assert [s["service_code"] for s in listed] == list(CATEGORY_NAMES)
    assert all(tuple(s) == SERVICE_FIELDS and s["metadata"] is False and s["type"] == "realtime" for s in listed)


def test_every_gazetteer_municipality_has_coordinates() -> None:
    assert {"shakhty", "kirov"} <= set(settlements())
    assert all(-90 <= s.lat <= 90 and -180 <= s.long <= 180 for s in settlements().values())


# --- personal data ----------------------------------------------------------------------------------------

# Prefixed, so that a generated marker is never a piece of the published JSON itself ("addres" is in "address").
MARKER = st.text(alphabet="abcdefghijklmnopqrstuvwxyzабвгдежзиклмн0123456789", min_size=6, max_size=12).map(
    lambda m: f"q9ж{m}"
)


@settings(max_examples=150, deadline=None)
@given(
    text=MARKER.map(lambda m: f"Пишет житель {m}: у дома огромная яма, помогите"),
    author=MARKER,
    post_path=MARKER,
    lat=st.floats(min_value=47.1, max_value=47.9).map(lambda x: round(x, 6)),
    lon=st.floats(min_value=39.1, max_value=40.9).map(lambda x: round(x, 6)),
    echo=st.booleans(),
    status=st.sampled_from(open311.PUBLISHED_STATUSES),
)
def test_no_incident_ever_publishes_its_text_author_link_geotag_or_photos(
    text: str, author: str, post_path: str, lat: float, lon: float, echo: bool, status: IncidentStatus
) -> None:
    url = f"https://vk.com/wall-1_{post_path}"
    photo = f"https://sun9-1.userapi.com/{post_path}.jpg"
    post = make_post(
        "7",
        text,
        author_id=author,
        url=url,
        geo=Geo(lat=lat, lon=lon),
        attachments=(Attachment(kind="photo", url=photo),),
    )
    # A careless answer quotes the post, its link and the author's id.
    reply = f"Здравствуйте, {author}! По вашему сообщению «{text}» ({url}, id {author}) работы выполнены."
    incident = answered("7", post=post).model_copy(
        update={
            "status": status,
            "answers": (Answer(text=reply if echo else "Работы выполнены.", at=T0, department_id="a"),),
        }
    )
    body = json.dumps(published(incident), ensure_ascii=False)
    for secret in (text, author, url, post_path, photo, f"{lat:.4f}", f"{lon:.4f}"):
        assert secret not in body
    assert "работы выполнены" in body.lower()


def test_only_the_allowed_fields_are_published() -> None:
    assert tuple(published(answered())) == REQUEST_FIELDS


# --- the HTTP function ----------------------------------------------------------------------------------------


class Rig:
    """The open311 function's WSGI app over in-memory incidents."""

    def __init__(self, *incidents: Incident) -> None:
        self.incidents = MemoryIncidents()
        for incident in incidents:
            assert self.incidents.create(incident)
        reader = Open311Reader(self.incidents, department_name, settlements())
        self.api = Open311Api(reader, lambda: NOW)

    def get(self, path: str, method: str = "GET") -> flask.Response:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bootstrap, "open311_api", lambda: self.api)
            app = create_app(target="open311", source=str(ROOT / "functions" / "open311" / "main.py"))
            return app.test_client().open(path, method=method)  # type: ignore[no-any-return]

    def ids(self, path: str) -> list[str]:
        response = self.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [r["service_request_id"] for r in response.get_json()]


def at(post_id: str, minutes: int, status: IncidentStatus = S.ROUTED, category: str = "roads") -> Incident:
    return make_incident(post_id, status, category, created_at=T0 + timedelta(minutes=minutes))


def test_services_json_is_open_data_with_cors_and_cache_headers() -> None:
    response = Rig().get("/services.json")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.content_type == "application/json; charset=utf-8"
    assert response.get_json() == services()
    assert Rig().get("/services?jurisdiction_id=anything").get_json() == services()


def test_one_request_is_a_one_element_array_and_chatter_is_not_found() -> None:
    chatter = make_incident("2", S.IRRELEVANT)
    rig = Rig(answered(), chatter)
    response = rig.get(f"/requests/{answered().id}.json")
    assert response.status_code == 200 and response.get_json() == [published(answered())]
    assert rig.get(f"/requests/{answered().id}").get_json() == [published(answered())]
    for missing in (chatter.id, "no-such-id"):
        response = rig.get(f"/requests/{missing}.json")
        assert response.status_code == 404
        [problem] = response.get_json()
        assert problem["code"] == 404 and problem["description"]
        assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_requests_are_filtered_by_status_service_and_dates_oldest_first() -> None:
    made = [
        at("1", 0, S.ROUTED),
        at("2", 10, S.CLOSED, "housing_utilities"),
        at("3", 20, S.IRRELEVANT),
        at("4", 30, S.ANSWERED, "housing_utilities"),
        at("5", 40, S.REJECTED),
    ]
    rig = Rig(*reversed(made))
    ids = [i.id for i in made]
    assert rig.ids("/requests.json") == [ids[0], ids[1], ids[3], ids[4]]
    assert rig.ids("/requests.json?status=open") == [ids[0], ids[3]]
    assert rig.ids("/requests.json?status=closed,open") == [ids[0], ids[1], ids[3], ids[4]]
    assert rig.ids("/requests.json?service_code=housing_utilities") == [ids[1], ids[3]]
    assert rig.ids("/requests.json?service_code=housing_utilities&status=closed") == [ids[1]]
    assert rig.ids("/requests.json?start_date=2026-11-23T09:10:00Z&end_date=2026-11-23T09:40:00Z") == [ids[1], ids[3]]
    assert rig.ids("/requests.json?start_date=2026-11-23T12:10:00%2B03:00") == [ids[1], ids[3], ids[4]]
    assert rig.ids("/requests.json?end_date=2026-11-23") == []
    assert rig.ids(f"/requests.json?service_request_id={ids[4]},{ids[2]},nope,{ids[0]}&status=open") == [
        ids[4],
        ids[0],
    ]


def test_the_default_window_is_the_last_90_days() -> None:
    old = make_incident("1", S.ROUTED, created_at=NOW - timedelta(days=91))
    recent = make_incident("2", S.ROUTED, created_at=NOW - timedelta(days=89))
    assert Rig(old, recent).ids("/requests.json") == [recent.id]


def test_pages_cover_every_request_once_even_when_many_share_one_instant() -> None:
    # More incidents at one instant than the store returns at once: paging must neither loop nor skip.
    same = [make_incident(f"s{n}", S.ROUTED, created_at=T0) for n in range(open311.BATCH + 7)]
    later = [at(f"l{n}", n + 1) for n in range(30)]
    rig = Rig(*same, *later)
    expected = sorted(i.id for i in same) + [i.id for i in later]
    pages = [rig.ids(f"/requests.json?page={p}&page_size=100") for p in range(1, 6)]
    assert [len(p) for p in pages] == [100, 100, 87, 0, 0]
    assert [i for p in pages for i in p] == expected
    assert rig.ids("/requests.json") == expected


@pytest.mark.parametrize(
    "query",
    [
        "start_date=yesterday",
        "end_date=2026-13-01",
        "start_date=2026-11-23T10:00:00Z&end_date=2026-11-23T09:00:00Z",
        "start_date=2026-01-01&end_date=2026-06-01",  # more than 90 days
        "status=pending",
        "page=0",
        "page=-1",
        "page=two",
        "page_size=0",
        "page_size=1001",
        "page=11&page_size=1000",
        f"service_request_id={','.join(str(n) for n in range(101))}",
    ],
)
def test_bad_parameters_are_a_400_in_the_spec_error_format(query: str) -> None:
    response = Rig().get(f"/requests.json?{query}")
    assert response.status_code == 400, query
    [problem] = response.get_json()
    assert problem["code"] == 400 and problem["description"]


def test_only_get_json_and_known_paths() -> None:
    rig = Rig(answered())
    assert rig.get("/requests.xml").status_code == 400
    assert rig.get("/").status_code == 404
    assert rig.get("/services/roads.json").status_code == 404
    response = rig.get("/requests.json", method="POST")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    assert rig.get("/requests.json", method="OPTIONS").status_code == 204


def test_a_store_failure_is_a_503_not_cached() -> None:
    rig = Rig()

    def broken(*args: Any) -> list[Incident]:
        raise RuntimeError("firestore is down")

    rig.incidents.created_in_range_page = broken  # type: ignore[method-assign]
    response = rig.get("/requests.json")
    assert response.status_code == 503 and response.headers["Cache-Control"] == "no-store"
    assert "firestore" not in response.get_data(as_text=True)


# --- the OpenAPI document --------------------------------------------------------------------------------------


def test_the_openapi_document_describes_exactly_what_the_code_emits() -> None:
    document = yaml.safe_load((ROOT / "docs" / "open311.openapi.yaml").read_text(encoding="utf-8"))
    assert str(document["openapi"]).startswith("3.")
    assert set(document["paths"]) == {"/services.json", "/requests.json", "/requests/{service_request_id}.json"}
    schemas = document["components"]["schemas"]
    for schema, emitted in ((schemas["ServiceRequest"], published(answered())), (schemas["Service"], services()[0])):
        assert set(schema["properties"]) == set(emitted)
        assert set(schema["required"]) == set(emitted)
    parameters = {p["name"] for p in document["paths"]["/requests.json"]["get"]["parameters"] if "name" in p}
    assert parameters == {"service_request_id", "service_code", "start_date", "end_date", "status", "page", "page_size"}
    nullable = {name for name, p in schemas["ServiceRequest"]["properties"].items() if p.get("nullable")}
    assert {k for k, v in published(make_incident()).items() if v is None} <= nullable


def test_timestamps_are_w3c_utc() -> None:
    assert open311.w3_datetime(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
