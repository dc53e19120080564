"""Read a Lucene query string before Elasticsearch does, to warn about the queries that
run fine but do not mean what the analyst typed (the slash that starts a regular expression,
a lower-case `and` that is searched as a word), and to list the fields it names so they can
be checked against the mapping (`fields.py`).

Parsing uses luqum, a maintained Lucene query parser. Elasticsearch stays the judge of
syntax: a query luqum cannot read is sent as it is, and a real error comes back from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Lucene pseudo-fields that are not in the mapping
_PSEUDO_FIELDS = {"_exists_", "_id", "_index", "*"}
_OPERATOR_WORDS = {"and": "AND", "or": "OR", "not": "NOT"}


@dataclass(frozen=True)
class QueryWarning:
    """Something about the query that is probably not what was meant, and what to do."""

    message: str
    hint: str


@dataclass
class QueryReading:
    """What the lint saw: warnings, and the fields the query names (in order, unique)."""

    warnings: list[QueryWarning] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)


def read_lucene(query: str) -> QueryReading:
    """Warnings and field names for a Lucene query string (empty if luqum cannot parse it)."""
    # imported here: luqum builds its parser tables on import; `--help` must not pay for it
    from luqum.exceptions import ParseError
    from luqum.parser import parser
    from luqum.tree import Regex, SearchField, UnknownOperation, Word

    reading = QueryReading()
    if not query.strip() or query.strip() == "*":
        return reading
    try:
        tree = parser.parse(query)
    except (ParseError, ValueError, TypeError):
        return reading  # Elasticsearch will say what is wrong, with the column

    def walk(node: object, field_name: str | None) -> None:
        if isinstance(node, SearchField):
            if node.name not in _PSEUDO_FIELDS and node.name not in reading.fields:
                reading.fields.append(node.name)
            field_name = node.name
        if isinstance(node, Regex):
            where = f"{field_name}:" if field_name else ""
            text = node.value
            escaped = text.replace("/", "\\/")
            reading.warnings.append(
                QueryWarning(
                    f"{where}{text} is read as a regular expression (Lucene treats /.../ as "
                    "regex), and whatever follows it as a separate term",
                    f"to match a path, escape the slashes: {where}{escaped}..., "
                    "or write it as a phrase in quotes",
                )
            )
        if isinstance(node, UnknownOperation):
            for child in node.children:
                word = child.value.lower() if isinstance(child, Word) else None
                if word in _OPERATOR_WORDS and child.value != _OPERATOR_WORDS[word]:
                    upper = _OPERATOR_WORDS[word]
                    reading.warnings.append(
                        QueryWarning(
                            f"lower-case {child.value!r} is searched as a word, not used as "
                            f"an operator: Lucene operators are upper-case ({upper})",
                            f"write {upper}, or pass --kql to use Kibana's "
                            "query language, where and/or/not work in any case",
                        )
                    )
        for child in getattr(node, "children", ()):
            walk(child, field_name)

    walk(tree, None)
    return reading
