"""An analyst's SDMX client: Python sdmx1 with a custom source, over mutual TLS.

    python3 sdmx_client.py BASE_URL IDENTITY_DIR < requests.json > answers.json

`requests.json` is a list of {"flow": ..., "key": ..., "params": {...}, "extensions": {...}}.
For each it fetches the dataflow's structure (references=descendants) and the data, as sdmx1
does by default (SDMX-ML structure-specific data), and writes every observation: its key, its
value as sent, and its attributes. sdmx1 checks `params` against SDMX REST; focalgate's own
parameters (`extensions`: totals, top, freq, transit) go in a URL built here.
"""

import io
import json
import sys
from urllib.parse import urlencode

import sdmx

base, identity = sys.argv[1], sys.argv[2]
sdmx.add_source({"id": "FOCALGATE", "url": base, "name": "focalgate"}, override=True)
tls = {"verify": f"{identity}/ca.pem", "cert": (f"{identity}/auth.pem", f"{identity}/auth.key")}
client = sdmx.Client("FOCALGATE", **tls)

out = {"dataflows": sorted(client.dataflow().dataflow), "answers": []}
for request in json.load(sys.stdin):
    structures = client.dataflow(request["flow"], params={"references": "descendants"})
    dsd = structures.dataflow[request["flow"]].structure
    dsd = structures.structure[dsd.id]
    out.setdefault("dimensions", {})[request["flow"]] = [d.id for d in dsd.dimensions]
    params, extensions = request.get("params", {}), request.get("extensions", {})
    if extensions:
        query = urlencode({**params, **extensions})
        url = f"{base}/data/{request['flow']}/{request['key']}?{query}"
        accept = "application/vnd.sdmx.structurespecificdata+xml;version=2.1"
        response = client.session.get(url, headers={"Accept": accept}, **tls)
        response.raise_for_status()
        message = sdmx.read_sdmx(io.BytesIO(response.content), format="XML", structure=dsd)
    else:
        # As a dict, which sdmx1 checks against the structure (and then reads the answer with it).
        parts = request["key"].split(".")
        dims = [d.id for d in dsd.dimensions if d.id != "TIME_PERIOD"]
        key = {d: p.split("+") for d, p in zip(dims, parts) if p not in ("", "*")}
        message = client.data(request["flow"], key=key, params=params, dsd=dsd)
    observations = []
    for dataset in message.data:
        for obs in dataset.obs:
            observations.append(
                {
                    "key": {k: str(v.value) for k, v in obs.key.values.items()},
                    "value": None if obs.value is None else str(obs.value),
                    "attributes": {k: str(v.value) for k, v in obs.attached_attribute.items()},
                }
            )
    out["answers"].append(observations)
json.dump(out, sys.stdout)
