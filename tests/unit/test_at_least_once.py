"""Pub/Sub delivers at least once and in no particular order. Whatever the order and however many copies (one
to three of each message, a transient failure of a receiver among them), classify and route together make one
incident per post (or, with grouping, one document per post and one incident per problem) and one notification
per channel of each department, and none is lost.

The same property on the whole local stack, with copies racing each other, is in
tests/e2e/test_reliability.py; this one explores many more orders, on the in-memory ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contracts import Contract, IncidentClassifiedV1, PostFetchedV1
from shared.domain.errors import TransientError
from shared.domain.models import Channel, Incident, IncidentStatus, Priority
from shared.services.group_posts import PostGrouper
from tests.builders import T0, make_post
from tests.fakes import NoCandidates
from tests.unit.test_services import INCIDENTS_TOPIC, ClassifyRig, RouteRig, classification, clock_hours_deadlines


@dataclass
class Delivery:
    stage: str  # "classify" or "route"
    message: Contract


# With grouping on: posts about two problems (two houses), by different residents; posts about one problem
# join one incident.
PROBLEMS = ("Огромная яма на ул. Ленина, 102, колёса пробиваем", "Огромная яма на ул. Ленина, 15, колёса пробиваем")


@settings(max_examples=150, deadline=None)
@given(
    posts=st.integers(min_value=1, max_value=6),
    critical=st.booleans(),
    receiver_failures=st.integers(min_value=0, max_value=3),
    grouping=st.booleans(),
    classified_at_once=st.booleans(),
    data=st.data(),
)
def test_any_order_and_any_number_of_copies_make_one_incident_and_one_notification_each(
    posts: int, critical: bool, receiver_failures: int, grouping: bool, classified_at_once: bool, data: Any
) -> None:
    priority = Priority.CRITICAL if critical else Priority.NORMAL
    classify = ClassifyRig(classification("roads", priority=priority))
    route = RouteRig(incidents=classify.incidents, clock=classify.clock)
    route.webhook.failures = receiver_failures  # the department's receiver is down for the first few sends
    if grouping:
        directory = route.service.directory
        classify.grouper = PostGrouper(
            classify.incidents,
            # Every post classified at the same moment as the others: none finds another's incident, and route
            # folds the twins.
            NoCandidates() if classified_at_once else classify.incidents,
            classify.clock,
            clock_hours_deadlines,
            lambda: directory,
        )
        route.grouping = PostGrouper(
            classify.incidents, classify.incidents, classify.clock, clock_hours_deadlines, lambda: directory
        )
    copies = st.integers(min_value=1, max_value=3)

    pending: list[Delivery] = []
    for n in range(1, posts + 1):
        post = make_post(str(n), text=PROBLEMS[n % 2], author_id=str(1000 + n)) if grouping else make_post(str(n))
        message = PostFetchedV1(post=post, fetched_at=T0)
        pending += [Delivery("classify", message)] * data.draw(copies, label=f"copies of post {n}")
    handed_off = 0

    while pending:
        delivery = pending.pop(data.draw(st.integers(min_value=0, max_value=len(pending) - 1), label="next"))
        try:
            if delivery.stage == "classify":
                assert isinstance(delivery.message, PostFetchedV1)
                classify.service.handle(delivery.message)
            else:
                assert isinstance(delivery.message, IncidentClassifiedV1)
                route.service.handle(delivery.message)
        except TransientError:
            pending.append(delivery)  # Pub/Sub redelivers what was not acknowledged
            continue
        # Every hand-off classify published is delivered to route one to three times, from now on.
        hand_offs = classify.publisher.on(INCIDENTS_TOPIC)
        for message in hand_offs[handed_off:]:
            pending += [Delivery("route", message)] * data.draw(copies, label="copies of a hand-off")
        handed_off = len(hand_offs)

    documents = classify.incidents.items
    assert len(documents) == posts  # one document per post, grouped or not
    incidents = {k: i for k, i in documents.items() if i.status is not IncidentStatus.MERGED}
    assert all(i.status is IncidentStatus.ROUTED and not i.undelivered for i in incidents.values())
    if grouping:  # each problem is one incident, counting every post about it once
        assert len(incidents) == min(posts, 2)

        def joined_to(d: Incident) -> str:  # a twin route folded after others had joined it: its reports moved on
            return d.id if d.merged_into is None else joined_to(documents[d.merged_into])

        for i in incidents.values():
            joined = [d.id for d in documents.values() if d.merged_into and joined_to(d) == i.id]
            assert sorted(r.incident_id for r in i.reports) == sorted(joined) and i.residents == 1 + len(joined)
    departments = {d.id: d for d in route.config.departments}
    routed = {(i.id, departments[d]) for i in incidents.values() for d in i.department_ids}
    assert routed, "every incident was routed to some department"
    for channel, sender, has_channel in (
        (Channel.WEBHOOK, route.webhook, lambda d: d.webhook_url is not None),
        (Channel.EMAIL, route.email, lambda d: d.email is not None),
    ):
        sent = [(d.incident.id, d.department.id) for d in sender.sent]
        assert len(sent) == len(set(sent)), f"a {channel} notification sent twice"
        wanted = {(incident_id, d.id) for incident_id, d in routed if has_channel(d)}
        assert set(sent) == wanted, f"a {channel} notification lost"
