"""The app setting names the code reads, derived from the Settings model (aliases), for consistency tests."""
from __future__ import annotations

from shared.settings import Settings


def setting_names() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias or field.alias
        names.update(alias.choices if hasattr(alias, "choices") else [alias])
    return names
