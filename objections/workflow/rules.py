"""The legal rule checks of a definition: reachability, who may decide and approve, timers.

Each check adds what is wrong to `Problems`, so that one definition's report lists every
problem at once."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace

from objections.workflow.model import (
    EFFECTS,
    NON_APPROVER_ROLES,
    REQUIRED_FIELDS,
    ROLES,
    STAFF_ROLES,
    START_EVENTS,
    Body,
    Document,
    GuardValue,
    State,
    Timer,
    Transition,
)


class Problems:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.items: list[str] = []

    def add(self, element: str, message: str) -> None:
        self.items.append(f"{self.origin}: {element}: {message}")


def _reachable(initial: str, transitions: Iterable[Transition], *, skip: str = "") -> set[str]:
    """States reachable from `initial`, optionally never taking transitions named `skip`."""
    edges: dict[str, set[str]] = {}
    for t in transitions:
        if t.name != skip:
            edges.setdefault(t.source, set()).add(t.target)
    seen = {initial}
    queue = deque([initial])
    while queue:
        for target in edges.get(queue.popleft(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _check_graph(
    problems: Problems,
    initial: str | None,
    states: Mapping[str, State],
    transitions: list[Transition],
    reopen: tuple[str, ...],
) -> list[Transition]:
    """Check states and transitions together; return the transitions between known states."""
    if initial is not None and initial not in states:
        problems.add("initial", f"unknown state {initial!r}")
    if initial is not None and initial in states and states[initial].terminal:
        problems.add("initial", f"state {initial!r} is terminal")

    sound: list[Transition] = []
    seen_names: dict[tuple[str, str], Transition] = {}
    seen_edges: dict[tuple[str, str, tuple[str, ...]], Transition] = {}
    for t in transitions:
        element = f"transition {t.name!r} from {t.source!r}"
        known = True
        if t.name in START_EVENTS:
            problems.add(element, f"the name {t.name!r} is reserved for timers' starts_on")
        if t.source not in states:
            problems.add(element, f"unknown source state {t.source!r}")
            known = False
        if t.target not in states:
            problems.add(element, f"unknown target state {t.target!r}")
            known = False
        for role in sorted(t.roles - ROLES):
            problems.add(element, f"unknown role {role!r}")
        for role in sorted(t.approver_roles - ROLES):
            problems.add(element, f"unknown approver role {role!r}")
        for role in sorted(t.approver_roles & NON_APPROVER_ROLES):
            problems.add(element, f"role {role!r} cannot approve")
        for effect in t.effects:
            if effect not in EFFECTS:
                problems.add(element, f"unknown effect {effect!r}")
        if len(set(t.effects)) != len(t.effects):
            problems.add(element, "an effect is listed twice")
        for required in t.requires:
            if required not in REQUIRED_FIELDS:
                problems.add(element, f"unknown required field {required!r}")
        if t.second_person and not t.approver_roles:
            problems.add(element, "second_person needs approver_roles")
        if t.approver_roles and not t.second_person:
            problems.add(element, "approver_roles given but second_person is false")
        # A decision has an outcome and reasons that a person answers for; letting the system
        # role take it would let a timer or a batch job decide a case.
        if "outcome" in t.requires and "system" in t.roles:
            problems.add(element, "requires an outcome, so it is a decision the system cannot take")
        if t.pauses_clock and t.resumes_clock:
            problems.add(element, "cannot both pause and resume the clock")
        if t.extends_clock:
            if not t.second_person:
                problems.add(element, "an extension needs a second person's approval")
            if "extension_reason" not in t.requires:
                problems.add(element, "an extension needs requires: [extension_reason]")

        name_key = (t.source, t.name)
        if name_key in seen_names:
            problems.add(element, "defined more than once from this state")
        else:
            seen_names[name_key] = t
        # Two names for one step (same source, target and effects) is a copy-paste slip.
        edge_key = (t.source, t.target, t.effects)
        first = seen_edges.setdefault(edge_key, t)
        if first.name != t.name:
            problems.add(
                element, f"same target {t.target!r} and effects as transition {first.name!r}"
            )
        if known:
            sound.append(t)

    for t in sound:
        element = f"transition {t.name!r} from {t.source!r}"
        source, target = states[t.source], states[t.target]
        if source.terminal and t.name not in reopen:
            problems.add(
                element,
                f"leaves terminal state {t.source!r} but is not listed in reopen_by_review",
            )
        if t.pauses_clock and not target.untimed:
            problems.add(element, f"pauses the clock but target {t.target!r} is not untimed")
        if target.untimed and not t.pauses_clock:
            problems.add(element, f"enters untimed state {t.target!r} without pausing the clock")
        if t.resumes_clock and not source.untimed:
            problems.add(element, f"resumes the clock but source {t.source!r} is not untimed")
        if source.untimed and not target.untimed and not target.terminal and not t.resumes_clock:
            problems.add(
                element,
                f"leaves untimed state {t.source!r} for {t.target!r} without resuming the clock",
            )

    for name in reopen:
        if not any(t.name == name and states[t.source].terminal for t in sound):
            problems.add(
                "reopen_by_review", f"{name!r} is not a transition out of a terminal state"
            )

    if initial is not None and initial in states:
        reachable = _reachable(initial, sound)
        for name in states:
            if name not in reachable:
                problems.add(f"state {name!r}", f"unreachable from initial state {initial!r}")
    terminals = {name for name, s in states.items() if s.terminal}
    for name, state in states.items():
        if state.terminal:
            continue
        if not any(t.source == name for t in sound):
            problems.add(f"state {name!r}", "not terminal but has no outgoing transition")
        elif not _reachable(name, sound) & terminals:
            problems.add(f"state {name!r}", "no terminal state can be reached from it")
    return sound


def _check_timers(
    problems: Problems,
    initial: str | None,
    states: Mapping[str, State],
    transitions: list[Transition],
    timers: list[Timer],
    timed_states: set[str],
) -> None:
    transition_names = {t.name for t in transitions}
    seen: set[tuple[str, str]] = set()
    by_name: dict[str, Timer] = {}
    for timer in timers:
        element = f"timer {timer.name!r}"
        if (timer.name, timer.state) in seen:
            problems.add(element, f"defined more than once for state {timer.state!r}")
        seen.add((timer.name, timer.state))
        # One name is one legal period; entries sharing it may differ only in their state.
        first = by_name.setdefault(timer.name, timer)
        if first is not timer and replace(first, state=timer.state) != timer:
            problems.add(element, "entries with this name differ in more than their state")

        state = states.get(timer.state)
        if state is None:
            problems.add(element, f"unknown state {timer.state!r}")
        elif state.terminal:
            problems.add(element, f"state {timer.state!r} is terminal")
        elif state.untimed:
            problems.add(element, f"state {timer.state!r} is marked untimed")

        for name in timer.cancelled_by:
            if name not in transition_names:
                problems.add(element, f"cancelled_by names no transition {name!r}")
        if timer.starts_on not in START_EVENTS:
            if timer.starts_on not in transition_names:
                problems.add(
                    element,
                    f"starts_on {timer.starts_on!r} is neither 'entered', 'filed' nor a transition",
                )
            # The anchor must exist whenever the timer runs: every path into the state passes
            # through the starting transition.
            elif (
                state is not None
                and initial is not None
                and initial in states
                and timer.state in _reachable(initial, transitions, skip=timer.starts_on)
            ):
                problems.add(
                    element,
                    f"state {timer.state!r} can be reached without transition "
                    f"{timer.starts_on!r}, so the timer may have no start",
                )
        # One policy for every definition: a number not verified against the official text
        # reminds; only a verified one escalates.
        if timer.on_expiry == "escalate" and not timer.source.verified:
            problems.add(
                element, "escalates on an unverified source (an unverified number only reminds)"
            )

    # A period that starts on a transition opens in the state that transition leads to, so the
    # clock can be started as the case arrives there (and not later, in some state further on).
    runs_in: dict[str, set[str]] = {}
    for timer in timers:
        runs_in.setdefault(timer.name, set()).add(timer.state)
    for name, timer_states in runs_in.items():
        anchor = next(t.starts_on for t in timers if t.name == name)
        if anchor in START_EVENTS:
            continue
        for t in transitions:
            if t.name == anchor and t.target not in timer_states:
                problems.add(
                    f"timer {name!r}",
                    f"starts on {anchor!r} but does not run in {t.target!r}, where it leads",
                )

    extendable = {t.state for t in timers if t.extension_cap is not None}
    for t in transitions:
        if t.extends_clock and t.source not in extendable:
            problems.add(
                f"transition {t.name!r} from {t.source!r}",
                f"extends the clock but no timer in {t.source!r} has an extension_cap",
            )
        # A pause stops every clock running when it is taken, so each must allow it.
        if t.pauses_clock:
            for timer in timers:
                if timer.state == t.source and not timer.pausable:
                    problems.add(
                        f"transition {t.name!r} from {t.source!r}",
                        f"pauses the clock but timer {timer.name!r} is not pausable",
                    )
    for name, s in states.items():
        if not s.terminal and not s.untimed and name not in timed_states:
            problems.add(f"state {name!r}", "not terminal, has no timer and is not marked untimed")


def _check_wait_guard(
    problems: Problems,
    guards: Mapping[str, GuardValue],
    transitions: list[Transition],
    timers: list[Timer],
) -> None:
    waits = guards.get("wait_for_timer")
    if not isinstance(waits, Mapping):
        return
    for transition_name, timer_name in waits.items():
        sources = {t.source for t in transitions if t.name == transition_name}
        if not sources:
            problems.add("guard 'wait_for_timer'", f"unknown transition {transition_name!r}")
            continue
        for source in sorted(sources):
            if not any(t.name == timer_name and t.state == source for t in timers):
                problems.add(
                    "guard 'wait_for_timer'",
                    f"no timer {timer_name!r} runs in {source!r}, "
                    f"the source of {transition_name!r}",
                )


def _check_bodies(
    problems: Problems,
    transitions: Iterable[Transition],
    bodies: Mapping[str, Body],
    documents: Mapping[str, Document],
    *,
    declared: bool,
) -> None:
    """Where a definition names its bodies, every staff role that takes or approves a step is
    one of them: the file says which body takes each step. Every document a step needs is
    declared with its source."""
    used: set[str] = set()
    for t in transitions:
        used |= (t.roles | t.approver_roles) & STAFF_ROLES
        element = f"transition {t.name!r} from {t.source!r}"
        for key in t.documents:
            if key not in documents:
                problems.add(element, f"unknown document {key!r}")
        if t.documents and "system" in t.roles:
            problems.add(element, "a step that needs documents is taken by a person, not system")
    if declared:
        for role in sorted(used - set(bodies)):
            problems.add("bodies", f"role {role!r} takes a step but no body is named for it")
        for role in sorted(set(bodies) - used):
            problems.add("bodies", f"role {role!r} is named but takes no step")
