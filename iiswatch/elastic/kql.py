"""Kibana's query language (KQL), translated to Elasticsearch query DSL, so an analyst can
paste a query from Kibana's search bar into `iiswatch search --kql`.

There is no maintained Python implementation of KQL (Kibana's own is a PEG grammar in
TypeScript), so this is a small recursive-descent translator for the common subset, with
the same meaning as Kibana's:

    status: 404                       match
    url.path: "/a b"                  match_phrase
    url.path: /uploads/*              wildcard (via query_string, slashes taken literally)
    user_agent.original: *            exists
    bytes >= 1000                     range (<, <=, >, >=)
    a: x and (b: y or not c: z)       and / or / not, any case; not > and > or
    status: (404 or 500)              several values for one field
    cmd.exe                           a bare value: searched in every field

Not supported (an error says so, never a different query): nested-field braces `a:{b:c}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iiswatch.errors import UsageError

_KEYWORDS = {"or", "and", "not"}
_SPECIAL = set('\\():<>"*{}')
_LUCENE_SPECIAL = set('+-=&|><!(){}[]^"~*?:\\/ ')
_RANGE_OPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


class KqlError(UsageError):
    """A KQL query that cannot be read; the message names the column (1-based)."""

    def __init__(self, query: str, pos: int, what: str) -> None:
        pointer = f"{query}\n{' ' * pos}^"
        super().__init__(
            f"cannot read the KQL query at column {pos + 1}: {what}",
            f"check the query near the caret:\n{pointer}",
        )
        self.column = pos + 1


@dataclass(frozen=True)
class _Tok:
    kind: str  # "(" ")" ":" "op" "lit" "str" "{" "}" "end"
    pos: int
    text: str = ""  # the value, escapes removed
    lucene: str = ""  # the value for query_string: literal chars escaped, `*` left as wildcard
    wildcard: bool = False


def _tokens(q: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(q):
        c = q[i]
        if c.isspace():
            i += 1
        elif c in "():{}":
            toks.append(_Tok(c, i))
            i += 1
        elif c in "<>":
            op = q[i : i + 2] if q[i + 1 : i + 2] == "=" else c
            toks.append(_Tok("op", i, op))
            i += len(op)
        elif c == '"':
            start, i, buf = i, i + 1, []
            while i < len(q) and q[i] != '"':
                if q[i] == "\\" and i + 1 < len(q):
                    i += 1
                buf.append(q[i])
                i += 1
            if i >= len(q):
                raise KqlError(q, start, "a quoted value is not closed")
            i += 1
            value = "".join(buf)
            toks.append(_Tok("str", start, value, value))
        else:
            start, wildcard = i, False
            text: list[str] = []
            lucene: list[str] = []
            while i < len(q) and not q[i].isspace() and (q[i] not in _SPECIAL or q[i] in "\\*"):
                ch = q[i]
                if ch == "\\":
                    if i + 1 >= len(q):
                        raise KqlError(q, i, "a backslash at the end escapes nothing")
                    i += 1
                    ch = q[i]
                    text.append(ch)
                    lucene.append("\\" + ch if ch in _LUCENE_SPECIAL else ch)
                elif ch == "*":
                    wildcard = True
                    text.append(ch)
                    lucene.append(ch)
                else:
                    text.append(ch)
                    lucene.append("\\" + ch if ch in _LUCENE_SPECIAL else ch)
                i += 1
            raw = q[start:i]
            kind = "kw" if raw.lower() in _KEYWORDS else "lit"
            toks.append(_Tok(kind, start, "".join(text), "".join(lucene), wildcard))
    toks.append(_Tok("end", len(q)))
    return toks


@dataclass(frozen=True)
class KqlTranslation:
    query: dict[str, Any]
    fields: list[str]  # the fields the query names, for the unknown-field check


class _Parser:
    def __init__(self, q: str) -> None:
        self.q = q
        self.toks = _tokens(q)
        self.i = 0
        self.fields: list[str] = []

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> _Tok:
        t = self.peek()
        self.i += 1
        return t

    def is_kw(self, word: str) -> bool:
        t = self.peek()
        return t.kind == "kw" and t.text.lower() == word

    def fail(self, tok: _Tok, what: str) -> KqlError:
        return KqlError(self.q, tok.pos, what)

    # query := or ; or := and ('or' and)* ; and := not ('and' not)* ; not := 'not' not | primary
    def parse(self) -> dict[str, Any]:
        if self.peek().kind == "end":
            return {"match_all": {}}
        node = self.or_(None)
        if self.peek().kind != "end":
            raise self.fail(self.peek(), f"unexpected {self._describe(self.peek())}")
        return node

    def or_(self, field: str | None) -> dict[str, Any]:
        parts = [self.and_(field)]
        while self.is_kw("or"):
            self.take()
            parts.append(self.and_(field))
        return (
            parts[0] if len(parts) == 1 else {"bool": {"should": parts, "minimum_should_match": 1}}
        )

    def and_(self, field: str | None) -> dict[str, Any]:
        parts = [self.not_(field)]
        while self.is_kw("and"):
            self.take()
            parts.append(self.not_(field))
        return parts[0] if len(parts) == 1 else {"bool": {"filter": parts}}

    def not_(self, field: str | None) -> dict[str, Any]:
        if self.is_kw("not"):
            self.take()
            return {"bool": {"must_not": [self.not_(field)]}}
        return self.primary(field)

    def primary(self, field: str | None) -> dict[str, Any]:
        t = self.peek()
        if t.kind == "(":
            self.take()
            node = self.or_(field)
            if self.peek().kind != ")":
                raise self.fail(self.peek(), "a '(' is not closed")
            self.take()
            return node
        if t.kind == "{":
            raise self.fail(t, "nested-field queries (a:{b:c}) are not supported")
        if field is None and t.kind == "lit" and self.peek(1).kind == ":":
            self.take()
            self.take()
            name = self._field_name(t)
            if self.peek().kind == "(":
                return self.primary(name)
            if self.peek().kind == "{":
                raise self.fail(self.peek(), "nested-field queries (a:{b:c}) are not supported")
            return self.value(name)
        if field is None and t.kind == "lit" and self.peek(1).kind == "op":
            self.take()
            op = self.take()
            name = self._field_name(t)
            v = self.take()
            if v.kind not in ("lit", "str"):
                raise self.fail(v, f"a value must follow {op.text}")
            return {"range": {name: {_RANGE_OPS[op.text]: v.text}}}
        if t.kind in ("lit", "str"):
            return self.value(field)
        raise self.fail(t, f"expected a value, found {self._describe(t)}")

    def value(self, field: str | None) -> dict[str, Any]:
        t = self.take()
        if t.kind == "str":
            return _phrase(field, t.text)
        if t.kind != "lit":
            raise self.fail(t, f"expected a value, found {self._describe(t)}")
        # an unquoted value runs on over spaces until an operator or a special character
        text, lucene, wildcard = [t.text], [t.lucene], t.wildcard
        while self.peek().kind == "lit" and not (
            field is None and self.peek(1).kind in (":", "op")
        ):
            nxt = self.take()
            text.append(nxt.text)
            lucene.append(nxt.lucene)
            wildcard = wildcard or nxt.wildcard
        return _term(field, " ".join(text), "\\ ".join(lucene), wildcard)

    def _field_name(self, t: _Tok) -> str:
        if t.text not in self.fields:
            self.fields.append(t.text)
        return t.text

    @staticmethod
    def _describe(t: _Tok) -> str:
        return "the end of the query" if t.kind == "end" else repr(t.text or t.kind)


def _phrase(field: str | None, text: str) -> dict[str, Any]:
    if field is None or "*" in field:
        fields = [field] if field else ["*"]
        return {"multi_match": {"query": text, "type": "phrase", "fields": fields, "lenient": True}}
    return {"match_phrase": {field: text}}


def _term(field: str | None, text: str, lucene: str, wildcard: bool) -> dict[str, Any]:
    if text == "*" and wildcard:
        return {"match_all": {}} if field is None else {"exists": {"field": field}}
    if wildcard:
        qs: dict[str, Any] = {"query": lucene, "analyze_wildcard": True, "lenient": True}
        if field is not None:
            qs["fields"] = [field]
        return {"query_string": qs}
    if field is None or "*" in field:
        fields = [field] if field else ["*"]
        return {"multi_match": {"query": text, "fields": fields, "lenient": True}}
    return {"match": {field: {"query": text, "lenient": True}}}


def translate(query: str) -> KqlTranslation:
    """Query DSL for a KQL query; KqlError (exit 2) with the column if it cannot be read."""
    p = _Parser(query)
    node = p.parse()
    return KqlTranslation(node, p.fields)
