"""Every option of the command from an environment variable, so a container is configured without rebuilding.

``--time-budget`` is ``ULF_TIME_BUDGET``, ``--preset`` ``ULF_PRESET``, ``--window X Y Z`` ``ULF_WINDOW="X Y Z"``,
``--quiet`` ``ULF_QUIET=1``: ``ULF_`` and the long option's name in capitals, dashes as underscores. Order of
precedence: the command line, then the environment, then the preset. A variable's value is checked as the
option checks it, and a bad one is refused naming the variable, but only when the option is not given on
the command line: the command line wins, so a broken variable it overrides is never read. ``--help`` lists
each option's variable; :func:`from_environment` says which options of a parse came from a variable.
(The socket variables ``ULF_SOCKET_*`` and ``ULF_OUTPUT_*`` of :mod:`model.volumes.layouts` are separate.)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "ULF_"
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def variable_name(action: argparse.Action) -> str:
    """``--time-budget`` -> ``ULF_TIME_BUDGET`` (from the option's longest name)."""
    flag = max(action.option_strings, key=len)
    return PREFIX + flag.lstrip("-").replace("-", "_").upper()


def configurable(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options an environment variable can set (all but --help and --version: questions, not settings)."""
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)
            and "--version" not in a.option_strings]


def _converted(action: argparse.Action, text: str, name: str, parser: argparse.ArgumentParser):
    """``text`` as the option would take it on the command line, or ``parser.error`` naming the variable."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        word = text.strip().lower()
        if word not in TRUE_WORDS + FALSE_WORDS:
            parser.error(f"{name}={text!r}: expected one of {', '.join(TRUE_WORDS)} or {', '.join(w for w in FALSE_WORDS if w)}")
        return (word in TRUE_WORDS) == isinstance(action, argparse._StoreTrueAction)
    if not text.strip():
        parser.error(f"{name} is set but empty; unset it to use the default")
    words = text.replace(",", " ").split() if action.nargs not in (None, "?") else [text.strip()]
    if isinstance(action.nargs, int) and len(words) != action.nargs:
        parser.error(f"{name}={text!r}: expected {action.nargs} values separated by spaces")
    values = []
    for word in words:
        try:
            value = action.type(word) if action.type is not None else word
        except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
            parser.error(f"{name}={text!r}: {error}")
        if action.choices is not None and value not in action.choices:
            parser.error(f"{name}={text!r}: expected one of {', '.join(map(str, action.choices))}")
        values.append(value)
    return values if action.nargs not in (None, "?") else values[0]


@dataclass(frozen=True)
class _FromVariable:
    """An option's default while parsing: the text of its variable, converted only if the command line
    does not give the option (so a bad variable the command line overrides is never an error)."""

    name: str
    text: str


FROM_ENVIRONMENT = "_from_environment"  # the namespace attribute: {dest: variable} of the options a variable set


def from_environment(args: argparse.Namespace) -> dict[str, str]:
    """``{dest: variable}`` of the options of ``args`` whose value came from an environment variable."""
    return dict(getattr(args, FROM_ENVIRONMENT, {}))


def with_environment(parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """``parser`` with each option's default taken from its variable when set (checked only when the command
    line does not give the option), and the variable in its help."""
    environ = os.environ if environ is None else environ
    variables = {}
    for action in configurable(parser):
        name = variable_name(action)
        action.help = f"{action.help or ''} [{name}]".strip()
        if name in environ:
            action.default = _FromVariable(name, environ[name])
            action.required = False
            variables[action.dest] = action
    parse_known_args = parser.parse_known_args

    def parse_known_args_then_variables(args=None, namespace=None):
        namespace, extras = parse_known_args(args, namespace)
        used = {}
        for dest, action in variables.items():
            value = getattr(namespace, dest, None)
            if isinstance(value, _FromVariable):
                setattr(namespace, dest, _converted(action, value.text, value.name, parser))
                used[dest] = value.name
        setattr(namespace, FROM_ENVIRONMENT, used)
        return namespace, extras

    parser.parse_known_args = parse_known_args_then_variables
    return parser


def environment_table(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """(variable, option) for every configurable option, for the documentation."""
    return [(variable_name(a), max(a.option_strings, key=len)) for a in configurable(parser)]
