"""A small INI configuration reader."""

from iniconf.config import Config
from iniconf.convert import to_bool, to_int, to_list
from iniconf.parser import ParseError, parse_ini

__all__ = ["Config", "ParseError", "parse_ini", "to_bool", "to_int", "to_list"]
