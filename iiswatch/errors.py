"""The exception tree. The CLI turns each into one line saying what went wrong and one
saying what to do, with the exit code named here."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1  # a rule failed its tests, an archive failed verification, ...
EXIT_USAGE = 2
EXIT_BACKEND = 3  # Elasticsearch, the collector or the ticket system could not be reached


class IiswatchError(Exception):
    """Root of every error iiswatch raises on purpose.

    `hint` tells the user what to do next; it is printed on its own line.
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(IiswatchError):
    """The configuration (file, environment, flags) is missing something or is wrong."""


class UsageError(IiswatchError):
    """The command was called with arguments that cannot work."""


class BackendUnavailable(IiswatchError):
    """A backend (Elasticsearch, collector, ticket system) could not be reached or refused us."""

    exit_code = EXIT_BACKEND


class NodeError(IiswatchError):
    """The local Elasticsearch node could not be fetched, configured or started."""

    exit_code = EXIT_BACKEND


class IngestError(IiswatchError):
    """Input files could not be read (not: a malformed line, which becomes a dead letter)."""


class RuleError(IiswatchError):
    """One or more rule files are invalid; `problems` lists each with its location."""

    exit_code = EXIT_FINDINGS

    def __init__(self, message: str, problems: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems


class DeliveryError(IiswatchError):
    """A destination (ticket system, webhook, command) did not take an alert.

    `retryable`: trying again later may work (connection error, timeout, 5xx, 429), as
    opposed to a request or configuration the destination will always refuse (other 4xx).
    `retry_after`: seconds the destination asked us to wait (HTTP Retry-After), if any.
    `detail`: what to record with the attempt (status, exit code, stderr tail); no secrets.
    """

    exit_code = EXIT_BACKEND

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        retryable: bool,
        retry_after: float | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.retryable = retryable
        self.retry_after = retry_after
        self.detail = detail or {}
