"""Shared terminal output: tables and JSON on stdout, errors on stderr."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def print_error(message: str) -> None:
    """One line, no markup interpretation (messages may contain brackets from user input)."""
    err_console.print(f"error: {message}", markup=False, highlight=False)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))
