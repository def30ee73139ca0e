"""The plan as a graph: the units still to run, grouped into tasks, each with the tasks it waits for.

A task is one unit, except cells: the cells of one train unit form one task (each seed model is loaded once for
all its datasets). A task waits only for what it reads: a training for its candidate's generation (and, through the
per-label cut, for the other generations of its case), a train unit's cells for that training, a score for the
trainings and cells of its case. Cases never wait for each other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rose.pipeline.plan import Plan, Unit

LETTER = {"generate": "g", "train": "t", "evaluate": "e", "score": "s"}


@dataclass
class Node:
    key: str  # the digest of its first unit (unique in a study)
    kind: str  # generate, train, evaluate or score
    case: tuple[str, str]
    units: list[Unit]
    needs: list[str] = field(default_factory=list)  # keys of the nodes it waits for
    name: str = ""  # a short id for the log: g1, t3, e2, s1

    @property
    def label(self) -> str:
        if len(self.units) == 1:
            return self.units[0].label
        first = self.units[0]
        on = [u.on for u in self.units]
        shown = ", ".join(on) if len(on) <= 4 else f"{', '.join(on[:3])} and {len(on) - 3} more"
        return f"{first.stage:<8} {first.task}/{first.language} {first.who} on {shown}"


def nodes(plan: Plan, cases: set[tuple[str, str]] | None = None, *, names: Counter | None = None) -> list[Node]:
    """The tasks of the units still to run (of ``cases``, default all), in an order where needs come first."""
    names = names if names is not None else Counter()
    todo = [u for u in plan.units if not u.run_id and (cases is None or (u.task, u.language) in cases)]
    out: list[Node] = []
    node_of: dict[str, Node] = {}  # unit digest -> its node
    cells: dict[str, Node] = {}  # train digest -> the node of its cells
    generations: dict[tuple[str, str], list[str]] = {}  # per case: its generation nodes (the cut waits for all)
    for unit in todo:
        case = (unit.task, unit.language)
        if unit.stage == "evaluate" and unit.needs[0] in cells:
            node = cells[unit.needs[0]]
            node.units.append(unit)
        else:
            node = Node(unit.digest, unit.stage, case, [unit])
            out.append(node)
            if unit.stage == "evaluate":
                cells[unit.needs[0]] = node
        node_of[unit.digest] = node
        if unit.stage == "generate":
            generations.setdefault(case, []).append(node.key)
        if unit.stage == "train":  # the per-label cut of its case: known once every generation of the case is done
            node.needs.extend(k for k in generations.get(case, []) if k not in node.needs)
        for need in unit.needs:
            if need in node_of and node_of[need].key not in node.needs and node_of[need] is not node:
                node.needs.append(node_of[need].key)
    for node in out:
        names[node.kind] += 1
        node.name = f"{LETTER[node.kind]}{names[node.kind]}"
    return out


def describe(graph: list[Node], what=None) -> str:
    """One line per task: its id, what it is, the ids it waits for, and (``what(node)``) its resources."""
    by_key = {n.key: n for n in graph}
    lines = ["graph (each task starts when the tasks after '<-' are done):"]
    for node in graph:
        names = [by_key[k].name for k in node.needs if k in by_key]
        waits = " ".join(names) if len(names) <= 8 else f"{' '.join(names[:6])} ... {names[-1]} ({len(names)})"
        extra = f"  [{what(node)}]" if what else ""
        lines.append(f"  {node.name:>4} {node.label}{'  <- ' + waits if waits else ''}{extra}")
    return "\n".join(lines)
