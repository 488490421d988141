"""A task's outcome form: the fields an agent fills in when a task is done, and their check.

A strategy gives its tasks a form (``tasks.fields``, JSON); the console draws it, the engine checks
what comes back against it before the task is DONE. The field named ``outcome`` (a choice) is
the task's outcome for the reports; its ``success`` choices count as conversions. A form without
one has the outcome "done".
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

__all__ = ["FORM", "OUTCOME", "FieldKind", "FormField", "check_values", "outcome_of", "parse_form",
           "success"]

#: the field whose value is the task's outcome
OUTCOME: Final = "outcome"


class FieldKind(enum.StrEnum):
    CHOICE = "choice"
    TEXT = "text"
    YES_NO = "yes_no"
    NUMBER = "number"
    DATE = "date"


class FormField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    #: what the console shows (Mandarin first, English after a " / ")
    label: str = Field("", max_length=80)
    kind: FieldKind = FieldKind.TEXT
    required: bool = False
    #: the allowed values of a choice
    choices: tuple[str, ...] = ()
    #: the choices that count as a conversion in the reports (``outcome`` only)
    success: tuple[str, ...] = ()
    #: the longest text
    max: int = Field(500, ge=1, le=4000)

    @model_validator(mode="after")
    def _consistent(self) -> FormField:
        if self.kind is FieldKind.CHOICE:
            if not self.choices:
                raise ValueError(f"field {self.name}: a choice needs its choices")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError(f"field {self.name}: a choice is listed twice")
        elif self.choices:
            raise ValueError(f"field {self.name}: only a choice has choices")
        unknown = set(self.success) - set(self.choices)
        if unknown:
            raise ValueError(f"field {self.name}: success names what is not a choice:"
                             f" {sorted(unknown)}")
        if self.success and self.name != OUTCOME:
            raise ValueError(f"field {self.name}: only the '{OUTCOME}' field has success values")
        if self.name == OUTCOME and self.kind is not FieldKind.CHOICE:
            raise ValueError(f"the '{OUTCOME}' field is a choice")
        return self


#: a whole form, with unique names
FORM: Final = TypeAdapter(tuple[FormField, ...])


def parse_form(raw: Sequence[Mapping[str, Any]]) -> tuple[FormField, ...]:
    """A form from JSON; ``ValueError`` if it is malformed or names a field twice."""
    form = FORM.validate_python(list(raw))
    names = [f.name for f in form]
    if len(set(names)) != len(names):
        raise ValueError("a field name is used twice")
    return form


def check_values(raw_form: Sequence[Mapping[str, Any]],
                 values: Mapping[str, Any]) -> dict[str, Any]:
    """The values an agent sent, checked against the form and normalised (numbers as strings of
    a Decimal, dates as ISO text, yes/no as bools). ``ValueError`` with the field's name on the
    first problem; a field the form does not have is refused."""
    form = parse_form(raw_form)
    by_name = {f.name: f for f in form}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ValueError(f"not fields of this task: {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for spec in form:
        value = values.get(spec.name)
        if value is None or value == "":
            if spec.required:
                raise ValueError(f"{spec.name}: required")
            continue
        out[spec.name] = _one(spec, value)
    return out


def _one(spec: FormField, value: Any) -> Any:
    match spec.kind:
        case FieldKind.CHOICE:
            if value not in spec.choices:
                raise ValueError(f"{spec.name}: one of {', '.join(spec.choices)}")
            return value
        case FieldKind.TEXT:
            if not isinstance(value, str) or len(value) > spec.max:
                raise ValueError(f"{spec.name}: text of at most {spec.max} characters")
            return value
        case FieldKind.YES_NO:
            if not isinstance(value, bool):
                raise ValueError(f"{spec.name}: yes or no")
            return value
        case FieldKind.NUMBER:
            try:
                number = Decimal(str(value))
            except InvalidOperation as exc:
                raise ValueError(f"{spec.name}: a number") from exc
            if not number.is_finite():
                raise ValueError(f"{spec.name}: a number")
            return str(number)
        case FieldKind.DATE:
            try:
                return dt.date.fromisoformat(str(value)).isoformat()
            except ValueError as exc:
                raise ValueError(f"{spec.name}: a date (YYYY-MM-DD)") from exc


def outcome_of(values: Mapping[str, Any]) -> str:
    """The task's outcome from checked values: the ``outcome`` field, else "done"."""
    return str(values.get(OUTCOME) or "done")


def success(raw_form: Sequence[Mapping[str, Any]], outcome: str) -> bool:
    """Whether ``outcome`` counts as a conversion under this form (no form: "done" does)."""
    for spec in parse_form(raw_form):
        if spec.name == OUTCOME:
            return outcome in spec.success
    return outcome == "done"
