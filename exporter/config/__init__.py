"""Configuration: one YAML file validated whole at start-up, every problem reported with its key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from exporter.config.actions import Actions
from exporter.config.base import Section
from exporter.config.durations import Duration, format_duration, parse_duration
from exporter.config.health import ErrorLog, Errors, Progress
from exporter.config.problems import validation_problems
from exporter.config.profiles import Profile
from exporter.config.profiles import apply as apply_profile
from exporter.config.streams import DiscoverRule, StaticStream, Streams
from exporter.config.viewers import AccessLog, Geo, Viewers
from exporter.config.yamlkeys import duplicate_keys
from exporter.errors import ConfigError

__all__ = [
    "AccessLog", "Actions", "Config", "ConfigError", "DiscoverRule", "Duration", "ErrorLog", "Errors", "Geo",
    "Progress", "StaticStream",
    "Streams", "Viewers", "format_duration", "load_config", "parse_config", "parse_duration",
]


class Config(Section):
    profile: Profile | None = None
    """The panel this host runs (panelx, xui, xtream, hls): its defaults for everything the file leaves out."""
    node: str = Field(default="", max_length=128, validate_default=True)
    """This host's name; alerts carry it as label ``node``. Empty: the host name."""
    sample_interval: Duration = 5.0
    egress_capacity_bits_per_second: float | None = Field(default=None, gt=0)
    """Uplink capacity, exported so IPTVBandwidthPeak can compare against it."""
    streams: Streams = Field(default_factory=Streams)
    viewers: Viewers = Field(default_factory=Viewers)
    geo: Geo = Field(default_factory=Geo)
    actions: Actions | None = None
    progress: Progress = Field(default_factory=Progress)
    errors: Errors = Field(default_factory=Errors)

    @field_validator("sample_interval")
    @classmethod
    def _sane_interval(cls, value: float) -> float:
        if not 0.1 <= value <= 3600:  # faster burns a core; slower and every stream looks stalled
            raise ValueError(f"must be between 100ms and 1h, not {format_duration(value)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: object) -> object:
        return apply_profile(data) if isinstance(data, dict) else data

    @field_validator("node")
    @classmethod
    def _node_default(cls, value: str) -> str:
        if value:
            return value
        import socket

        return socket.gethostname()


def parse_config(data: Any, path: str = "<config>") -> Config:
    """Validate already-loaded YAML data; raise ConfigError listing every problem with its key path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, ["(top level): expected a mapping of keys"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, validation_problems(exc)) from None


def load_config(path: str | Path | None) -> Config:
    """Read and validate a config file; ``None`` gives the built-in defaults that watch the local host."""
    if path is None:
        return parse_config({})
    text_path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(text_path, [f"(file): cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(text_path, [f"(file): not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})"]
                          ) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = duplicate_keys(node) if node is not None else []
        if duplicates:  # as Prometheus does: the second value would silently win
            raise ConfigError(text_path, duplicates)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(text_path, [f"(yaml): {where}{getattr(exc, 'problem', exc)}"]) from None
    finally:
        loader.dispose()
    return parse_config(data, text_path)
