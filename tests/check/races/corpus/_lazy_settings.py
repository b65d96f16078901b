"""A settings module whose configuration is built on first use by whoever needs it
(the helper of racy_lazy_module_attribute.py and clean_lazy_module_attribute_locked.py)."""

_config: dict[str, object] | None = None


def load() -> dict[str, object]:
    return {"debug": False, "workers": 4}
