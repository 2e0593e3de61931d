"""Rendering verification reports: human text, JSON, JUnit XML (for CI dashboards)."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from dvc_secure.core.verification.findings import BEFORE_ADOPTION, Finding
from dvc_secure.services.history_check import VerifyReport


def render_text(report: VerifyReport) -> str:
    lines = []
    for f in report.findings:
        where = f"{f.rev[:10]} {f.dataset}".strip()
        lines.append(f"FAIL {where}: {f.message}")
        lines.append(f"     fix: {f.fix}")
    lines += _notice_lines(report)
    n_rev = len(report.revisions)
    if report.ok:
        lines.append(f"verified: {n_rev} revision(s), no findings")
    else:
        lines.append(f"NOT verified: {len(report.findings)} finding(s) in {n_rev} revision(s)")
    return "\n".join(lines)


def _notice_lines(report: VerifyReport) -> list[str]:
    """Informational findings, one line per kind (a long pre-adoption history is one line)."""
    lines = []
    by_code: dict[str, list[Finding]] = {}
    for f in report.notices:
        by_code.setdefault(f.code, []).append(f)
    for code, found in sorted(by_code.items()):
        if code == BEFORE_ADOPTION:
            revs = [f.rev[:10] for f in found]
            span = revs[0] if len(revs) == 1 else f"{revs[0]} … {revs[-1]}"
            lines.append(f"NOTE {len(revs)} revision(s) from before dvc-secure was adopted "
                         f"({span}; {code}): no keyring or sidecar there or below, not verified")
        else:
            lines += [f"NOTE {f.rev[:10]} {f.dataset}: {f.message} ({code})" for f in found]
    return lines


def render_json(report: VerifyReport) -> str:
    doc = {
        "verified": report.ok,
        "revisions": report.revisions,
        "findings": [
            {"revision": f.rev, "dataset": f.dataset, "code": f.code, "message": f.message,
             "fix": f.fix}
            for f in report.findings
        ],
        "notices": [
            {"revision": f.rev, "dataset": f.dataset, "code": f.code, "message": f.message}
            for f in report.notices
        ],
        "before_adoption": report.before_adoption,
    }
    return json.dumps(doc, indent=2, sort_keys=True)


def render_junit(report: VerifyReport) -> str:
    suite = ET.Element("testsuite", name="dvc-secure verify")
    failures = 0
    cases = 0
    by_case: dict[tuple[str, str], list[str]] = {}
    for f in report.findings:
        by_case.setdefault((f.rev, f.dataset), []).append(f"[{f.code}] {f.message}\nfix: {f.fix}")
    for rev in report.revisions:
        datasets = sorted(report.datasets.get(rev, set()) | {d for r, d in by_case if r == rev})
        for ds in datasets or [""]:
            cases += 1
            case = ET.SubElement(suite, "testcase", classname=rev[:12], name=ds or "(revision)")
            problems = by_case.get((rev, ds))
            if problems:
                failures += 1
                fail = ET.SubElement(case, "failure", message=problems[0].splitlines()[0])
                fail.text = "\n\n".join(problems)
    for rev in report.before_adoption:
        cases += 1
        case = ET.SubElement(suite, "testcase", classname=rev[:12], name="(before adoption)")
        ET.SubElement(case, "skipped", message=f"{BEFORE_ADOPTION}: outside the verified range")
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    return ET.tostring(suite, encoding="unicode")
