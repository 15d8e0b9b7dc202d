"""A reference to an approved WhatsApp template (sent outside the 24 h window)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from rules.conditions import StrictModel, as_list

Names = Annotated[tuple[str, ...], BeforeValidator(as_list)]


class TemplateRef(StrictModel):
    """An approved WhatsApp template, used outside the 24 h customer-service window, and the
    languages it is approved in: `{name, languages: [es, en]}` (`language: es` for one)."""

    name: str
    languages: Names = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_language(cls, value: object) -> object:
        if not isinstance(value, dict) or "language" not in value:
            return value
        if "languages" in value:
            raise ValueError("give `language` or `languages`, not both")
        rest = {key: item for key, item in value.items() if key != "language"}
        return {**rest, "languages": [value["language"]]}

    @property
    def language(self) -> str:
        """The first language: the one used when none of the wanted ones is approved."""
        return self.languages[0]

    def language_for(self, *wanted: str | None) -> str:
        """Return the first of `wanted` the template is approved in, else its first language."""
        return next((code for code in wanted if code in self.languages), self.language)
