"""Typed access to parsed INI settings, with defaults and ${...} references."""

import re
from pathlib import Path

from iniconf.convert import to_bool, to_int, to_list
from iniconf.parser import parse_ini

_REFERENCE = re.compile(r"\$\{([^}:]+)(?::([^}]+))?\}")
_MAX_DEPTH = 10
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
        """The value of `key` in `section` with references expanded.

        A reference is ${key} (same section, then DEFAULT) or ${section:key}. Without a
        value and without `default`, KeyError is raised.
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
        if depth > _MAX_DEPTH:
            raise ValueError(f"references nested too deeply (a cycle?) in [{section}]")

        def replace(match):
            if match.group(2) is None:
                ref_section, ref_key = section, match.group(1)
            else:
                ref_section, ref_key = match.group(1).strip(), match.group(2)
            raw = self._raw(ref_section, ref_key.strip().lower())
            if raw is None:
                raise KeyError(f"{ref_section}.{ref_key} (referenced from [{section}])")
            return self._expand(ref_section, raw, depth + 1)

        return _REFERENCE.sub(replace, value)
