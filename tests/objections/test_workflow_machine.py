"""Hypothesis state machines over the pure engine, one per built-in definition.

Each machine holds a case's current state and walks it with two rules: try any transition name
of the definition with any role (most attempts are refused), and take a step some role is
offered. What holds after every step, for every built-in definition:

1. `step()` succeeds exactly when the transition is defined from the current state and the role
   is among its roles; on success the new state is the transition's target, and it is the same
   Transition that `available()` offers that role.
2. A terminal state changes only through a transition named in `reopen_by_review`.
3. In a non-terminal state some role can take a step, and a clock runs: the state has a timer,
   or it is marked `untimed` and the clock was paused on the way in (the case waits on the
   applicant). Entering a terminal state stops all clocks.
4. Every timer running in the current state has its start: it starts on "entered" or "filed", or
   on a transition this case has taken.
5. No timer decides the case: each one escalates or reminds.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from objections.workflow import ROLES, InvalidTransition, Transition, load_builtin

BUILTIN = load_builtin()
ROLE_LIST = sorted(ROLES)


def machine_for(key: str) -> type[RuleBasedStateMachine]:
    definition = BUILTIN[key]
    names = sorted({t.name for t in definition.transitions})

    class WorkflowMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.state = definition.initial
            self.taken: set[str] = set()
            self.visited = {definition.initial}
            self.paused = False

        def expected(self, name: str, role: str) -> Transition | None:
            matches = [
                t for t in definition.transitions if t.source == self.state and t.name == name
            ]
            assert len(matches) <= 1
            return matches[0] if matches and role in matches[0].roles else None

        def move(self, taken: Transition) -> None:
            if definition.is_terminal(self.state):
                assert taken.name in definition.reopen_by_review
            self.taken.add(taken.name)
            if taken.pauses_clock:
                self.paused = True
            if taken.resumes_clock:
                self.paused = False
            if definition.is_terminal(taken.target):
                self.paused = False
            self.state = taken.target
            self.visited.add(taken.target)

        def offered(self) -> list[tuple[Transition, str]]:
            return [
                (t, role)
                for role in ROLE_LIST
                for t in definition.available(state=self.state, role=role)
            ]

        @rule(name=st.sampled_from(names), role=st.sampled_from(ROLE_LIST))
        def try_any_step(self, name: str, role: str) -> None:
            expected = self.expected(name, role)
            try:
                taken = definition.step(state=self.state, transition=name, role=role)
            except InvalidTransition:
                assert expected is None
                return
            assert taken is expected
            assert taken in definition.available(state=self.state, role=role)
            self.move(taken)

        @rule(data=st.data())
        def take_an_offered_step(self, data: st.DataObject) -> None:
            offered = self.offered()
            if offered:
                chosen, role = data.draw(st.sampled_from(offered))
                assert (
                    definition.step(state=self.state, transition=chosen.name, role=role) is chosen
                )
                self.move(chosen)

        @rule(data=st.data())
        def explore(self, data: st.DataObject) -> None:
            # Prefer open states this case has not been in yet, then any open state, so that
            # runs reach the deep states (execution, review) instead of mostly withdrawing
            # early; the other two rules reach the terminal states.
            offered = self.offered()
            open_ = [(t, r) for t, r in offered if not definition.is_terminal(t.target)]
            fresh = [(t, r) for t, r in open_ if t.target not in self.visited]
            if offered:
                chosen, role = data.draw(st.sampled_from(fresh or open_ or offered))
                assert (
                    definition.step(state=self.state, transition=chosen.name, role=role) is chosen
                )
                self.move(chosen)

        @invariant()
        def non_terminal_states_can_move_and_a_clock_runs(self) -> None:
            state = definition.states[self.state]
            if state.terminal:
                assert not self.paused
                return
            assert any(definition.available(state=self.state, role=r) for r in ROLE_LIST)
            assert definition.timers_for(self.state) or state.untimed
            assert self.paused == state.untimed

        @invariant()
        def terminal_states_offer_only_review(self) -> None:
            if definition.is_terminal(self.state):
                leaving = {t.name for t in definition.transitions_from(self.state)}
                assert leaving <= set(definition.reopen_by_review)

        @invariant()
        def running_timers_have_started(self) -> None:
            for timer in definition.timers_for(self.state):
                assert timer.starts_on in {"entered", "filed"} or timer.starts_on in self.taken
                assert timer.on_expiry in {"escalate", "remind"}

    WorkflowMachine.__name__ = WorkflowMachine.__qualname__ = f"Machine[{key}]"
    WorkflowMachine.TestCase.settings = settings(
        max_examples=150, stateful_step_count=40, deadline=None
    )
    return WorkflowMachine


TestShanghaiObjectionMachine = machine_for("shanghai-objection").TestCase
TestZhejiangObjectionMachine = machine_for("zhejiang-objection").TestCase
TestZhejiangRepairMachine = machine_for("zhejiang-repair").TestCase
TestHubeiObjectionMachine = machine_for("hubei-objection").TestCase
TestHubeiRepairMachine = machine_for("hubei-repair").TestCase
TestNationalRepairMachine = machine_for("national-repair").TestCase
TestPbocObjectionMachine = machine_for("pboc-objection").TestCase
TestCreditChinaObjectionMachine = machine_for("credit-china-objection").TestCase
TestNationalRepair2023Machine = machine_for("national-repair-2023").TestCase
TestNationalListRemovalMachine = machine_for("national-list-removal").TestCase
TestShanghaiCreditServiceObjectionMachine = machine_for(
    "shanghai-credit-service-objection"
).TestCase
TestShanghaiRepairMachine = machine_for("shanghai-repair").TestCase
TestShanghaiRevocationDeletionMachine = machine_for("shanghai-revocation-deletion").TestCase


def test_every_built_in_definition_has_a_machine() -> None:
    covered = {
        "shanghai-objection",
        "zhejiang-objection",
        "zhejiang-repair",
        "hubei-objection",
        "hubei-repair",
        "national-repair",
        "pboc-objection",
        "credit-china-objection",
        "national-repair-2023",
        "national-list-removal",
        "shanghai-credit-service-objection",
        "shanghai-repair",
        "shanghai-revocation-deletion",
    }

    assert covered == set(BUILTIN)
