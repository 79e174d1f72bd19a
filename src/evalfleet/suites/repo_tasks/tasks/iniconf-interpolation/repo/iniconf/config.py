"""Typed access to parsed INI settings, with defaults."""

from pathlib import Path

from iniconf.convert import to_bool, to_int, to_list
from iniconf.parser import parse_ini

_MISSING = object()


class Config:
    """Sections of settings; a key missing from a section falls back to DEFAULT."""

    def __init__(self, sections):
        self._defaults = dict(sections.get("DEFAULT", {}))
        self._sections = {
            name: dict(values) for name, values in sections.items() if name != "DEFAULT"
        }

    @classmethod
    def from_text(cls, text):
        """A Config from INI text."""
        return cls(parse_ini(text))

    @classmethod
    def from_file(cls, path):
        """A Config from an INI file (UTF-8)."""
        return cls.from_text(Path(path).read_text(encoding="utf-8"))

    def sections(self):
        """Section names, sorted; DEFAULT is not listed."""
        return sorted(self._sections)

    def get(self, section, key, default=_MISSING):
        """The value of `key` in `section`.

        Without a value and without `default`, KeyError is raised.
        """
        raw = self._raw(section, key.lower())
        if raw is None:
            if default is _MISSING:
                raise KeyError(f"{section}.{key}")
            return default
        return self._expand(section, raw, 0)

    def getint(self, section, key, default=_MISSING):
        """get() converted with to_int (a default is returned as given)."""
        value = self.get(section, key, default)
        return value if value is default else to_int(value)

    def getbool(self, section, key, default=_MISSING):
        """get() converted with to_bool (a default is returned as given)."""
        value = self.get(section, key, default)
        return value if value is default else to_bool(value)

    def getlist(self, section, key, default=_MISSING):
        """get() converted with to_list (a default is returned as given)."""
        value = self.get(section, key, default)
        return value if value is default else to_list(value)

    def _raw(self, section, key):
        values = self._sections.get(section, {})
        if key in values:
            return values[key]
        return self._defaults.get(key)

    def _expand(self, section, value, depth):
        return value
