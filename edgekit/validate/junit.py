"""JUnit XML for CI systems: one test case per gate, a failure element where the gate failed."""

from __future__ import annotations

import xml.etree.ElementTree as ET


def junit_xml(results: dict) -> str:
    gates = results.get("gates", [])
    failures = sum(not g["passed"] for g in gates)
    suite = ET.Element(
        "testsuite", name=f"edgekit.{results['recipe']}", tests=str(len(gates)), failures=str(failures), errors="0"
    )
    for g in gates:
        case = ET.SubElement(suite, "testcase", classname=f"edgekit.{results['recipe']}.{g['variant']}", name=g["name"])
        if not g["passed"]:
            f = ET.SubElement(
                case, "failure", message=f"{g['name']} = {g['value']} (limit {g['limit']})", type="GateFailed"
            )
            f.text = f"variant {g['variant']}: {g['name']} = {g['value']}, limit {g['limit']}"
    root = ET.Element("testsuites", name="edgekit", tests=str(len(gates)), failures=str(failures))
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
