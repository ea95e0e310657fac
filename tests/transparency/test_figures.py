"""The public figures: counts, medians and small-count suppression (pure), computed from real
cases, and the pages, open data and oversight report that read them."""

from __future__ import annotations

import csv
import io
import re
import statistics
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from time_machine import TimeMachineFixture

from accounts.models import User
from objections.models import Case
from objections.services import TransitionInput, case_file, case_route, case_transition
from records.models import Agency, CatalogueEntry, CreditRecord
from tests import clock
from tests.factories import CatalogueEntryFactory, CreditRecordFactory, registry_record
from tests.objections import conftest as case_conftest
from tests.objections.conftest import World
from tests.records.test_imports import PERSON_ID, csv_bytes, row, run_import
from transparency.figures import (
    ALL,
    COUNTS,
    FLOWS,
    OUTCOMES,
    THRESHOLD,
    CaseFacts,
    Key,
    aggregate,
    publish,
    relations,
)
from transparency.services import case_facts, figures_refresh

world = case_conftest.world

PAGE = "/transparency/"
JSON = "/transparency/figures.json"
CSV = "/transparency/figures.csv"
OVERSIGHT = "/transparency/oversight/"
STATS = "/api/v1/stats/"
STATS_OVERSIGHT = "/api/v1/stats/oversight/"

MONDAY = date(2026, 3, 2)  # no holiday in March 2026: every weekday is a working day
REFRESH_DAY = date(2026, 6, 15)  # the figures cover 2024-06 to 2026-05 (the ended months)
NOT_COMPUTED = {"detail": "The figures have not been computed yet.", "code": "not_computed"}


def cell(**values: Any) -> dict[str, Any]:
    """A published cell of one month: zero everywhere but `values`, no medians unless given."""
    found: dict[str, Any] = {measure: 0 for measure in COUNTS}
    found.update(median_working_days=None, median_paused_days=None)
    found.update(values)
    return found


def published(figures: dict[str, Any], key: Key) -> int | None:
    """The published value of one count (every value has a cell in every month)."""
    month, dimension, value, measure = key
    return figures["tables"][dimension][value][month][measure]


def to_tens(backlog: int) -> int:
    """A backlog as published: to the nearest ten, half up, and at least 10 unless it is 0."""
    return 0 if backlog == 0 else max(10, (backlog + 5) // 10 * 10)


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=clock.SHANGHAI)


# --- pure: counting and publishing --------------------------------------------------------------


def shanghai_decision(
    working_days: int, paused_days: int, outcome: str, *, on_time: bool = True
) -> CaseFacts:
    return CaseFacts(
        kind="objection",
        jurisdiction="shanghai",
        agency="sh-a",
        category="c1",
        filed_on=date(2026, 3, 2),
        closed_on=date(2026, 3, 20),
        decided_on=date(2026, 3, 20),
        outcome=outcome,
        working_days=working_days,
        paused_days=paused_days,
        on_time=on_time,
    )


SHANGHAI_DECIDED = [
    shanghai_decision(2, 0, "corrected"),
    shanghai_decision(3, 0, "corrected"),
    shanghai_decision(3, 1, "corrected"),
    shanghai_decision(4, 0, "corrected"),
    shanghai_decision(5, 2, "refused"),
    shanghai_decision(6, 0, "refused"),
    shanghai_decision(9, 0, "refused", on_time=False),
]
ZHEJIANG_OPEN = [
    CaseFacts(
        kind="objection",
        jurisdiction="zhejiang",
        agency="zj-a",
        category="c1",
        filed_on=date(2026, 3, 9),
        closed_on=None,
    )
] * 6


def test_aggregate_counts_each_case_into_its_month_and_every_dimension():
    aggregates = aggregate([*SHANGHAI_DECIDED, *ZHEJIANG_OPEN], months=["2026-03"])

    for month in ("2026-03", ALL):
        for dimension, value in (("jurisdiction", "shanghai"), ("agency", "sh-a")):
            assert {
                measure: aggregates.counts.get((month, dimension, value, measure), 0)
                for measure in COUNTS
            } == {
                **dict.fromkeys(COUNTS, 0),
                "filed": 7,
                "filed_objection": 7,
                "decided": 7,
                "corrected": 4,
                "refused": 3,
                "on_time": 6,
                "late": 1,
            }
            assert aggregates.days[(month, dimension, value)] == [2, 3, 3, 4, 5, 6, 9]
            assert aggregates.paused[(month, dimension, value)] == [0, 0, 1, 0, 2, 0, 0]
    assert aggregates.counts[("2026-03", ALL, ALL, "filed")] == 13
    assert aggregates.counts[("2026-03", "category", "c1", "backlog")] == 6
    assert aggregates.agencies == {"sh-a": "shanghai", "zj-a": "zhejiang"}


