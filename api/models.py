"""Request bodies of the HTTP API, validated at the boundary.

A spec that fails validation never reaches the registry: the caller gets a 422 naming the field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from node.health import HealthCheck, check_ports
from node.projects import Project, health_fields
from node.secret_box import SecretBox
from node.spec_rules import (
    MAX_ENV,
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


class HealthIn(BaseModel):
    """A servo's health check: run by the host that runs it (see docs/host.md)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["http", "tcp", "none"] = "none"
    port: int = Field(default=0, ge=0, le=65535)
    path: str = Field(default="/", max_length=1024, pattern=r"^/[\x21-\x7e]*$")
    interval_s: float = Field(default=2.0, ge=0.1, le=3600)
    timeout_s: float = Field(default=1.0, gt=0, le=3600)
    threshold: int = Field(default=3, ge=1, le=100)
    grace_s: float = Field(default=5.0, ge=0, le=3600)


class UpdateIn(BaseModel):
    """How a new version rolls out (Kubernetes' and Nomad's semantics)."""

    model_config = ConfigDict(extra="forbid")

    parallel: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    surge: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    healthy_for_s: float = Field(default=5.0, ge=0, le=3600)
    deadline_s: float = Field(default=120.0, gt=0, le=86400)
    auto_rollback: bool = True


class ProjectSpecIn(BaseModel):
    """The body of `PUT /v1/projects/{name}` (DESIGN.md's project spec)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, max_length=255)
    replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS)
    memory: str | int = "256M"
    cpus: float | str = 0.5
    ports: list[int] = Field(default_factory=list, max_length=MAX_PORTS)
    env: dict[str, str] = Field(default_factory=dict, max_length=MAX_ENV)
    spread: Literal["region", "zone", "host"] = "region"
    max_per_host: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    command: list[str] | None = Field(default=None, max_length=64)
    health: HealthIn | None = None
    update: UpdateIn | None = None
    # write-only: given here, sealed with the cluster key at once, shown as names ever after.
    # Omitted: the project keeps the secrets it has; {}: it has none.
    secrets: dict[str, str] | None = Field(default=None, max_length=MAX_SECRETS)
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
    model_config = ConfigDict(extra="forbid")
    replicas: int = Field(ge=0, le=MAX_REPLICAS)


class PruneIn(BaseModel):
    """`POST /v1/volumes/prune`: which kept volumes to delete (all of them when nothing is
    given: the caller asked for it explicitly)."""

    model_config = ConfigDict(extra="forbid")
    node: str | None = Field(default=None, max_length=253, pattern=NODE_NAME_PATTERN)
    project: str | None = Field(default=None, max_length=63, pattern=PROJECT_NAME_PATTERN)
    older_than_s: float | None = Field(default=None, ge=0, le=10 * 365 * 86400)


class RollbackIn(BaseModel):
    """`POST /v1/projects/{name}/rollback`: to a generation of the history (default: the last
    good one)."""

    model_config = ConfigDict(extra="forbid")
    to: int | None = Field(default=None, ge=1, le=2**31)
