"""The comparison in plain words: each row of a report's summary expanded into one sentence per check, made from
the check's own record (its claim, verdict and measured numbers), so that a learner reads *which* comparison tied
and which agreed, not only "mixed: 3 tie, 1 agrees". Nothing here measures or decides; it words what was
measured and decided (engines.measure.verdicts)."""
from __future__ import annotations

import re

from engines.measure.uncertainty import AGREES, CANNOT_SAY, DISAGREES, TIE
from engines.measure.verdicts import DEPENDS, NOT_COMPARED

# What each verdict means, said to a learner (the verdict words themselves are defined in report.md's summary).
MEANINGS = {
    AGREES: "as the folklore says",
    DISAGREES: "against the folklore",
    TIE: "a tie: the difference is within the noise of the measurement (2 standard errors)",
    DEPENDS: "the two feature nets disagree, so the lab gives no verdict",
    NOT_COMPARED: "not compared: the two were measured in different ways",
}


def meaning(verdict: str) -> str:
    """A verdict in plain words; "cannot say ..." keeps its reason ("at 20 seeds": too few runs to tell)."""
    if verdict in MEANINGS:
        return MEANINGS[verdict]
    if verdict.startswith(CANNOT_SAY):
        reason = verdict[len(CANNOT_SAY):].lstrip(": ")
        return f"the measurements cannot tell{' (' + reason + ')' if reason else ''}"
    return verdict


def numbers_in_words(detail: str) -> str:
    """A check's measured numbers, said rather than abbreviated: "[lenet] FD a vs b" -> "in the lenet net, Frechet
    distance a against b"."""
    text = re.sub(r"\[(\w+)\] ", r"in the \1 net, ", detail)
    text = re.sub(r"\bFD\b", "Frechet distance", text)
    return text.replace(" vs ", " against ").replace(" | ", "; ")


def check_sentence(check: dict) -> str:
    """One check as a sentence: the claim, what was found, and the numbers it rests on."""
    claim = check["claim"][:1].upper() + check["claim"][1:]
    detail = numbers_in_words(check.get("detail", "")).rstrip(".")
    return f"*{claim}*: {meaning(check['verdict'])}." + (f" Measured: {detail}." if detail else "")


def row_in_words(row: dict) -> list[str]:
    """A summary row as Markdown: its verdict in words, then a sentence per check (a row with no check says
    why it has none)."""
    lines = [f"**{row['row']}** (folklore: {row['folklore']}): {row['verdict']}."]
    checks = row.get("checks", [])
    if not checks:
        return lines + [f"- {row.get('line', 'no check: nothing measured decides this row')}"]
    return lines + [f"- {check_sentence(check)}" for check in checks]


def summary_in_words(report: dict) -> str:
    """Every row of the report's summary, check by check."""
    return "\n\n".join("\n".join(row_in_words(row)) for row in report["summary"])
