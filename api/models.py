"""Request bodies of the HTTP API, validated at the boundary.

A spec that fails validation never reaches the registry: the caller gets a 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from node.health import HealthCheck, check_ports
from node.projects import Project, health_fields
from node.secret_box import SecretBox
from node.spec_rules import (
    IMAGE_MAX_CHARS,
    IMAGE_RE,
    MAX_ARG_CHARS,
    MAX_COMMAND_ARGS,
    MAX_ENV,
    MAX_ENV_VALUE_CHARS,
    MAX_MEMORY_MB,
    MAX_MILLICPUS,
    MAX_PORTS,
    MAX_REPLICAS,
    MAX_SECRETS,
    SpecError,
    check_command,
    check_env,
    check_image,
)
from node.spec_rules import check_project_name as _check_project_name
from node.units import UnitError, parse_memory_mb, parse_millicpus
from placement.converge import UpdatePolicy


def check_project_name(name: str) -> str:
    """The whole name must match (`re.fullmatch`): `abc\n` once passed, was stored, and made
    every later stop and destroy of it a 500."""
    try:
        return _check_project_name(name)
    except SpecError as exc:
        raise ValueError(str(exc)) from None


PROJECT_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
NODE_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$"
SERVO_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"
# The schema states exactly what the validators accept (schemathesis checks both ways), so the
# rules of node.spec_rules are written out here as JSON Schema patterns as well:
# sizes: MiB as digits or with M, GiB with G, TiB with T (optional "i"/"iB"/"B"), never 0 and
# never beyond node.spec_rules.MAX_MEMORY_MB (16 TiB)
MEMORY_PATTERN = (
    r"^([1-9][0-9]{0,6}([mM]([iI]?[bB])?)?|[1-9][0-9]{0,3}[gG]([iI]?[bB])?"
    r"|(1[0-6]|[1-9])[tT]([iI]?[bB])?)$"
)
MILLICPUS_PATTERN = r"^[1-9][0-9]{0,5}m$"  # "500m"; fractions of a CPU go as a JSON number
# Docker's reference grammar (node.spec_rules.IMAGE_RE)
IMAGE_PATTERN = f"^{IMAGE_RE.pattern}$"
ENV_NAME_PATTERN = r"^(?!SHOAL_)[A-Za-z_][A-Za-z0-9_]{0,127}$"
PLAIN_TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"  # no control characters

EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]
EnvValue = Annotated[str, Field(max_length=MAX_ENV_VALUE_CHARS, pattern=PLAIN_TEXT_PATTERN)]
Arg = Annotated[str, Field(max_length=MAX_ARG_CHARS, pattern=PLAIN_TEXT_PATTERN)]


def _json_number(value: Any) -> Any:
    """A JSON number and nothing else: lax pydantic would take `true` or `"5"` for an int,
    which the schema says is invalid (and schemathesis checks that it is refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


# Integers as JSON Schema means them: a number with no fraction (868.0 included), no bools nor
# strings. The bounds sit in the same Annotated as the validator, or the schema loses them.
_N = BeforeValidator(_json_number)
Port = Annotated[int, Field(strict=False, ge=1, le=65535), _N]
PortOrNone = Annotated[int, Field(strict=False, ge=0, le=65535), _N]
Count = Annotated[int, Field(strict=False, ge=0, le=MAX_REPLICAS), _N]
PositiveCount = Annotated[int, Field(strict=False, ge=1, le=MAX_REPLICAS), _N]
Threshold = Annotated[int, Field(strict=False, ge=1, le=100), _N]
MemoryMiB = Annotated[int, Field(strict=False, ge=1, le=MAX_MEMORY_MB), _N]
Generation = Annotated[int, Field(strict=False, ge=1, le=2**31), _N]
# patternProperties alone would let any other key through as far as the schema says
ONLY_NAMED_KEYS: dict[str, Any] = {"additionalProperties": False}


class HealthIn(BaseModel):
    """A servo's health check: run by the host that runs it (see docs/host.md)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["http", "tcp", "none"] = "none"
    port: PortOrNone = 0
    path: str = Field(default="/", max_length=1024, pattern=r"^/[\x21-\x7e]*$")
    interval_s: float = Field(default=2.0, ge=0.1, le=3600)
    timeout_s: float = Field(default=1.0, gt=0, le=3600)
    threshold: Threshold = 3
    grace_s: float = Field(default=5.0, ge=0, le=3600)


class UpdateIn(BaseModel):
    """How a new version rolls out (Kubernetes' and Nomad's semantics)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    parallel: PositiveCount = 1
    surge: PositiveCount = 1
    healthy_for_s: float = Field(default=5.0, ge=0, le=3600)
    deadline_s: float = Field(default=120.0, gt=0, le=86400)
    auto_rollback: bool = True


class ProjectSpecIn(BaseModel):
    """The body of `PUT /v1/projects/{name}` (DESIGN.md's project spec)."""

    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")

    image: str = Field(min_length=1, max_length=IMAGE_MAX_CHARS, pattern=IMAGE_PATTERN)
    replicas: Count = 1
    memory: Annotated[str, Field(pattern=MEMORY_PATTERN)] | MemoryMiB = "256M"
    cpus: (
        Annotated[float, Field(ge=0.001, le=MAX_MILLICPUS / 1000)]
        | Annotated[str, Field(pattern=MILLICPUS_PATTERN)]
    ) = 0.5
    ports: list[Port] = Field(
        default_factory=list, max_length=MAX_PORTS, json_schema_extra={"uniqueItems": True}
    )
    env: dict[EnvName, EnvValue] = Field(
        default_factory=dict, max_length=MAX_ENV, json_schema_extra=ONLY_NAMED_KEYS
    )
    spread: Literal["region", "zone", "host"] = "region"
    max_per_host: PositiveCount = 1
    command: list[Arg] | None = Field(default=None, max_length=MAX_COMMAND_ARGS)
    health: HealthIn | None = None
    update: UpdateIn | None = None
    # write-only: given here, sealed with the cluster key at once, shown as names ever after.
    # Omitted: the project keeps the secrets it has; {}: it has none.
    secrets: dict[EnvName, EnvValue] | None = Field(
        default=None, max_length=MAX_SECRETS, json_schema_extra=ONLY_NAMED_KEYS
    )
    # the container's root filesystem is read-only (with a tmpfs on /tmp) unless this is true
    writable_root: bool = False

    @model_validator(mode="after")
    def _health_port(self) -> ProjectSpecIn:
        if self.health is not None and self.health.type != "none":
            try:
                check = HealthCheck.from_wire(self.health.model_dump())
                if check is not None:
                    check_ports(check, tuple(self.ports))
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return self

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | int) -> str | int:
        try:
            parse_memory_mb(value)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: float | str) -> float | str:
        try:
            parse_millicpus(value)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: list[int]) -> list[int]:
        for port in value:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is outside 1-65535")
        if len(set(value)) != len(value):
            raise ValueError("ports must not repeat")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            check_env(value)
        except SpecError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        try:
            check_env(value or {}, "secrets", MAX_SECRETS)
        except SpecError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _secret_names_apart(self) -> ProjectSpecIn:
        both = sorted(set(self.env) & set(self.secrets or {}))
        if both:
            raise ValueError(f"secrets and env both name {', '.join(both)}")
        return self

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        try:
            return check_image(value)
        except SpecError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        try:
            check_command(value)
        except SpecError as exc:
            raise ValueError(str(exc)) from None
        return value

    def to_project(
        self,
        name: str,
        stopped: bool = False,
        box: SecretBox | None = None,
        prior: Project | None = None,
    ) -> Project:
        """The project this spec asks for; its secrets sealed with `box` (or, when the spec
        names none, `prior`'s kept as they are)."""
        if self.secrets is not None and box is not None:
            names = tuple(sorted(self.secrets))
            sealed, digest = box.seal(name, self.secrets), box.digest(self.secrets)
        elif self.secrets and box is None:
            raise ValueError("secrets need a cluster key to be sealed with")
        elif prior is not None and self.secrets is None:
            names, sealed, digest = prior.secret_names, prior.secrets_box, prior.secrets_digest
        else:
            names, sealed, digest = (), "", ""
        return Project(
            name=name,
            image=self.image,
            replicas=self.replicas,
            memory_mb=parse_memory_mb(self.memory),
            millicpus=parse_millicpus(self.cpus),
            ports=tuple(self.ports),
            env=tuple(sorted(self.env.items())),
            spread=self.spread,
            max_per_host=self.max_per_host,
            command=tuple(self.command) if self.command else None,
            stopped=stopped,
            health=health_fields(self.health.model_dump() if self.health else None),
            update=UpdatePolicy(**self.update.model_dump()) if self.update else UpdatePolicy(),
            secret_names=names,
            secrets_box=sealed,
            secrets_digest=digest,
            writable_root=self.writable_root,
        )


class ScaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    replicas: Count


class PruneIn(BaseModel):
    """`POST /v1/volumes/prune`: which kept volumes to delete (all of them when nothing is
    given: the caller asked for it explicitly)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    node: str | None = Field(default=None, max_length=253, pattern=NODE_NAME_PATTERN)
    project: str | None = Field(default=None, max_length=63, pattern=PROJECT_NAME_PATTERN)
    older_than_s: float | None = Field(default=None, ge=0, le=10 * 365 * 86400)


class RollbackIn(BaseModel):
    """`POST /v1/projects/{name}/rollback`: to a generation of the history (default: the last
    good one)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    to: Generation | None = None
