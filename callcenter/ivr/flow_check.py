"""Meaning checks across a flow set, each problem a ``Diagnostic`` with file:line:col.

What the schema cannot see: targets that name no node or flow, nodes no path reaches, prompts
with no text, variables nobody sets, secrets that would be spoken or copied, actions the engine
does not know, queues the ACD does not have, cycles that never wait for the caller or never
let them out, and menus with more options than a caller takes in (``MAX_MENU_OPTIONS``). A
misspelt name gets a "did you mean" from the names that exist.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from difflib import get_close_matches

from callcenter.broker.interface import RefusalCode
from callcenter.ivr.flow_model import (
    DECIMAL_VALIDATORS,
    VAR_REF,
    Action,
    Branch,
    Collect,
    Confirm,
    Flow,
    Hangup,
    Hours,
    MenuNode,
    Node,
    Play,
    PromptItem,
    Queue,
    Record,
    Return,
    Say,
    SetVars,
    SubFlow,
)
from callcenter.ivr.flowset import Diagnostic, FlowSet
from callcenter.ivr.yaml_source import Where

At = Callable[[tuple[str | int, ...]], Where]

#: variables the engine sets for every call
BUILTINS = frozenset({"caller", "lang", "call_id", "customer", "refusal", "last_failure",
                      "idempotency_key", "recording"})
#: prompts the interpreter itself may play
BUILTIN_PROMPTS = ("goodbye", "invalid_choice", "no_input")
#: prompts the interpreter plays in a ``collect`` ended by ``#`` (an entry too long), and in a
#: price or amount (``*`` misplaced: it is the decimal point there)
TOO_LONG_PROMPT = "input_too_long"
STAR_PROMPT = "star_is_point"
#: "end": a list action (``next_item``) has nothing more
LANGUAGES = ("zh", "en")
OUTCOMES = frozenset({"ok", "error", "default", "end"} | {c.value for c in RefusalCode})
WAITS = (MenuNode, Collect, Confirm, Record)
#: ``say: refusal`` speaks ``refusal/<code>``: each needs a text
REFUSAL_PROMPTS = ("error", *(c.value for c in RefusalCode))
#: options a menu may offer a caller at one level (the agent key counts; a language switch, said
#: in the other language for those who do not follow this one, does not): docs/speech.md
MAX_MENU_OPTIONS = 5


def ref_name(value: object) -> str | None:
    """``$quote.last`` -> ``quote.last``; literals -> None."""
    if isinstance(value, str) and value.startswith("$"):
        return value[1:]
    return None


def did_you_mean(name: str, known: Collection[str]) -> str:
    """`` (did you mean 'general'?)`` when ``name`` looks like a misspelling of a known one."""
    close = get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def fail_target(flow: Flow, node: MenuNode | Collect | Confirm) -> str | None:
    return node.fail or flow.defaults.fail or flow.defaults.agent


def _sets_language(flow: Flow, target: str, menu: str) -> bool:
    """A ``set`` of ``lang`` that goes back to ``menu``: the same menu again, in the other
    language (one that sets it and goes on to a service is an option like any other)."""
    node = flow.nodes.get(target)
    return isinstance(node, SetVars) and "lang" in node.values and node.next == menu


def _switches_language(flow: Flow, target: str, menu: str) -> bool:
    """The option only changes the language: a ``set`` of ``lang`` back to this menu, or a
    branch choosing one."""
    node = flow.nodes.get(target)
    if isinstance(node, Branch):
        return all(_sets_language(flow, t, menu)
                   for t in (*(c.goto for c in node.cases), node.otherwise))
    return _sets_language(flow, target, menu)


def menu_keys(flow: Flow, name: str) -> list[str]:
    """The keys menu ``name`` offers the caller, as counted against ``MAX_MENU_OPTIONS``: its
    options (a language switch left out) and the agent key when the flow has an agent."""
    node = flow.nodes[name]
    assert isinstance(node, MenuNode)
    keys = [k for k, target in node.options.items()
            if not _switches_language(flow, target, name)]
    agent_key = flow.defaults.agent_key
    if agent_key and flow.defaults.agent and agent_key not in node.options:
        keys.append(agent_key)
    return keys


def edges(flow: Flow, node: Node) -> Iterator[str]:
    """Every target a node may go to (``None`` fail targets end the call: not edges)."""
    for _, target in located_edges(flow, node):
        yield target


def located_edges(flow: Flow, node: Node) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Targets with the key path (inside the node) that names them, for error positions."""
    match node:
        case Play() | SetVars() | SubFlow() | Record() | Collect():
            yield ("next",), node.next
        case MenuNode():
            for key, target in node.options.items():
                yield ("options", key), target
            if flow.defaults.agent_key and flow.defaults.agent:
                yield ("options",), flow.defaults.agent
        case Confirm():
            yield ("yes",), node.yes
            yield ("no",), node.no
        case Action():
            for outcome, target in node.on.items():
                yield ("on", outcome), target
        case Branch():
            for i, case in enumerate(node.cases):
                yield ("cases", i, "goto"), case.goto
            yield ("else",), node.otherwise
        case Hours():
            yield ("open",), node.open
            yield ("closed",), node.closed
        case Queue() | Hangup() | Return():
            pass
    if isinstance(node, MenuNode | Collect | Confirm):
        fail = fail_target(flow, node)
        if fail is not None:
            yield ("fail",), fail


