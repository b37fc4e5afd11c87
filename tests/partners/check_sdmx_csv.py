"""Checks SDMX-CSV 2.0 files against the SDMX-CSV field guide and the structures they name.

    python3 check_sdmx_csv.py STRUCTURES.xml FILE.csv [FILE.csv ...]

The structures are read with sdmx1 from an SDMX-ML 2.1 structure message. Each file must have:
the header STRUCTURE (or STRUCTURE[x], declaring the sub-field separator x), STRUCTURE_ID,
ACTION, then exactly the components of the structure named (dimensions in order, the measure,
the attributes); STRUCTURE "dataflow" and a STRUCTURE_ID of a dataflow in the message; ACTION
I, A, R or D; every dimension of every row given (the full key), coded values in their code
lists, uncoded ones matching their pattern, TIME_PERIOD an SDMX time period or time range;
a multi-valued column (ID[]) only with a declared separator, and no separator elsewhere; no
key twice. Then sdmx1 must read the file (without labels) with the structure, one observation
per row.
Prints "OK <rows>" per file, or every problem and exits 1.
"""

import csv
import re
import sys

import sdmx

TIME = re.compile(
    r"^\d{4}(-(Q[1-4]|M(0[1-9]|1[0-2])|S[12]|W\d\d|D\d{3}|(0[1-9]|1[0-2])(-\d\d)?))?"
    r"(/P(\d+Y)?(\d+M)?(\d+D)?)?$"
)
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
INTEGER = re.compile(r"^\d+$")


def enumeration(component):
    rep = component.local_representation or getattr(
        component.concept_identity, "core_representation", None
    )
    return rep.enumerated if rep is not None else None


def text_format(component):
    rep = component.local_representation
    return rep.non_enumerated[0] if rep is not None and rep.non_enumerated else None


def check(message, path):
    problems = []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [f"{path}: empty"]
    header, body = rows[0], rows[1:]
    # labels=both: "ID: Name" in the header and "CODE: Name" in coded fields; the ids are checked.
    labelled = len(header) > 3 and ": " in header[3]
    if labelled:
        header = header[:3] + [h.split(": ", 1)[0] for h in header[3:]]
        body = [r[:3] + [v.split(": ", 1)[0] for v in r[3:]] for r in body]
    m = re.fullmatch(r"STRUCTURE(\[(.)\])?", header[0])
    if not m or header[1:3] != ["STRUCTURE_ID", "ACTION"]:
        return [f"{path}: header must start STRUCTURE,STRUCTURE_ID,ACTION: {header[:3]}"]
    separator = m.group(2)
    ids = {r[1] for r in body}
    if len(ids) != 1:
        return [f"{path}: one STRUCTURE_ID expected, found {sorted(ids)}"]
    (sid,) = ids
    m = re.fullmatch(r"([A-Za-z0-9_.@$-]+):([A-Za-z0-9_@$-]+)\(([0-9.]+)\)", sid)
    if not m:
        return [f"{path}: STRUCTURE_ID {sid!r} is not AGENCY:ID(VERSION)"]
    flow = message.dataflow.get(m.group(2))
    if flow is None or flow.maintainer.id != m.group(1) or flow.version != m.group(3):
        return [f"{path}: STRUCTURE_ID {sid} is not a dataflow of the structures"]
    dsd = message.structure[flow.structure.id]
    dims = [d for d in dsd.dimensions]
    measures = [m for m in dsd.measures]
    attributes = [a for a in dsd.attributes]
    components = dims + measures + attributes
    columns = [c.rstrip("[]") for c in header[3:]]
    multi = {c.rstrip("[]") for c in header[3:] if c.endswith("[]")}
    if multi and separator is None:
        problems.append(f"{path}: multi-valued columns {sorted(multi)} without STRUCTURE[x]")
    want = [c.id for c in components]
    if [c for c in columns if c in want] != [c for c in want if c in columns] or set(columns) - set(want):
        problems.append(f"{path}: columns {columns} are not components of {dsd.id}, in order: {want}")
    missing = [d.id for d in dims if d.id not in columns]
    if missing:
        problems.append(f"{path}: the key lacks dimensions {missing}")
    if problems:
        return problems
    index = {c: i + 3 for i, c in enumerate(columns)}
    by_id = {c.id: c for c in components}
    seen = set()
    for n, row in enumerate(body, start=2):
        where = f"{path}:{n}"
        if len(row) != len(header):
            problems.append(f"{where}: {len(row)} fields, header has {len(header)}")
            continue
        if row[0] != "dataflow" or row[2] not in ("I", "A", "R", "D"):
            problems.append(f"{where}: STRUCTURE {row[0]!r} / ACTION {row[2]!r}")
        key = tuple(row[index[d.id]] for d in dims)
        if key in seen:
            problems.append(f"{where}: key {'.'.join(key)} appears twice")
        seen.add(key)
        for cid, i in index.items():
            value, component = row[i], by_id[cid]
            values = value.split(separator) if cid in multi and value else [value]
            if cid not in multi and separator and separator in value:
                problems.append(f"{where}: {cid} holds the separator {separator!r} but is not ID[]")
            is_dim = component in dims
            if value == "":
                if is_dim:
                    problems.append(f"{where}: dimension {cid} is empty")
                elif getattr(component, "usage_status", None) and "mandatory" in str(component.usage_status).lower() and component in attributes:
                    problems.append(f"{where}: mandatory attribute {cid} is empty")
                continue
            codes = enumeration(component)
            for v in values:
                if codes is not None:
                    if v not in codes:
                        problems.append(f"{where}: {cid} {v!r} is not in {codes.id}")
                elif cid == "TIME_PERIOD":
                    if not TIME.match(v):
                        problems.append(f"{where}: TIME_PERIOD {v!r} is not an SDMX time period")
                else:
                    tf = text_format(component)
                    pattern = getattr(tf, "pattern", None) if tf is not None else None
                    kind = str(getattr(tf, "value_type", "") or "")
                    if pattern and not re.fullmatch(pattern, v):
                        problems.append(f"{where}: {cid} {v!r} does not match {pattern}")
                    if "Decimal" in kind and not DECIMAL.match(v):
                        problems.append(f"{where}: {cid} {v!r} is not a decimal")
                    if "Integer" in kind and not INTEGER.match(v):
                        problems.append(f"{where}: {cid} {v!r} is not an integer")
                    if cid == "TRANSIT_PATH" and v not in ("_T", "_Z"):
                        areas = message.codelist["CL_AREA"]
                        for a in v.split("-"):
                            if a not in areas:
                                problems.append(f"{where}: TRANSIT_PATH part {a!r} is not in CL_AREA")
    if not problems and not labelled:
        data = sdmx.read_sdmx(path, structure=dsd)
        count = sum(len(ds.obs) for ds in data.data)
        if count != len(body):
            problems.append(f"{path}: sdmx1 read {count} observations of {len(body)} rows")
    return problems


def main():
    message = sdmx.read_sdmx(sys.argv[1])
    failed = False
    for path in sys.argv[2:]:
        problems = check(message, path)
        if problems:
            failed = True
            print("\n".join(problems[:50]))
        else:
            with open(path, encoding="utf-8") as f:
                print(f"OK {sum(1 for _ in f) - 1} {path}")
    sys.exit(1 if failed else 0)


main()
