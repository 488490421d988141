"""YAML's surprises in plain words, for operators who edit the flows.

``explain`` turns a PyYAML syntax error into a sentence a non-programmer understands, placed at
the line that needs the fix (often not where the parser gave up: an unclosed quote, a missing
colon or a ``#`` inside braces are noticed lines later). ``traps`` finds what parses but means
something else than it looks: an unquoted ``#:`` key is a comment and vanishes, ``terminator: #``
is empty, a prompt text is cut at `` # ``. ``doubts`` finds what may be such a trap or may be a
comment (a ``#:`` line where no key is expected): a warning, not an error. Each message ends with
the offending line and a caret under the column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import yaml

#: a key at the start of a line that YAML reads as a comment: ``#: agent``
HASH_KEY = re.compile(r"^(\s*)#\s*:(\s|$)")
#: fields whose value is a phone key: ``terminator: #`` there is a comment, not the key
KEY_FIELDS = frozenset({"terminator", "back_key", "agent_key", "yes_key", "no_key"})
#: fields whose value is keys pressed (scenarios): ``dtmf: 1 2 # 5`` would lose ``# 5``
KEYS_FIELDS = frozenset({"dtmf"})
#: fields whose value is text spoken to callers: ``zh: 请按 # 号键结束`` would be cut at `` #``
TEXT_FIELDS = frozenset({"zh", "en"})
#: a comment that reads like phone keys (``# 5``, ``#``): probably keys YAML dropped
_KEYPAD_COMMENT = re.compile(r"^#[0-9*# ]*$")


def excerpt(lines: list[str], line: int, col: int) -> str:
    """The 1-based ``line`` with a caret under ``col``, indented under the message."""
    if not 1 <= line <= len(lines):
        return ""
    text = lines[line - 1].rstrip("\n")
    shown = text.replace("\t", "→")
    gutter = f"{line:>5} | "
    return f"\n{gutter}{shown}\n{' ' * (len(gutter) - 2)}| {' ' * (col - 1)}^"


def located(lines: list[str], line: int, col: int, message: str) -> tuple[int, int, str]:
    return line, col, message + excerpt(lines, line, col)


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def _spaces(n: int) -> str:
    return "1 space" if n == 1 else f"{n} spaces"


def _content_lines_before(lines: list[str], line: int) -> Iterator[int]:
    """1-based numbers of the lines above ``line`` that hold more than a comment."""
    for number in range(line - 1, 0, -1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            yield number


def _without_comment(text: str, depth: int = 0) -> str:
    """The line up to a comment, outside quotes: a ``#`` after a space, or, inside { } or [ ]
    (``depth`` brackets already open), straight after ``{``, ``[`` or ``,``: PyYAML skips a
    comment wherever a token may start, so ``{#: agent}`` is ``{`` and a comment."""
    quote = ""
    for i, ch in enumerate(text):
        before = text[i - 1] if i else " "
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'" and before in " \t:[{,-":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth = max(depth - 1, 0)
        elif ch == "#" and (before in " \t" or (depth > 0 and before in "{[,")):
            return text[:i]
    return text


def _quote_end(text: str, start: int) -> int | None:
    """The index of the quote that closes the one at ``start``, or None on this line."""
    quote, i = text[start], start + 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if quote == "'" and text[i + 1:i + 2] == "'":  # '' is an apostrophe
                i += 2
                continue
            return i
        i += 1
    return None


def _open_quote(text: str) -> int | None:
    """The 1-based column of a quote in ``text`` that starts a scalar (a key, a value, an item)
    and is not closed on the line; an apostrophe inside plain text starts nothing."""
    depth, expect, i = 0, True, 0
    while i < len(text):
        ch = text[i]
        if ch in " \t":
            i += 1
            continue
        if expect and ch in "\"'":
            end = _quote_end(text, i)
            if end is None:
                return i + 1
            i, expect = end + 1, False
            continue
        if ch == "#" and (expect or text[i - 1] in " \t"):
            return None  # a comment
        if expect and ch in "{[":
            depth += 1
        elif depth > 0 and ch in "}],":
            depth -= ch != ","
            expect = ch == ","
        elif ch == ":" and (i + 1 == len(text) or text[i + 1] in " \t" or depth > 0):
            expect = True
        elif expect and ch == "-" and text[i + 1:i + 2] in (" ", ""):
            pass  # a list item: a scalar may start after it
        else:
            expect = False
            # the rest of a plain scalar, up to where an indicator may end it
            while i + 1 < len(text) and not (
                    (text[i + 1] == ":" and text[i + 2:i + 3] in (" ", "\t", ""))
                    or (depth > 0 and text[i + 1] in ",}]:")
                    or (text[i + 1] == "#" and text[i] in " \t")):
                i += 1
        i += 1
    return None


def _unclosed_quote(lines: list[str], upto: int) -> tuple[int, int] | None:
    """The last line up to ``upto`` where a quoted value opens and does not close."""
    for number in range(upto, 0, -1):
        text = lines[number - 1]
        if text.lstrip().startswith("#"):
            continue
        col = _open_quote(text)
        if col is not None:
            return number, col
    return None


def _hash_in_braces(lines: list[str], last: int) -> tuple[int, int] | None:
    """The last comment up to line ``last`` that starts inside an open { or [."""
    depth = 0
    found = None
    for number in range(1, min(last, len(lines)) + 1):
        text = lines[number - 1]
        code = _without_comment(text, depth)
        depth += sum(code.count(c) for c in "{[") - sum(code.count(c) for c in "}]")
        if depth > 0 and len(code) < len(text):
            found = number, len(code) + 1
    return found


def explain(exc: yaml.MarkedYAMLError, lines: list[str]) -> tuple[int, int, str]:
    """(line, column, message): where to fix ``exc`` and how, in plain words."""
    mark = exc.problem_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    at_end = line > len(lines) or "<stream end>" in (exc.problem or "")
    if line > len(lines):  # the end of the file
        line, col = max(len(lines), 1), len(lines[-1]) + 1 if lines else 1
    ctx = exc.context_mark
    cline, ccol = (ctx.line + 1, ctx.column + 1) if ctx else (line, col)
    if cline > len(lines):
        cline, ccol = line, col
    problem = exc.problem or ""
    context = exc.context or ""
    here = lines[line - 1] if 1 <= line <= len(lines) else ""

    if "'\\t'" in problem or "\t" in here[:_indent(here) + 1]:
        tab = here.find("\t") + 1 if "\t" in here else col
        return located(lines, line, tab, "a tab character here: YAML allows only spaces to "
                       "indent and after a colon. Replace the tab with spaces.")
    if "alias" in context or "alias" in problem or "anchor" in context:
        at_line, at_col = (cline, ccol) if ctx else (line, col)
        word = re.match(r"[^\s:,\]}]*", lines[at_line - 1][at_col - 1:])
        text = word.group(0) if word else ""
        meaning = "an anchor" if text.startswith("&") else "a reference to another part of the file"
        return located(lines, at_line, at_col, f"{text[:1]} at the start of a key or value "
                       f"means {meaning} in YAML. To mean the text itself, quote it: "
                       f"\"{text}\".")
    if "quoted scalar" in context and "end of stream" in problem:
        return located(lines, cline, ccol, "this quote is never closed: end the text with the "
                       "same quote mark on this line.")
    quote = _unclosed_quote(lines, line)
    if quote is not None and quote[0] < line:
        return located(lines, *quote, "this quote is not closed on its line: end the text "
                       "with the same quote mark.")
    if "flow" in context:
        hashed = _hash_in_braces(lines, line)
        if hashed is not None:
            return located(lines, *hashed, "a # after a space, or straight after {, [ or a "
                           "comma, starts a comment, which hides the rest of the line and the "
                           "closing bracket. Quote it: \"#\".")
        if line == cline and not at_end:
            return located(lines, line, col, "a comma is missing here: items inside { } or "
                           "[ ] are separated by commas.")
        closing = "}" if "mapping" in context else "]"
        return located(lines, cline, ccol, f"this bracket is not closed: end the list with "
                       f"{closing} (or a comma is missing between two items).")
    if "could not find expected ':'" in problem:
        return located(lines, cline, ccol, "this line has no colon: write the key, a colon and "
                       "a space, then the value (key: value).")
    if "mapping values are not allowed" in problem:
        return _stray_colon(lines, line, col)
    if "expected <block end>" in problem:
        return _bad_indent(lines, line, col, cline, problem)
    if "cannot start any token" in problem:
        return located(lines, line, col, f"a value cannot start with {here[col - 1]!r} in "
                       "YAML: put the value in quotes.")
    if "escape character" in problem:
        return located(lines, line, col, "inside double quotes a backslash starts an escape: "
                       "use single quotes, or write the backslash twice.")
    words = f"{context}: {problem}" if context else problem
    return located(lines, line, col, f"YAML syntax: {words or exc}")


def _stray_colon(lines: list[str], line: int, col: int) -> tuple[int, int, str]:
    here = lines[line - 1]
    key_end = here.find(": ")
    if 0 <= key_end < col - 2 and key_end > _indent(here):
        return located(lines, line, col, "the value contains a colon and a space, which YAML "
                       "takes for another key: put the value in quotes (key: \"a: b\").")
    above = next(_content_lines_before(lines, line), None)
    if above is not None:
        prev = _without_comment(lines[above - 1]).rstrip()
        glued = re.search(r"^\s*[^\s:]+:[^\s:]", prev)
        if glued is not None and ": " not in prev:
            return located(lines, above, glued.end(), "a space is missing after this colon "
                           "(key: value).")
        if ":" not in prev and not prev.lstrip().startswith("- "):
            return located(lines, above, _indent(prev) + 1, "this line has no colon: write the "
                           "key, a colon and a space, then the value (key: value).")
        if _indent(here) > _indent(prev):
            return located(lines, line, _indent(here) + 1, f"this line is indented "
                           f"{_spaces(_indent(here))}, more than the line above "
                           f"({_indent(prev)}): line it up with the keys next to it.")
    return located(lines, line, col, "a colon is not expected here: put the value in quotes, "
                   "or check the indentation of this line.")


def _bad_indent(lines: list[str], line: int, col: int, cline: int,
                problem: str) -> tuple[int, int, str]:
    here = lines[line - 1]
    if problem.endswith("'-'"):
        return located(lines, line, col, "a list item (-) among keys: indent the list under "
                       "its key (key: followed by lines starting with -).")
    above = [n for n in _content_lines_before(lines, line)]
    if above and lines[above[0] - 1].lstrip().startswith("- ") and problem.endswith("'?'"):
        return located(lines, line, col, "a key among list items (-): a list and keys cannot "
                       "be mixed at the same indentation.")
    levels: list[str] = []
    seen: set[int] = set()
    for number in above:
        width = _indent(lines[number - 1])
        if width not in seen and (not levels or width < min(seen)):
            seen.add(width)
            levels.append(f"{width} on line {number}")
    nearby = "; ".join(levels[:3])
    return located(lines, line, _indent(here) + 1, f"this line is indented "
                   f"{_spaces(_indent(here))}, which lines up with no key above it "
                   f"(indentation of the keys above: {nearby}): line it up with the key it "
                   "belongs next to.")


def traps(root: yaml.Node, lines: list[str]) -> Iterator[tuple[int, int, str]]:
    """What parses but is not what it looks like: ``(line, col, message)`` each."""
    lost, _ = _hash_key_lines(root, lines)
    for number, col in lost:
        yield located(lines, number, col, "this line starts with #, so YAML reads it as a "
                      "comment and the key '#' is lost. Quote the key: \"#\": ...")
    yield from _empty_after_hash(root, lines)


def doubts(root: yaml.Node, lines: list[str]) -> Iterator[tuple[int, int, str]]:
    """What may be a trap or may be a comment, for a warning: a ``#:`` line where no key of a
    mapping lines up with it (above the first key of the file, or indented like no key)."""
    _, maybe = _hash_key_lines(root, lines)
    for number, col in maybe:
        yield located(lines, number, col, "this line starts with #, so YAML reads it as a "
                      "comment. If it was meant as the key '#', quote the key: \"#\": ...")


def _hash_key_lines(root: yaml.Node, lines: list[str]
                    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The ``#:`` lines (1-based line, column) outside multi-line texts: those lined up with
    the keys of a mapping they sit in (a key lost), and the others (perhaps a comment)."""
    inside: set[int] = set()   # 0-based lines within a multi-line scalar
    blocks: list[tuple[int, int, int, int]] = []   # (from line, key column, end line, end col)
    _spans(root, None, inside, blocks)
    lost: list[tuple[int, int]] = []
    maybe: list[tuple[int, int]] = []
    for index, text in enumerate(lines):
        match = HASH_KEY.match(text)
        if match is None or index in inside:
            continue
        col = len(match.group(1))
        in_block = any(col == key_col and first <= index
                       and (index < end or (index == end and end_col > col))
                       for first, key_col, end, end_col in blocks)
        (lost if in_block else maybe).append((index + 1, col + 1))
    return lost, maybe


def _spans(node: yaml.Node, parent_line: int | None, inside: set[int],
           blocks: list[tuple[int, int, int, int]]) -> None:
    start, end = node.start_mark, node.end_mark
    if isinstance(node, yaml.ScalarNode):
        last = end.line if end.column > 0 else end.line - 1
        inside.update(range(start.line + 1, last + 1))
    elif isinstance(node, yaml.MappingNode):
        if not node.flow_style and node.value:
            first = start.line if parent_line is None else parent_line
            blocks.append((first, node.value[0][0].start_mark.column, end.line, end.column))
        for key, value in node.value:
            _spans(key, None, inside, blocks)
            _spans(value, key.start_mark.line, inside, blocks)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _spans(item, None, inside, blocks)


def _empty_after_hash(node: yaml.Node, lines: list[str]) -> Iterator[tuple[int, int, str]]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or not isinstance(value, yaml.ScalarNode):
                yield from _empty_after_hash(value, lines)
                continue
            if value.tag.endswith(":null") and value.value == "":
                end = key.end_mark
                rest = lines[end.line][end.column:].lstrip(" :") if end.line < len(lines) else ""
                if rest.rstrip() == "#" or (key.value in KEY_FIELDS
                                            and _KEYPAD_COMMENT.match(rest.rstrip())):
                    yield located(lines, end.line + 1, len(lines[end.line]) - len(rest) + 1,
                                  f"the # after '{key.value}:' starts a comment, so "
                                  f"{key.value} is left empty. Quote it: "
                                  f"{key.value}: \"#\"")
            elif value.style is None and value.end_mark.line < len(lines):
                end = value.end_mark
                tail = lines[end.line][end.column:]
                comment = tail.strip()
                at = len(tail) - len(tail.lstrip()) + end.column + 1
                if not comment.startswith("#"):
                    continue
                if key.value in KEYS_FIELDS and _KEYPAD_COMMENT.match(comment):
                    yield located(lines, end.line + 1, at, f"this # starts a comment, so the "
                                  f"keys from here on are not part of {key.value}. Quote the "
                                  f"whole value: {key.value}: \"{value.value} {comment}\"")
                elif key.value in TEXT_FIELDS:
                    yield located(lines, end.line + 1, at, f"this # starts a comment, so the "
                                  f"text stops before it ({key.value} is only "
                                  f"\"{value.value}\"). Put the text in quotes: "
                                  f"{key.value}: \"{value.value} {comment}\" (or, if this "
                                  f"is a comment, quote the text before it).")
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _empty_after_hash(item, lines)