def _prompt_items(node: Node) -> Iterator[tuple[str, PromptItem]]:
    for field in ("prompts", "invalid_prompts", "timeout_prompts"):
        for item in getattr(node, field, None) or ():
            yield field, item


def check_flowset(fs: FlowSet, actions: frozenset[str] | None = None,
                  queues: frozenset[str] | None = None) -> list[Diagnostic]:
    """Every meaning problem of ``fs``; ``actions`` and ``queues`` (the ACD's queue names, from
    ``acd.queues`` in the settings) are checked when given."""
    out: list[Diagnostic] = []
    for flow in fs.flows.values():
        out.extend(_check_flow(fs, flow, actions, queues))
    if fs.flows:
        collects = [n for f in fs.flows.values() for n in f.nodes.values()
                    if isinstance(n, Collect)]
        needed = (*BUILTIN_PROMPTS,
                  *((TOO_LONG_PROMPT,) if any(n.terminator for n in collects) else ()),
                  *((STAR_PROMPT,) if any(n.validator in DECIMAL_VALIDATORS
                                          for n in collects) else ()))
        for ident in needed:
            if ident not in fs.prompts:
                first = next(iter(fs.flows))
                out.append(Diagnostic(fs.locations[first].at(()),
                                      f"built-in prompt {ident!r} has no text"))
    return out