def test_published_table_withholds_small_counts_and_the_figures_that_would_reveal_them():
    facts = [*SHANGHAI_DECIDED, *ZHEJIANG_OPEN]

    figures = publish(aggregate(facts, months=["2026-03"]), labels={})

    # 4 corrected, 3 refused and 1 late are withheld; then on time (6), since decided (7) minus
    # on time would give the late one away. Decided itself stays: its parts keep two withheld.
    shanghai = cell(
        filed=7,
        filed_objection=7,
        decided=7,
        corrected=None,
        refused=None,
        on_time=None,
        late=None,
        median_working_days=4.0,
        median_paused_days=0.0,
    )
    zhejiang = cell(filed=6, filed_objection=6, backlog=10)  # 6 open, to the nearest ten
    platform = cell(
        filed=13,
        filed_objection=13,
        decided=7,
        corrected=None,
        refused=None,
        on_time=None,
        late=None,
        backlog=10,
        median_working_days=4.0,
        median_paused_days=0.0,
    )

    def both(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
        # the month, and the whole period (its only month): the same flows, no backlog (a
        # stock) and no medians (given per month only)
        period = {measure: value for measure, value in values.items() if measure != "backlog"}
        period.update(median_working_days=None, median_paused_days=None)
        return {"2026-03": values, ALL: period}

    assert figures == {
        "months": ["2026-03"],
        "threshold": 5,
        "labels": {},
        "tables": {
            ALL: {ALL: both(platform)},
            "jurisdiction": {"shanghai": both(shanghai), "zhejiang": both(zhejiang)},
            "agency": {"sh-a": both(shanghai), "zj-a": both(zhejiang)},
            "category": {"c1": both(platform)},
        },
    }


def test_flows_count_in_their_own_month_and_the_backlog_is_open_at_month_end():
    facts = [
        # filed before the window, decided in it: only the decision counts
        CaseFacts(
            kind="objection",
            jurisdiction="shanghai",
            agency="sh-a",
            category="c1",
            filed_on=date(2026, 2, 27),
            closed_on=date(2026, 3, 4),
            decided_on=date(2026, 3, 4),
            outcome="deleted",
            working_days=3,
            on_time=True,
        ),
        # filed in March, still open
        CaseFacts("objection", "shanghai", "sh-a", "c1", date(2026, 3, 10), None),
        # filed on the last day of March, withdrawn the next day
        CaseFacts(
            "objection",
            "shanghai",
            "sh-a",
            "c1",
            date(2026, 3, 31),
            date(2026, 4, 1),
            withdrawn_on=date(2026, 4, 1),
        ),
        # filed before the window, still open: backlog only
        CaseFacts("objection", "shanghai", "sh-a", "c1", date(2026, 2, 10), None),
        # a repair filed in April, decided after the window
        CaseFacts(
            kind="repair",
            jurisdiction="shanghai",
            agency="sh-a",
            category="c1",
            filed_on=date(2026, 4, 15),
            closed_on=date(2026, 5, 6),
            decided_on=date(2026, 5, 6),
            outcome="repaired",
            working_days=14,
            on_time=True,
        ),
    ]

    aggregates = aggregate(facts, months=["2026-03", "2026-04"])

    def platform(month: str) -> dict[str, int]:
        return {measure: aggregates.counts.get((month, ALL, ALL, measure), 0) for measure in COUNTS}

    zero = {measure: 0 for measure in COUNTS}
    assert platform("2026-03") == {
        **zero,
        "filed": 2,
        "filed_objection": 2,
        "decided": 1,
        "deleted": 1,
        "on_time": 1,
        "backlog": 3,
    }
    assert platform("2026-04") == {
        **zero,
        "filed": 1,
        "filed_repair": 1,
        "withdrawn": 1,
        "backlog": 3,
    }
    assert platform(ALL) == {
        **zero,
        "filed": 3,
        "filed_objection": 2,
        "filed_repair": 1,
        "decided": 1,
        "deleted": 1,
        "withdrawn": 1,
        "on_time": 1,
    }
    assert (ALL, ALL, ALL, "backlog") not in aggregates.counts
    assert aggregates.days == {
        (month, dimension, value): [3]
        for month in ("2026-03", ALL)
        for dimension, value in ((ALL, ALL), ("jurisdiction", "shanghai"), ("agency", "sh-a"))
    } | {(month, "category", "c1"): [3] for month in ("2026-03", ALL)}


def test_a_median_is_withheld_with_its_count_even_over_five_decisions():
    def decided(jurisdiction: str, agency: str, working_days: int) -> CaseFacts:
        return CaseFacts(
            kind="objection",
            jurisdiction=jurisdiction,
            agency=agency,
            category="c1",
            filed_on=date(2026, 3, 2),
            closed_on=date(2026, 3, 20),
            decided_on=date(2026, 3, 20),
            outcome="corrected",
            working_days=working_days,
            on_time=True,
        )

    facts = [decided("shanghai", "sh-a", days) for days in (1, 2, 3, 4, 5)]
    facts += [decided("zhejiang", "zj-a", days) for days in (8, 9)]

    tables = publish(aggregate(facts, months=["2026-03"]), labels={})["tables"]

    # Zhejiang's 2 are withheld, so Shanghai's 5 are too (the platform's 7 minus 5 would give
    # them), and with them Shanghai's median.
    for month in ("2026-03", ALL):
        assert tables["jurisdiction"]["shanghai"][month]["decided"] is None
        assert tables["jurisdiction"]["shanghai"][month]["median_working_days"] is None
        assert tables["agency"]["sh-a"][month]["median_working_days"] is None
        assert tables["jurisdiction"]["zhejiang"][month]["median_working_days"] is None
        assert tables[ALL][ALL][month]["decided"] == 7
    assert tables[ALL][ALL]["2026-03"]["median_working_days"] == 4.0
    assert tables[ALL][ALL]["2026-03"]["median_paused_days"] == 0.0
    # The period gives medians for no one: its months are kept as first published.
    assert tables[ALL][ALL][ALL]["median_working_days"] is None


@pytest.mark.parametrize(
    ("still_open", "backlog"),
    [(3, None), (5, 10), (14, 10), (15, 20), (24, 20), (25, 30)],
)
def test_the_backlog_is_published_to_the_nearest_ten(still_open: int, backlog: int | None):
    facts = [CaseFacts("objection", "shanghai", "sh-a", "c1", date(2026, 3, 2), None)] * still_open

    tables = publish(aggregate(facts, months=["2026-03", "2026-04"]), labels={})["tables"]

    # A small stock is withheld like any small count; the rest is rounded (half up, at least 10)
    # so that two month-ends do not give away a withheld flow.
    for month in ("2026-03", "2026-04"):
        assert tables[ALL][ALL][month]["backlog"] == backlog
        assert tables["agency"]["sh-a"][month]["backlog"] == backlog
    assert tables[ALL][ALL]["2026-04"]["filed"] == 0


# --- pure: suppression --------------------------------------------------------------------------

AGENCIES = {"sh-a": "shanghai", "sh-b": "shanghai", "zj-a": "zhejiang", "zj-b": "zhejiang"}
CATEGORIES = ("c1", "c2")
MONTH_STARTS = (date(2026, 3, 1), date(2026, 4, 1))
MONTHS = ["2026-03", "2026-04"]


@st.composite
def one_case(draw: st.DrawFn, agency: str, category: str, month_start: date) -> CaseFacts:
    filed_on = month_start + timedelta(days=draw(st.integers(0, 27)))
    # The decision or withdrawal may fall in the same month, the next, or after the window.
    ended_on = filed_on + timedelta(days=draw(st.integers(0, 45)))
    common = {
        "kind": draw(st.sampled_from(["objection", "repair"])),
        "jurisdiction": AGENCIES[agency],
        "agency": agency,
        "category": category,
        "filed_on": filed_on,
    }
    fate = draw(st.sampled_from(["open", "decided", "withdrawn"]))
    if fate == "open":
        return CaseFacts(**common, closed_on=None)
    if fate == "withdrawn":
        return CaseFacts(**common, closed_on=ended_on, withdrawn_on=ended_on)
    return CaseFacts(
        **common,
        closed_on=ended_on,
        decided_on=ended_on,
        outcome=draw(st.sampled_from(OUTCOMES)),
        working_days=draw(st.integers(0, 30)),
        paused_days=draw(st.integers(0, 5)),
        on_time=draw(st.booleans()),
    )


@st.composite
def small_tables(draw: st.DrawFn) -> list[CaseFacts]:
    """2 jurisdictions x 2 agencies x 2 categories x 2 months, 0 to 12 cases filed in each."""
    facts = []
    for agency in AGENCIES:
        for category in CATEGORIES:
            for month_start in MONTH_STARTS:
                for _ in range(draw(st.integers(0, 12))):
                    facts.append(draw(one_case(agency, category, month_start)))
    return facts


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(facts=small_tables())
def test_no_withheld_count_is_the_difference_of_published_figures(facts: list[CaseFacts]):
    # Without any case there is no value, not even the platform's, to publish a cell for.
    assume(facts)
    aggregates = aggregate(facts, months=MONTHS)

    figures = publish(aggregates, labels={})

    for total, parts in relations(aggregates):
        terms = (total, *parts)
        assert total[0] in MONTHS
        assert all(term[0] == total[0] for term in parts)  # each sum within one month
        withheld = [term for term in terms if published(figures, term) is None]
        assert len(withheld) != 1, (total, [(t, aggregates.counts.get(t, 0)) for t in terms])
    for key, true in aggregates.counts.items():
        if key[0] == ALL:
            continue  # the period: checked below against its months
        shown = published(figures, key)
        if 0 < true < THRESHOLD:
            assert shown is None, key
        elif shown is not None:
            assert shown == (to_tens(true) if key[3] == "backlog" else true), key
    for dimension, values in figures["tables"].items():
        for value, months in values.items():
            assert list(months) == [*MONTHS, ALL], (dimension, value)
            # the period: each flow the sum of its published months, withheld if any month is
            for measure in FLOWS:
                shown_parts = [months[month][measure] for month in MONTHS]
                summed = None if None in shown_parts else sum(shown_parts)
                assert months[ALL][measure] == summed, (dimension, value, measure)
                if summed is not None:
                    assert summed == aggregates.counts.get((ALL, dimension, value, measure), 0)
            assert "backlog" not in months[ALL]
            for month, shown_cell in months.items():
                group = (month, dimension, value)
                if (
                    month != ALL
                    and shown_cell["decided"] is not None
                    and shown_cell["decided"] >= THRESHOLD
                ):
                    assert shown_cell["median_working_days"] == statistics.median(
                        aggregates.days[group]
                    )
                    assert shown_cell["median_paused_days"] == statistics.median(
                        aggregates.paused[group]
                    )
                else:
                    assert shown_cell["median_working_days"] is None, group
                    assert shown_cell["median_paused_days"] is None, group


def test_two_cases_of_an_agency_are_not_recovered_across_agencies_nor_from_the_period():
    def filed(agency: str, jurisdiction: str, month: int, count: int) -> list[CaseFacts]:
        day = date(2026, month, 10)
        return [
            CaseFacts(
                kind="objection",
                jurisdiction=jurisdiction,
                agency=agency,
                category="c1",
                filed_on=day,
                closed_on=day,
                decided_on=day,
                outcome="corrected",
                working_days=0,
                on_time=True,
            )
        ] * count

    facts = [
        *filed("sh-a", "shanghai", 3, 2),  # the two cases to protect
        *filed("sh-a", "shanghai", 4, 6),
        *filed("sh-b", "shanghai", 3, 6),
        *filed("sh-b", "shanghai", 4, 7),
        *filed("zj-a", "zhejiang", 3, 9),
        *filed("zj-a", "zhejiang", 4, 9),
    ]
    aggregates = aggregate(facts, months=MONTHS)

    figures = publish(aggregates, labels={})

    def shown(month: str, dimension: str, value: str) -> int | None:
        return published(figures, (month, dimension, value, "filed"))

    assert shown("2026-03", "agency", "sh-a") is None
    # Shanghai in March (8) minus the other agency: withheld too.
    assert (shown("2026-03", "jurisdiction", "shanghai"), shown("2026-03", "agency", "sh-b")) == (
        8,
        None,
    )
    # April is suppressed on its own, and has nothing small: all of it is published.
    assert [
        shown("2026-04", "agency", "sh-a"),
        shown("2026-04", "agency", "sh-b"),
        shown("2026-04", "jurisdiction", "shanghai"),
    ] == [6, 7, 13]
    # The period is the sum of the months, withheld where a month is: the agencies' whole
    # period minus their April would give their March away.
    assert (shown(ALL, "agency", "sh-a"), shown(ALL, "agency", "sh-b")) == (None, None)
    assert (shown(ALL, "jurisdiction", "shanghai"), shown(ALL, "jurisdiction", "zhejiang")) == (
        21,
        18,
    )
    assert (shown("2026-03", ALL, ALL), shown("2026-03", "jurisdiction", "zhejiang")) == (17, 9)
    protected = ("2026-03", "agency", "sh-a", "filed")
    linked = [(total, parts) for total, parts in relations(aggregates) if protected in parts]
    assert linked == [
        (
            ("2026-03", "jurisdiction", "shanghai", "filed"),
            (protected, ("2026-03", "agency", "sh-b", "filed")),
        )
    ]  # Shanghai in March: no sum runs across months any more
    for total, parts in linked:
        assert [published(figures, term) is None for term in (total, *parts)].count(True) == 2


# --- from the database --------------------------------------------------------------------------

GRANT = TransitionInput(
    outcome="granted", reasons="核实后确有错误", correction={"title": "更正后的标题"}
)
REFUSE = TransitionInput(outcome="refused", reasons="记录准确")


def objection(world: World, record: CreditRecord, actor: User | None = None) -> Case:
    return case_file(
        actor=actor or world.citizen,
        record=record,
        kind="objection",
        grounds="inaccurate",
        statement="处罚对象错误",
        requested_remedy="correct",
        correction={"title": "更正后的标题"},
    )


def routed(world: World, record: CreditRecord, actor: User | None = None) -> Case:
    return case_route(case_id=objection(world, record, actor).pk)


def shanghai_record(world: World, number: str) -> CreditRecord:
    return registry_record("shanghai-market", world.subject, number)


@pytest.fixture
def march(world: World, time_machine: TimeMachineFixture) -> dict[str, Any]:
    """Nine cases filed on Monday 2 March 2026 and handled that month: six Shanghai objections
    decided after 1 to 6 working days (the last after its 5-day deadline), a Zhejiang repair
    paused 2 working days for material, a withdrawal and an open Hubei objection."""
    time_machine.move_to(at(MONDAY), tick=False)
    shanghai = [routed(world, shanghai_record(world, f"SH-F-{number}")) for number in range(6)]
    for case in shanghai:
        case_transition(case_id=case.pk, transition="start_review", actor=world.caseworker)
    repair = case_file(
        actor=world.citizen,
        record=world.zj_record,
        kind="repair",
        grounds="obligation_fulfilled",
        statement="已履行全部义务",
        requested_remedy="end_publication",
        correction={},
    )
    repair = case_route(case_id=repair.pk)
    withdrawn = routed(world, world.other_record, actor=world.other_citizen)
    still_open = routed(world, world.hb_record)

    def on(day: int, steps: list[tuple[Case, str, User, TransitionInput | None]]) -> None:
        time_machine.move_to(at(date(2026, 3, day), 11), tick=False)
        for case, transition, actor, data in steps:
            case_transition(case_id=case.pk, transition=transition, actor=actor, data=data)

    material = TransitionInput(material_request="请补充缴款凭证")
    cw, zj = world.caseworker, world.zj_agency_caseworker
    on(3, [(shanghai[0], "grant", cw, GRANT), (repair, "request_material", zj, material)])
    on(4, [(shanghai[1], "grant", cw, GRANT), (withdrawn, "withdraw", world.other_citizen, None)])
    on(
        5,
        [
            (shanghai[2], "grant", cw, GRANT),
            (shanghai[3], "refuse", cw, REFUSE),
            (shanghai[3], "notify_refusal", cw, None),
            (repair, "supply_material", world.citizen, None),
        ],
    )
    on(
        6,
        [
            (shanghai[4], "refuse", cw, REFUSE),
            (shanghai[4], "notify_refusal", cw, None),
            (repair, "refuse", zj, TransitionInput(reasons="不符合修复条件")),
        ],
    )
    on(10, [(shanghai[5], "grant", cw, GRANT)])  # the deadline was Monday 9 March
    return {"shanghai": shanghai, "repair": repair, "withdrawn": withdrawn, "open": still_open}


def test_case_facts_give_working_days_pauses_and_the_deadlines_kept(march: dict[str, Any]):
    facts = list(case_facts(today=REFRESH_DAY))

    def shanghai(day: int, outcome: str, working_days: int, on_time: bool = True) -> CaseFacts:
        decided_on = date(2026, 3, day)
        return CaseFacts(
            kind="objection",
            jurisdiction="shanghai",
            agency="shanghai-market",
            category="penalty-general",
            filed_on=MONDAY,
            closed_on=decided_on,
            decided_on=decided_on,
            outcome=outcome,
            working_days=working_days,
            paused_days=0,
            on_time=on_time,
        )

    assert facts == [
        shanghai(3, "corrected", 1),
        shanghai(4, "corrected", 2),
        shanghai(5, "corrected", 3),
        shanghai(5, "refused", 3),
        shanghai(6, "refused", 4),
        shanghai(10, "corrected", 6, on_time=False),
        CaseFacts(
            kind="repair",
            jurisdiction="zhejiang",
            agency="zhejiang-market",
            category="penalty-general",
            filed_on=MONDAY,
            closed_on=date(2026, 3, 6),
            decided_on=date(2026, 3, 6),
            outcome="refused",
            working_days=4,
            paused_days=2,  # asked on Tuesday, supplied on Thursday
            on_time=True,  # its 2-day completeness clock moved on by the 2 paused days
        ),
        CaseFacts(
            kind="objection",
            jurisdiction="shanghai",
            agency="shanghai-market",
            category="penalty-general",
            filed_on=MONDAY,
            closed_on=date(2026, 3, 4),
            withdrawn_on=date(2026, 3, 4),
        ),
        CaseFacts(
            kind="objection",
            jurisdiction="hubei",
            agency="hubei-market",
            category="penalty-general",
            filed_on=MONDAY,
            closed_on=None,
        ),
    ]


def test_refresh_publishes_counts_and_medians_of_the_cells_with_enough_cases(
    march: dict[str, Any], time_machine: TimeMachineFixture
):
    time_machine.move_to(at(REFRESH_DAY), tick=False)

    publication = figures_refresh()

    assert publication.cases == 9
    tables = publication.figures["tables"]
    platform = cell(
        filed=9,
        filed_objection=None,  # 8 = 9 minus the single repair
        filed_repair=None,
        decided=7,
        corrected=None,
        refused=None,
        withdrawn=None,
        on_time=None,  # 6 = 7 minus the single late one
        late=None,
        backlog=None,  # the Hubei case
        median_working_days=3.0,  # 1, 2, 3, 3, 4, 4, 6
        median_paused_days=0.0,
    )
    assert tables[ALL][ALL]["2026-03"] == platform
    assert tables["category"]["penalty-general"]["2026-03"] == platform
    # Shanghai decided 6, but Zhejiang's single decision is withheld, so Shanghai's are too
    # (the platform's 7 minus 6 would give it away), and with them the median.
    assert tables["jurisdiction"]["shanghai"]["2026-03"] == cell(
        filed=7,
        filed_objection=7,
        decided=None,
        corrected=None,
        refused=None,
        withdrawn=None,
        on_time=None,
        late=None,
    )
    # The 24 months that have ended; June, still under way, is not published.
    assert publication.figures["months"][0] == "2024-06"
    assert publication.figures["months"][-1] == "2026-05"
    assert len(publication.figures["months"]) == 24
    # Every value has a cell in every month: zeros where nothing happened.
    assert tables["jurisdiction"]["shanghai"]["2026-02"] == cell()
    assert tables["jurisdiction"]["hubei"]["2026-04"] == cell(backlog=None)  # 1 still open
    assert publication.figures["labels"]["jurisdiction"]["shanghai"] == {
        "zh": "上海市",
        "en": "Shanghai",
    }


def test_a_published_month_is_kept_as_it_was_when_its_data_changes_later(
    world: World, march: dict[str, Any], time_machine: TimeMachineFixture
):
    time_machine.move_to(at(REFRESH_DAY), tick=False)
    first = figures_refresh()
    # March changes after it was published: one more objection filed and decided there ...
    time_machine.move_to(at(date(2026, 3, 11)), tick=False)
    late = routed(world, shanghai_record(world, "SH-LATE"))
    case_transition(case_id=late.pk, transition="start_review", actor=world.caseworker)
    case_transition(case_id=late.pk, transition="grant", actor=world.caseworker, data=GRANT)
    # ... and five objections filed in June, a month not published yet.
    time_machine.move_to(at(date(2026, 6, 16)), tick=False)
    for number in range(5):
        objection(world, shanghai_record(world, f"SH-J-{number}"))
    july = date(2026, 7, 15)
    time_machine.move_to(at(july), tick=False)
    assert (
        aggregate(case_facts(today=july), months=["2026-03"]).counts[
            ("2026-03", ALL, ALL, "decided")
        ]
        == 8
    )

    second = figures_refresh()

    assert second.cases == 15
    assert second.figures["months"][0] == "2024-07"
    assert second.figures["months"][-1] == "2026-06"
    kept = first.figures["months"][1:]  # 2024-07 to 2026-05, in both publications

    def cells(figures: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
        return {
            (dimension, value, month): months[month]
            for dimension, values in figures["tables"].items()
            for value, months in values.items()
            for month in kept
        }

    assert cells(second.figures) == cells(first.figures)
    tables = second.figures["tables"]
    assert tables[ALL][ALL]["2026-03"]["filed"] == 9
    assert tables[ALL][ALL]["2026-03"]["decided"] == 7
    # June is computed from the cases as they are now: 5 filed, still open (to the nearest ten).
    assert tables[ALL][ALL]["2026-06"] == cell(filed=5, filed_objection=5, backlog=10)
    # The period sums the published months: March as first published, and June.
    assert tables[ALL][ALL][ALL]["filed"] == 9 + 5
    assert tables[ALL][ALL][ALL]["decided"] == 7
    assert tables[ALL][ALL][ALL]["filed_objection"] is None  # withheld in March


# --- pages and open data ------------------------------------------------------------------------


def api(user: User | None = None) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    if user is not None:
        client.force_authenticate(user)
    return client


def flat(html: bytes) -> str:
    return re.sub(r"\s+", " ", html.decode())


def row_labels(html: bytes) -> list[str]:
    """The names of the rows of the first table (the chosen dimension's values)."""
    body = flat(html).split("<tbody>")[1].split("</tbody>")[0]
    return re.findall(r'<th scope="row">([^<]*)</th>', body)


def refreshed(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(at(REFRESH_DAY), tick=False)
    figures_refresh()


def five_shanghai_objections(world: World, time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(at(MONDAY), tick=False)
    for number in range(5):
        objection(world, shanghai_record(world, f"SH-P-{number}"))


@pytest.mark.django_db
def test_before_any_refresh_the_page_says_so_and_the_open_data_is_404(client: Client):
    page = client.get(PAGE, headers={"accept-language": "en"})

    assert page.status_code == 200
    assert "The figures have not been computed yet." in page.content.decode()
    assert "<svg" not in page.content.decode()
    assert client.get(JSON).status_code == 404
    assert client.get(CSV).status_code == 404
    response = api().get(STATS)
    assert (response.status_code, response.json()) == (404, NOT_COMPUTED)


def test_page_shows_the_table_and_charts_in_english(
    world: World, client: Client, time_machine: TimeMachineFixture
):
    five_shanghai_objections(world, time_machine)
    refreshed(time_machine)

    page = client.get(PAGE, headers={"accept-language": "en"})

    assert page.status_code == 200
    html = flat(page.content)
    assert '<html lang="en">' in html
    assert "<h1>How objections are handled</h1>" in html
    assert html.count("<svg") == 3
    # Filed 5 objections, no repair, none decided: no shares, no medians.
    assert (
        '<th scope="row">Shanghai</th> <td>5</td> <td>0</td> <td>0</td> '
        + "<td>—</td>" * 6
        + " <td>0</td> <td>—</td> <td>—</td> <td>—</td> </tr>"
    ) in html
    # Month by month: filed 5, decided 0, on time 0, late 0, open at the end 5 (to the nearest
    # ten: 10); still open at the end of May, the last month published.
    assert (
        '<th scope="row">2026-03</th> <td>5</td> <td>0</td> <td>0</td> <td>0</td> <td>10</td>'
    ) in html
    assert (
        '<th scope="row">2026-05</th> <td>0</td> <td>0</td> <td>0</td> <td>0</td> <td>10</td>'
    ) in html
    assert '<th scope="row">2026-06</th>' not in html


def test_a_month_without_cases_shows_zeros_not_withheld_figures(
    world: World, client: Client, time_machine: TimeMachineFixture
):
    five_shanghai_objections(world, time_machine)
    refreshed(time_machine)

    html = flat(client.get(PAGE, headers={"accept-language": "en"}).content)

    # Nothing was filed, decided or open in February 2026: zeros, not withheld or blank figures,
    # in the table and in the backlog chart.
    assert '<th scope="row">2026-02</th>' + " <td>0</td>" * 5 + " </tr>" in html
    backlog = html.split('aria-label="Cases open at the end of each month"')[1].split("</svg>")[0]
    assert "<title>2026-02: 0</title>" in backlog
    assert "<title>2026-03: 10</title>" in backlog
    assert "—" not in backlog


def test_page_in_chinese_shows_the_same_figures_under_chinese_labels(
    world: World, client: Client, time_machine: TimeMachineFixture
):
    five_shanghai_objections(world, time_machine)
    refreshed(time_machine)

    page = client.get(PAGE, headers={"accept-language": "zh-hans"})

    assert page.status_code == 200
    html = flat(page.content)
    assert '<html lang="zh-hans">' in html
    assert "<h1>异议处理情况</h1>" in html
    assert "How objections are handled" not in html
    assert html.count("<svg") == 3
    assert '<th scope="row">上海市</th> <td>5</td> <td>0</td> <td>0</td>' in html


def test_page_queries_do_not_grow_with_the_cases(
    world: World, client: Client, time_machine: TimeMachineFixture, django_assert_num_queries
):
    time_machine.move_to(at(MONDAY), tick=False)
    objection(world, world.sh_record)
    refreshed(time_machine)
    # The newest publication's id, then (once per process) its figures; then the id alone.
    with django_assert_num_queries(2):
        few = client.get(f"{PAGE}?by=agency", headers={"accept-language": "en"})
    with django_assert_num_queries(1):
        again = client.get(f"{PAGE}?by=agency", headers={"accept-language": "en"})
    assert row_labels(again.content) == row_labels(few.content)

    time_machine.move_to(at(MONDAY), tick=False)
    for record in (world.zj_record, world.hb_record, world.cn_record):
        objection(world, record)
    objection(world, world.other_record, actor=world.other_citizen)
    for number in range(20):
        objection(world, shanghai_record(world, f"SH-Q-{number}"))
    time_machine.move_to(at(REFRESH_DAY, 11), tick=False)
    figures_refresh()
    with django_assert_num_queries(2):
        many = client.get(f"{PAGE}?by=agency", headers={"accept-language": "en"})

    assert row_labels(few.content) == ["Shanghai Administration for Market Regulation"]
    assert row_labels(many.content) == [
        "Hubei Administration for Market Regulation",
        "National Administration for Market Regulation",
        "Shanghai Administration for Market Regulation",
        "Zhejiang Administration for Market Regulation",
    ]


def test_open_data_after_a_refresh(world: World, client: Client, time_machine: TimeMachineFixture):
    five_shanghai_objections(world, time_machine)
    refreshed(time_machine)
    computed_at = "2026-06-15T02:00:00+00:00"  # 10:00 in Shanghai

    stats = api().get(STATS)
    data = client.get(JSON)
    export = client.get(CSV)

    assert stats.status_code == 200
    assert stats.json()["computed_at"] == computed_at
    assert stats.json()["tables"]["jurisdiction"]["shanghai"]["2026-03"]["filed_objection"] == 5
    assert data.status_code == 200
    assert data.json() == stats.json()
    assert export.status_code == 200
    assert export["Content-Type"] == "text/csv; charset=utf-8"
    lines = list(csv.reader(io.StringIO(export.content.decode())))
    assert lines[0] == [
        "computed_at",
        "month",
        "dimension",
        "value",
        *COUNTS,
        "median_working_days",
        "median_paused_days",
    ]
    measures = cell(filed=5, filed_objection=5, backlog=10)
    expected = [computed_at, "2026-03", "jurisdiction", "shanghai"] + [
        "" if measures[m] is None else str(measures[m])
        for m in (*COUNTS, "median_working_days", "median_paused_days")
    ]
    assert expected in lines
    # One line per value (the platform, Shanghai, its agency, the category) and month, zeros
    # included: the 24 published months and the whole period.
    assert len(lines) == 1 + 4 * (24 + 1)
    assert [computed_at, "2024-06", "jurisdiction", "shanghai"] + ["0"] * len(COUNTS) + [
        "",
        "",
    ] in lines


def test_csv_neutralises_a_value_that_begins_like_a_formula(
    world: World, client: Client, time_machine: TimeMachineFixture
):
    national = CatalogueEntry.objects.get(jurisdiction__code="national", code="penalty-general")
    formula = CatalogueEntryFactory(
        jurisdiction=national.jurisdiction, code="=1+2", name_en="Formula", name_zh="公式"
    )
    time_machine.move_to(at(MONDAY), tick=False)
    objection(world, registry_record("shanghai-market", world.subject, "SH-X", category=formula))
    refreshed(time_machine)

    lines = list(csv.reader(io.StringIO(client.get(CSV).content.decode())))

    assert [line[3] for line in lines if line[2] == "category"] == ["'=1+2"] * (24 + 1)
    assert not [line for line in lines if any(value.startswith("=") for value in line)]


# --- oversight ----------------------------------------------------------------------------------


def test_oversight_is_not_found_for_a_citizen(
    world: World, client: Client, time_machine: TimeMachineFixture
):
    refreshed(time_machine)
    client.force_login(world.citizen)

    assert client.get(OVERSIGHT).status_code == 404
    response = api(world.citizen).get(STATS_OVERSIGHT)
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "Not found.", "code": "not_found"},
    )


@pytest.mark.parametrize("who", ["supervisor", "auditor"])
def test_oversight_is_shown_to_supervisors_and_auditors(
    world: World, client: Client, time_machine: TimeMachineFixture, who: str
):
    user = getattr(world, who)
    client.force_login(user)
    before = api(user).get(STATS_OVERSIGHT)
    assert (before.status_code, before.json()) == (404, NOT_COMPUTED)
    empty = client.get(OVERSIGHT, headers={"accept-language": "en"})
    assert empty.status_code == 200
    assert "The figures have not been computed yet." in empty.content.decode()
    refreshed(time_machine)

    page = client.get(OVERSIGHT, headers={"accept-language": "en"})
    response = api(user).get(STATS_OVERSIGHT)

    assert page.status_code == 200
    assert "<h1>Oversight report</h1>" in page.content.decode()
    assert response.status_code == 200
    assert response.json()["computed_at"] == "2026-06-15T02:00:00+00:00"


def test_oversight_counts_refused_import_rows_by_reason(
    world: World, client: Client, import_day: datetime
):
    wrong_check_digit = PERSON_ID[:-1] + ("0" if PERSON_ID[-1] != "0" else "1")
    rows = [
        row("T-1"),
        row("T-2", category="parking-fines"),
        row("T-3", category="parking-fines"),
        row("T-4", facts="当事人血型为A型，患有疾病。"),
        row("T-5", subject_identifier=wrong_check_digit),
        row("T-6", decision_date="2026-02-30"),
    ]
    run_import(world.agency("shanghai-market"), csv_bytes(rows))
    figures_refresh()
    client.force_login(world.supervisor)

    report = api(world.supervisor).get(STATS_OVERSIGHT).json()
    page = flat(client.get(OVERSIGHT, headers={"accept-language": "en"}).content)

    assert report["import_refusals"] == {
        "shanghai-market": {
            "outside_catalogue": 2,
            "prohibited_data": 1,
            "invalid_identifier": 1,
            "other": 1,
        }
    }
    assert '<th scope="row">shanghai-market</th><td>2</td><td>1</td><td>1</td><td>1</td>' in page


def published_record(agency: Agency, number: str, start: date, end: date) -> CreditRecord:
    """A general penalty (at most 12 months' publication) published from `start` to `end`."""
    return CreditRecordFactory(
        agency=agency,
        record_number=number,
        category=CatalogueEntry.objects.get(jurisdiction__code="national", code="penalty-general"),
        decision_date=start,
        conduct_ended_on=start - timedelta(days=10),
        publication_start=start,
        publication_end=end,
        retention_end=date(2031, 1, 1),
    )


@pytest.mark.django_db
def test_oversight_counts_records_published_past_or_beyond_their_period(
    agency: Agency, time_machine: TimeMachineFixture
):
    published_record(agency, "P-12", date(2026, 1, 10), date(2027, 1, 10))  # 12 months: allowed
    published_record(agency, "P-13", date(2026, 1, 10), date(2027, 2, 10))
    published_record(agency, "P-ended", date(2025, 6, 14), date(2026, 6, 14))  # ended yesterday
    time_machine.move_to(at(REFRESH_DAY), tick=False)

    report = figures_refresh().oversight

    assert report["published_past_period"] == {"shanghai-market": 1}
    assert report["published_longer_than_catalogue"] == {"shanghai-market": 1}


@pytest.mark.django_db
def test_oversight_counts_a_record_published_one_day_longer_than_the_catalogue_allows(
    agency: Agency, time_machine: TimeMachineFixture
):
    published_record(agency, "P-12+1", date(2026, 1, 10), date(2027, 1, 11))
    time_machine.move_to(at(REFRESH_DAY), tick=False)

    report = figures_refresh().oversight

    assert report["published_longer_than_catalogue"] == {"shanghai-market": 1}
