"""Rendering verification reports: human text, JSON, JUnit XML (for CI dashboards)."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from dvc_secure.services.history_check import VerifyReport


def render_text(report: VerifyReport) -> str:
    lines = []
    for f in report.findings:
        where = f"{f.rev[:10]} {f.dataset}".strip()
        lines.append(f"FAIL {where}: {f.message}")
        lines.append(f"     fix: {f.fix}")
    n_rev = len(report.revisions)
    if report.ok:
        lines.append(f"verified: {n_rev} revision(s), no findings")
    else:
        lines.append(f"NOT verified: {len(report.findings)} finding(s) in {n_rev} revision(s)")
    return "\n".join(lines)


def render_json(report: VerifyReport) -> str:
    doc = {
        "verified": report.ok,
        "revisions": report.revisions,
        "findings": [
            {"revision": f.rev, "dataset": f.dataset, "code": f.code, "message": f.message,
             "fix": f.fix}
            for f in report.findings
        ],
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
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    return ET.tostring(suite, encoding="unicode")
