"""Vexil's own gRPC API for the OpenFeature suite: stubs compiled from
proto/ at run time, and the flags every provider test evaluates."""

import datetime
import os
import sys
import tempfile
import uuid

import grpc
from grpc_tools import protoc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _stubs():
    out = tempfile.mkdtemp(prefix="vexil-stubs-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main([
        "protoc", f"-I{ROOT}/proto", f"-I{include}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        "vexil/v1/flags.proto",
    ])
    assert code == 0, "compiling vexil/v1/flags.proto failed"
    sys.path.insert(0, out)
    from vexil.v1 import flags_pb2, flags_pb2_grpc  # noqa: E402
    return flags_pb2, flags_pb2_grpc


pb, pb_grpc = _stubs()

USERS = [f"user-{i}" for i in range(1000)]
ENVIRONMENTS = ["production", "staging", None]


class Vexil:
    def __init__(self, address):
        channel = grpc.insecure_channel(address)
        self.flags = pb_grpc.FlagServiceStub(channel)
        self.evaluation = pb_grpc.EvaluationServiceStub(channel)

    def create(self, **fields):
        return self.flags.CreateFlag(pb.CreateFlagRequest(flag=pb.Flag(**fields)))

    def set_percentage(self, name, percentage):
        from google.protobuf.field_mask_pb2 import FieldMask
        return self.flags.UpdateFlag(pb.UpdateFlagRequest(
            flag=pb.Flag(name=name, percentage=percentage),
            update_mask=FieldMask(paths=["percentage"]),
            reason="OpenFeature suite"))

    def evaluate(self, name, user, environment):
        answer = self.evaluation.Evaluate(pb.EvaluateRequest(
            flag_name=name, user_id=user or "", environment=environment or ""))
        return answer.enabled, pb.Reason.Name(answer.reason)


def timestamp(days):
    from google.protobuf.timestamp_pb2 import Timestamp
    ts = Timestamp()
    ts.FromDatetime(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days))
    return ts


def create_rule_flags(vexil, language):
    """One flag per rule type, uniquely named for this run. Returns
    {name: expected OpenFeature reason kind} where the kind is STATIC,
    KILLED (off for everyone: STATIC, with Vexil's reason DISABLED) or
    TARGETING_MATCH."""
    prefix = f"of-{language}-{uuid.uuid4().hex[:8]}"
    specs = {
        "on": (dict(enabled=True, percentage=100), "STATIC"),
        "off": (dict(enabled=True, percentage=0), "STATIC"),
        "killed": (dict(enabled=False, percentage=100, whitelist=["user-1"]), "KILLED"),
        "rollout": (dict(enabled=True, percentage=37.5), "TARGETING_MATCH"),
        "lists": (dict(enabled=True, percentage=50, whitelist=[f"user-{i}" for i in range(10)],
                       blacklist=["user-11", "user-3"]), "TARGETING_MATCH"),
        "envs": (dict(enabled=True, percentage=100, environments=["production"]), "TARGETING_MATCH"),
        "override": (dict(enabled=True, percentage=0, environment_overrides={"staging": True}),
                     "TARGETING_MATCH"),
        "later": (dict(enabled=True, percentage=100, starts_at=timestamp(1)), "TARGETING_MATCH"),
        "expired": (dict(enabled=True, percentage=100, expires_at=timestamp(-1)), "STATIC"),
        "window": (dict(enabled=True, percentage=100, starts_at=timestamp(-1), expires_at=timestamp(1)),
                   "TARGETING_MATCH"),
    }
    kinds = {}
    for suffix, (spec, kind) in specs.items():
        name = f"{prefix}.{suffix}"
        vexil.create(name=name, **spec)
        kinds[name] = kind
    return prefix, kinds
