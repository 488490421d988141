"""The one exception tree of the engine.

Every error the engine raises on purpose is a ``CallCenterError``. Library errors are translated
at the boundary where they occur (``raise X(...) from exc``), so callers only ever catch these::

    CallCenterError
    ├── ConfigError              settings or configuration files are wrong
    ├── UnsafeValueError         a value bound for Asterisk was refused (CR, LF, control chars...)
    ├── DialRuleError            a number the dial rules refuse (toll fraud); ``reason``: why
    ├── TelephonyError           anything between us and Asterisk
    │   ├── PbxError             the sandbox PBX could not be provisioned, started or stopped
    │   ├── AmiError
    │   │   ├── AmiConnectionError   unreachable, lost, or not answering (liveness)
    │   │   ├── AmiAuthError         the AMI user or secret was refused
    │   │   └── AmiActionError       Asterisk answered an action with an error
    │   └── AgiError
    │       ├── AgiProtocolError     Asterisk (or an impostor) broke the FastAGI protocol
    │       ├── AgiAuthError         a session could not prove Asterisk's dialplan opened it
    │       ├── AgiCommandError      an AGI command was refused (510/511/520)
    │       └── AgiHangup            the caller hung up; the session must end
    ├── StoreError               the database could not be opened, migrated or written
    ├── FlowError                an IVR flow is invalid or failed at run time
    ├── SeatStateError           a seat was asked for a move its state does not allow
    ├── TaskStateError           a task was asked for a move its state does not allow
    ├── TaskRefused              not this agent's task, or its outcome form refused the values
    ├── StrategyError            a service strategy is invalid (``file:line: message``)
    ├── DialerError              a campaign call may not be placed now; ``reason``: why
    ├── ConsoleError             a console request refused, with an ``ErrorCode`` for the client
    ├── FanoutError              the fan-out relay's feed was malformed, or the relay failed
    ├── BrokerError              the back office failed (unreachable, inconsistent)
    │   └── BrokerRefusal        the back office said no, with a ``RefusalCode`` the IVR explains
    └── ChannelError             the bus or a channel server failed
        ├── BusError             MQTT broker unreachable, refused, or the link was lost
        ├── DeliveryError        one message could not be delivered (``retriable`` says if later)
        ├── SmppProtocolError    the SMSC (or an ESME) broke SMPP framing
        └── SmppUsageError       we sent a PDU the SMPP session state does not allow

``LocalProtocolError``/``RemoteProtocolError`` style: *who* broke a protocol is in the class name
(``AgiProtocolError`` is always the peer's fault; ``UnsafeValueError`` is always ours).
"""

from __future__ import annotations


class CallCenterError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(CallCenterError):
    """Settings or configuration files are missing or wrong."""


class AgentConflict(ConfigError):
    """An agent to create exists, or one to change does not (``exists`` says which)."""

    def __init__(self, message: str, *, exists: bool) -> None:
        super().__init__(message)
        self.exists = exists


class UnsafeValueError(CallCenterError, ValueError):
    """A value bound for Asterisk contains characters that could change its meaning."""


class DialRuleError(CallCenterError):
    """A number the dial rules (``phones/dialrules.py``) refuse to dial out: nothing reaches
    Asterisk. ``reason`` is a ``dialrules.Refusal`` value; the message never holds the number."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TelephonyError(CallCenterError):
    """Something between the engine and Asterisk failed."""


class PbxError(TelephonyError):
    """The sandbox PBX could not be provisioned, started, reached or stopped."""


class AmiError(TelephonyError):
    """An AMI failure."""


class AmiConnectionError(AmiError):
    """AMI is unreachable, the connection was lost, or it stopped answering."""


class AmiAuthError(AmiError):
    """Asterisk refused the AMI credentials."""


class AmiActionError(AmiError):
    """Asterisk answered an AMI action with an error."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"AMI {action} failed: {message}")
        self.action = action
        self.message = message


class AgiError(TelephonyError):
    """A FastAGI failure."""


class AgiProtocolError(AgiError):
    """The peer broke the FastAGI protocol (bad header, oversized data, timeout)."""


class AgiAuthError(AgiError):
    """A FastAGI session carried no valid token: not opened by our dialplan (or replayed)."""


class AgiCommandError(AgiError):
    """Asterisk refused an AGI command."""

    def __init__(self, command: str, code: int, message: str) -> None:
        super().__init__(f"AGI {command.split(' ', 1)[0]} refused ({code}): {message}")
        self.code = code


class AgiHangup(AgiError):
    """The channel hung up; the AGI session must end."""


class StoreError(CallCenterError):
    """The database could not be opened, migrated or written."""


class FlowError(CallCenterError):
    """An IVR flow is invalid or failed at run time."""


class SeatStateError(CallCenterError):
    """A seat was asked for a move its state does not allow (or with a bad reason)."""


class CallStateError(CallCenterError):
    """A call was asked for a move its state does not allow (``acd/calls.py``)."""


class TaskStateError(CallCenterError):
    """A task was asked for a move its state does not allow (``tasks/state.py``)."""


class TaskRefused(CallCenterError):
    """A task request refused before any move (``tasks/service.py``); ``reason``: ``not_yours``
    (the agent may not see or do it), ``taken`` (another agent claimed it first), ``no_such`` (no
    such agent or team), ``bad_values`` (the outcome form refused them: the message names the
    field), ``needs_call`` (a recorded task's outcome before a call reached the customer)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class StrategyError(CallCenterError):
    """A service strategy is invalid, as ``file:line: message`` lines (``strategies/``)."""


class DialerError(CallCenterError):
    """A campaign call may not be placed now (``dialer/``); ``reason`` is a short code
    (``dnc``, ``opt_out``, ``window``, ``attempts``...) for the task log and the reports."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConsoleError(CallCenterError):
    """A console request was refused; ``code`` is a ``seats.protocol.ErrorCode`` value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RecordingError(CallCenterError):
    """A recording could not be sealed, opened or found (``recordings/``); never a secret in
    the message."""


class RecordingNotFound(RecordingError):
    """No recording with that id."""


class AdminError(CallCenterError):
    """An administration API request was refused (``admin/``): ``status`` is its HTTP status,
    ``code`` a short stable word a client can test, the message says what to change."""

    def __init__(self, status: int, code: str, message: str,
                 problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems or []


class FanoutError(CallCenterError):
    """The fan-out relay's feed was malformed, or the relay process could not start
    (``fanout/``)."""


class BrokerError(CallCenterError):
    """The back office failed: unreachable, or answered something inconsistent."""


class BrokerRefusal(BrokerError):
    """The back office refused a request for a business reason the caller must hear.

    ``code`` is a ``callcenter.broker.interface.RefusalCode`` value; ``params`` carry what the
    explanation needs (e.g. the allowed price range, remaining password attempts), never secrets.
    """

    def __init__(self, code: str, message: str, **params: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.params = params


class ChannelError(CallCenterError):
    """The bus or a channel server failed."""


class BusError(ChannelError):
    """The MQTT broker is unreachable, refused us, or the link was lost."""


class DeliveryError(ChannelError):
    """One message could not be delivered; ``retriable`` says whether trying later may work
    (SMSC throttling, SMTP 4xx, fax busy / no answer) or not (bad address, 5xx, refused)."""

    def __init__(self, reason: str, *, retriable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retriable = retriable


class SmppProtocolError(ChannelError):
    """The peer broke SMPP framing (bad length, undecodable response): drop the connection."""


class SmppUsageError(ChannelError):
    """We tried to send a PDU the session state does not allow, or a field that does not fit."""