def _check_flow(fs: FlowSet, flow: Flow, actions: frozenset[str] | None,
                queues: frozenset[str] | None) -> list[Diagnostic]:
    locs = fs.locations[flow.flow]
    out: list[Diagnostic] = []

    def problem(path: tuple[str | int, ...], message: str) -> None:
        out.append(Diagnostic(locs.at(path), message))

    def check_target(path: tuple[str | int, ...], target: str) -> None:
        if target.startswith("flow:"):
            if target[5:] not in fs.flows:
                problem(path, f"unknown flow {target[5:]!r}{did_you_mean(target[5:], fs.flows)}")
        elif target not in flow.nodes:
            problem(path, f"unknown node {target!r}{did_you_mean(target, flow.nodes)}")

    secrets = {n.var for n in flow.nodes.values() if isinstance(n, Collect) and n.secret}
    defined = set(BUILTINS) | set(flow.inputs)
    for n in flow.nodes.values():
        if isinstance(n, Collect) and not n.secret:
            defined.add(n.var)
        elif isinstance(n, Action) and n.result:
            defined.add(n.result)
        elif isinstance(n, SetVars):
            defined.update(n.values)

    def check_ref(path: tuple[str | int, ...], ref: str, *, secret_ok: bool = False) -> None:
        if not VAR_REF.fullmatch(ref):
            problem(path, f"{ref!r} is not a variable reference")
            return
        root = ref.split(".")[0]
        if root in secrets:
            if not secret_ok:
                problem(path, f"secret {root!r} may only be passed to an action")
        elif root not in defined:
            problem(path, f"undefined variable {root!r}")

    check_target(("start",), flow.start)
    for key in ("agent", "fail"):
        target = getattr(flow.defaults, key)
        if target is not None:
            check_target(("defaults", key), target)
    for name, node in flow.nodes.items():
        base: tuple[str | int, ...] = ("nodes", name)
        for where, target in located_edges(flow, node):
            check_target((*base, *where), target)
        for field, item in _prompt_items(node):
            if isinstance(item, Say):
                check_ref((*base, field), item.value)
                if item.say == "refusal":
                    missing = [f"refusal/{c}" for c in REFUSAL_PROMPTS
                               if f"refusal/{c}" not in fs.prompts]
                    if missing:
                        problem((*base, field), f"missing prompts {', '.join(missing)}")
            elif item not in fs.prompts:
                problem((*base, field), f"missing prompt {item!r} (no text in prompts*.yaml)"
                                        f"{did_you_mean(item, fs.prompts)}")
        match node:
            case Action():
                if actions is not None and node.action not in actions:
                    problem((*base, "action"), f"unknown action {node.action!r}"
                                               f"{did_you_mean(node.action, actions)}")
                for outcome in node.on:
                    if outcome not in OUTCOMES:
                        problem((*base, "on", outcome), f"unknown outcome {outcome!r}")
                for arg, value in node.args.items():
                    ref = ref_name(value)
                    if ref is not None:
                        check_ref((*base, "args", arg), ref, secret_ok=True)
            case Branch():
                for i, case in enumerate(node.cases):
                    check_ref((*base, "cases", i), case.when.var)
            case SetVars():
                for var, set_value in node.values.items():
                    ref = ref_name(set_value)
                    if ref is not None:
                        check_ref((*base, "values", var), ref)
                    elif var == "lang" and set_value not in LANGUAGES:
                        problem((*base, "values", var), f"lang must be one of {LANGUAGES}")
            case SubFlow():
                if node.flow not in fs.flows:
                    problem((*base, "flow"), f"unknown flow {node.flow!r}"
                                             f"{did_you_mean(node.flow, fs.flows)}")
            case MenuNode():
                keys = menu_keys(flow, name)
                if len(keys) > MAX_MENU_OPTIONS:
                    problem((*base, "options"),
                            f"menu offers {len(keys)} options ({' '.join(keys)}); a caller "
                            f"takes in at most {MAX_MENU_OPTIONS} at a level: group the less "
                            "used ones into a sub-menu (the agent key counts)")
            case Hours():
                if node.schedule not in fs.schedules:
                    problem((*base, "schedule"), f"unknown schedule {node.schedule!r} "
                                                 "(define it in schedules.yaml)"
                                                 f"{did_you_mean(node.schedule, fs.schedules)}")
            case Queue():
                if queues is not None and node.queue not in queues:
                    problem((*base, "queue"), f"unknown queue {node.queue!r}"
                            f"{did_you_mean(node.queue, queues)}; the ACD's queues (acd.queues "
                            f"in the settings): {', '.join(sorted(queues))}")
                for var in node.context:
                    check_ref((*base, "context"), var)
            case _:
                pass

    for field in ("timeout_prompts", "invalid_prompts"):
        for item in getattr(flow.defaults, field):
            if isinstance(item, str) and item not in fs.prompts:
                problem(("defaults", field), f"missing prompt {item!r}")
            elif isinstance(item, Say):
                check_ref(("defaults", field), item.value)
    out.extend(_reachability(flow, locs.at))
    out.extend(_cycles(flow, locs.at))
    return out


def _reachability(flow: Flow, at: At) -> list[Diagnostic]:
    seen: set[str] = set()
    todo = [flow.start]
    if flow.defaults.agent and not flow.defaults.agent.startswith("flow:"):
        todo.append(flow.defaults.agent)
    while todo:
        name = todo.pop()
        if name in seen or name not in flow.nodes:
            continue
        seen.add(name)
        todo.extend(t for t in edges(flow, flow.nodes[name]) if not t.startswith("flow:"))
    return [Diagnostic(at(("nodes", name)), f"node {name!r} is unreachable from start "
                                            f"{flow.start!r}")
            for name in flow.nodes if name not in seen]


def _cycles(flow: Flow, at: At) -> list[Diagnostic]:
    """Tarjan's strongly connected components over the node graph."""
    graph = {name: [t for t in edges(flow, node) if t in flow.nodes]
             for name, node in flow.nodes.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(component)

    for name in graph:
        if name not in index:
            visit(name)

    out = []
    for comp in components:
        members = set(comp)
        if len(comp) == 1 and comp[0] not in graph[comp[0]]:
            continue
        ordered = sorted(comp)
        label = " -> ".join(ordered)
        first = ("nodes", ordered[0])
        if not any(isinstance(flow.nodes[n], WAITS) for n in comp):
            out.append(Diagnostic(at(first), f"cycle {label} never waits for the caller"))
            continue
        leaves = False
        for n in comp:
            node = flow.nodes[n]
            targets = list(edges(flow, node))
            if any(t not in members for t in targets):
                leaves = True
            if isinstance(node, MenuNode | Collect | Confirm) and fail_target(flow, node) is None:
                leaves = True  # exhausted retries end the call
        if not leaves:
            out.append(Diagnostic(at(first), f"cycle {label} has no way out"))
    return out
