"""The doctor's report: findings grouped in sections, printed as text or given as JSON.

A finding is one line a user reads: a status (ok, warn, fail, info), what was found, and
for anything not ok the exact thing to do about it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "info", "warn", "fail"]
_MARKS: dict[str, str] = {"ok": "✓", "info": "·", "warn": "!", "fail": "✗"}


@dataclass
class Finding:
    status: Status
    text: str
    #: What to do; printed under the finding. Commands are given in full.
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Section:
    key: str
    title: str
    findings: list[Finding] = field(default_factory=list)
    #: The same facts as data, for --json.
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, status: Status, text: str, fix: str | None = None) -> Finding:
        finding = Finding(status, text, fix)
        self.findings.append(finding)
        return finding

    @property
    def worst(self) -> Status:
        order: list[Status] = ["ok", "info", "warn", "fail"]
        return max((finding.status for finding in self.findings), key=order.index, default="ok")


@dataclass
class Report:
    version: str
    sections: list[Section] = field(default_factory=list)

    def section(self, key: str, title: str) -> Section:
        found = Section(key, title)
        self.sections.append(found)
        return found

    @property
    def failed(self) -> bool:
        return any(section.worst == "fail" for section in self.sections)

    def counts(self) -> dict[str, int]:
        counts = {"ok": 0, "info": 0, "warn": 0, "fail": 0}
        for section in self.sections:
            for finding in section.findings:
                counts[finding.status] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "fim_lsp": self.version,
            "ok": not self.failed,
            "counts": self.counts(),
            "sections": {
                section.key: {
                    "title": section.title,
                    "status": section.worst,
                    "findings": [finding.as_dict() for finding in section.findings],
                    "data": section.data,
                }
                for section in self.sections
            },
        }

    def render(self) -> str:
        lines = [f"fim-lsp {self.version} doctor"]
        for section in self.sections:
            if not section.findings:
                continue
            lines += ["", section.title]
            for finding in section.findings:
                text_lines = finding.text.splitlines() or [""]
                lines.append(f"  {_MARKS[finding.status]} {text_lines[0]}")
                lines += [f"    {line}" for line in text_lines[1:]]
                if finding.fix:
                    fix_lines = finding.fix.splitlines()
                    lines.append(f"    → {fix_lines[0]}")
                    lines += [f"      {line}" for line in fix_lines[1:]]
        counts = self.counts()
        lines += [
            "",
            f"{counts['ok']} ok, {counts['warn']} to look at, {counts['fail']} failed"
            + ("" if not counts["fail"] else " (see → for what to do)"),
        ]
        return "\n".join(lines)
