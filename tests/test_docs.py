"""The user documentation (README.md, docs/*.md) describes the software and its reproducible results: no account of how
it was developed, every number the README's results section quotes found in the reference report, and every image
link of the reference report a file in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
REFERENCE = REPO / "docs" / "reference_report.md"
RESULTS_HEADING = "## What the CPU demo shows"
# Development history, not documentation: issue numbers, sessions, owners, commits, unreproducible tables.
DEVELOPMENT_PHRASES = {
    "an issue number": r"\bissues? #?\d+|(?<![#&\w])#\d+\b|\w#\d+\b",
    "session": r"\bsessions?\b",
    "owner's": r"\bowner'?s'?",
    "at commit": r"\bat commit\b",
    "commit <hash>": r"\bcommits? [0-9a-f]{7,40}\b",
    "ad-hoc": r"\bad[- ]hoc\b",
    "the issue's": r"\bthe issue'?s\b",
    "our target": r"\bour target\b",
    "kept out of the repo": r"\bkept out of the repo",
}
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")


def development_phrases(text: str) -> list[str]:
    """`"<kind>: <what matched>"` for every development-history phrase in `text`."""
    return [
        f"{kind}: {match.group(0)!r}"
        for kind, pattern in DEVELOPMENT_PHRASES.items()
        for match in re.finditer(pattern, text, re.IGNORECASE)
    ]


def user_text(path: Path) -> str:
    """What a reader reads: all of it, but the reference report's first line (a comment that may name its commit)."""
    text = path.read_text(encoding="utf-8")
    return text.split("\n", 1)[1] if path == REFERENCE else text


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_the_docs_describe_the_software_not_its_development(path):
    text = user_text(path)
    assert development_phrases(text) == [], path.name


def test_the_phrase_check_catches_each_kind():
    history = (
        "See issue 14 and #16 (trl#1657), measured in session 3 at commit 167746d by the owner's ad-hoc "
        "scripts kept out of the repo, as the issue's target said, our target too; the owners' call."
    )
    assert len(development_phrases(history)) == 12
    assert development_phrases("The answer is `#### 42`; lm-eval issues a `repeats: N` task; ###### 7") == []


def results_section(readme: str) -> str:
    assert f"\n{RESULTS_HEADING}\n" in readme, f"README.md has no '{RESULTS_HEADING}' section"
    return readme.split(f"\n{RESULTS_HEADING}\n", 1)[1].split("\n## ", 1)[0]


def in_report(number: str, report_numbers: list[str]) -> bool:
    """`number` is one of the report's, as written or rounded to its number of decimals."""
    decimals = len(number.partition(".")[2])
    return any(
        candidate == number
        or (len(candidate.partition(".")[2]) >= decimals and f"{float(candidate):.{decimals}f}" == number)
        for candidate in report_numbers
    )


def test_every_number_the_readme_quotes_is_in_the_reference_report():
    section = results_section((REPO / "README.md").read_text(encoding="utf-8"))
    report_numbers = DECIMAL.findall(REFERENCE.read_text(encoding="utf-8"))
    quoted = DECIMAL.findall(section)
    assert len(quoted) >= 5, "the results section quotes the reference report's numbers"
    assert [number for number in quoted if not in_report(number, report_numbers)] == []


def test_the_number_check_accepts_roundings_and_catches_the_rest():
    assert in_report("0.48", ["0.4762"]) and in_report("89.3", ["89.3"]) and in_report("12.5", ["12.48"])
    assert not in_report("2.44", ["2.4", "0.280", "24.4"]) and not in_report("0.86", ["0.8047"])


def test_every_image_of_the_reference_report_is_in_the_repository():
    text = REFERENCE.read_text(encoding="utf-8")
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert not link.startswith(("/", "http")), link
        assert (REFERENCE.parent / link).resolve().is_file(), f"{link} (relative to docs/) is not in the repository"
