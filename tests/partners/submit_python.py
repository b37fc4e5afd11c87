"""A partner's own client, in Python with grpcio and cryptography only: signs a SubmissionBody
with the member's signing key (DSSE v1 over the exact bytes), submits it over mutual TLS with
grpcio's defaults, and prints the outcome as `CODE details`.

    submit_python.py STUBS_DIR IDENTITY_DIR HOST:PORT QUANTITY

STUBS_DIR holds the modules grpc_tools.protoc generated from proto/.
"""
import hashlib
import sys

sys.path.insert(0, sys.argv[1])

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from focalgate.v1 import envelope_pb2, schema_pb2, submissions_pb2_grpc

identity, target, quantity = sys.argv[2], sys.argv[3], sys.argv[4]
read = lambda name: open(f"{identity}/{name}", "rb").read()

body = schema_pb2.SubmissionBody(
    dataflow="SEIZURES", ref_area="KAZ", freq="A", time_period="2024", action="R")
body.prepared_at.seconds = 1_780_000_000
body.observations.add(drug="HEROIN", unit_measure="KG", quantity=quantity, n_seizures=1)
payload = body.SerializeToString()

payload_type = "application/vnd.focalgate.submission.v1+protobuf"
pae = b"DSSEv1 %d %s %d " % (len(payload_type), payload_type.encode(), len(payload)) + payload
key = load_pem_private_key(read("signing.key"), password=None)
cert = x509.load_pem_x509_certificate(read("signing.pem"))
keyid = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
signature = key.sign(pae)  # Ed25519: the message itself

env = envelope_pb2.SignedEnvelope(payload_type=payload_type, payload=payload)
env.signatures.add(keyid=keyid, sig=signature)

credentials = grpc.ssl_channel_credentials(
    root_certificates=read("ca.pem"), private_key=read("auth.key"),
    certificate_chain=read("auth.pem"))
with grpc.secure_channel(target, credentials) as channel:
    try:
        receipt = submissions_pb2_grpc.SubmissionsStub(channel).Submit(env, timeout=30)
        print("OK", receipt.submission_id)
    except grpc.RpcError as e:
        print(e.code().name, e.details())
