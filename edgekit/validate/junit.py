"""JUnit XML for CI systems: one test case per gate, named edgekit.<recipe>.<variant> with the `--variant` name
(float32, int8, ...) a user passes to the device commands; a failure element where the gate failed, which also
says what ran (the variant's display string in results.json)."""

from __future__ import annotations

import xml.etree.ElementTree as ET


def junit_xml(results: dict) -> str:
    gates = results.get("gates", [])
    failures = sum(not g["passed"] for g in gates)
    suite = ET.Element(
        "testsuite", name=f"edgekit.{results['recipe']}", tests=str(len(gates)), failures=str(failures), errors="0"
    )
    shown = {e.get("name"): e.get("display") for e in results.get("variants", [])}
    pairs = [(g["variant"], g["name"]) for g in gates]
    for g in gates:
        # a gate evaluated against two references (an OpenVINO configuration's) is named with the one it used
        name = g["name"] + (f" vs {g.get('against')}" if pairs.count((g["variant"], g["name"])) > 1 else "")
        case = ET.SubElement(suite, "testcase", classname=f"edgekit.{results['recipe']}.{g['variant']}", name=name)
        if not g["passed"]:
            f = ET.SubElement(
                case, "failure", message=f"{g['name']} = {g['value']} (limit {g['limit']})", type="GateFailed"
            )
            what = f" ({shown[g['variant']]})" if shown.get(g["variant"]) else ""
            f.text = f"variant {g['variant']}{what}: {g['name']} = {g['value']}, limit {g['limit']}"
    root = ET.Element("testsuites", name="edgekit", tests=str(len(gates)), failures=str(failures))
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
