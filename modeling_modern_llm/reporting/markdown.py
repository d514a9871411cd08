"""Number formatting and Markdown tables for the generated report.

Every number in ``report/final_report.md`` goes through :func:`fmt`, :func:`fmt_signed` or
:func:`fmt_percent`, so a reader (and tests/report) can trace each one back to a results file.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence


def fmt(value: Any) -> str:
    """A value as the report prints it: ints exact; floats rounded to 4 decimals (1 from 100 up), trailing zeros
    dropped, and in scientific notation below 0.001 (3 significant digits) and from 1e6 up (4)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"
        if abs(value) >= 1e6:
            return f"{value:.4g}"
        text = f"{value:.1f}" if abs(value) >= 100 else f"{value:.4f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def fmt_signed(value: float) -> str:
    """A difference with its sign, as :func:`fmt` otherwise ("+0.0123", "-1.5", "0")."""
    text = fmt(value)
    return text if value is None or text.startswith("-") or text == "0" else f"+{text}"


def fmt_percent(fraction: float) -> str:
    """A fraction in [0, 1] as a percentage with one decimal ("0.4137" -> "41.4%")."""
    return f"{100 * fraction:.1f}%"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table; cells are formatted with :func:`fmt` and pipes escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [fmt(cell).replace("|", "\\|").replace("\n", " ") for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
