"""The typed settings of airlake: one pydantic model per section, and the one place where every default lives.

``airlake.toml``, ``.env`` and ``AIRLAKE__*`` variables only override what is written here; the section and key
names are the names users write (``[pipeline] commit_interval`` is ``AIRLAKE__PIPELINE__COMMIT_INTERVAL``).
Code reads them as attributes (``settings.pipeline.commit_interval``). Secrets are :class:`pydantic.SecretStr`:
they print as ``**********`` and are read with ``.get_secret_value()``.

Imports nothing of airlake's (this is the bottom layer).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

WIKIMEDIA_URL = "https://stream.wikimedia.org/v2/stream/recentchange"
USER_AGENT = "airlake/0.1 (Here Comes The Airplane data platform; data-platform@herecomestheairplane.example)"
ORDERS_URL = "http://127.0.0.1:8091/v2/stream/orders"


class Section(BaseModel):
    """A settings section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceSettings(Section):
    """One firehose source (``sources.<name>``): where it is and how to read it."""

    url: str
    user_agent: str = USER_AGENT
    read_timeout: float = 60.0
    connect_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_line_bytes: int = 1 << 20
    """A longer SSE line makes its event a dead letter."""
    max_event_bytes: int = 4 << 20
    """And so does a larger event."""


class SourcesSettings(Section):
    recentchange: SourceSettings = SourceSettings(url=WIKIMEDIA_URL)
    orders: SourceSettings = SourceSettings(url=ORDERS_URL)


class FirehoseSettings(Section):
    """The local firehoses: the replay of recorded recentchange events and the generated orders."""

    host: str = "127.0.0.1"
    recentchange_port: int = 8090
    orders_port: int = 8091
    source: str = ""
    """A recording to replay; empty: the recordings in ../shared/data/wikimedia/."""
    orders_per_edit: float = 0.5
    seed: int = 42


class MarketsSettings(Section):
    default: str = "springfield"
    """The market of a wiki not in :attr:`wikis`."""
    wikis: dict[str, str] = Field(
        default_factory=lambda: {
            "enwiki": "new-york",
            "wikidatawiki": "london",
            "commonswiki": "london",
            "dewiki": "berlin",
            "frwiki": "paris",
            "eswiki": "madrid",
            "itwiki": "rome",
            "jawiki": "tokyo",
            "ptwiki": "sao-paulo",
            "viwiki": "hanoi",
            "ruwiki": "moscow",
            "zhwiki": "taipei",
            "plwiki": "warsaw",
            "kowiki": "seoul",
            "cawiki": "barcelona",
        }
    )
    """Wiki -> market: whose editing activity stands for which market's demand (the user's own keys)."""


class PipelineSettings(Section):
    """The speed pipeline."""

    commit_interval: float = 2.0
    """Seconds from one micro-batch commit to the next."""
    max_batch_events: int = 20_000
    """A batch is cut early when this many events are waiting (bounds memory)."""
    dedupe_cache_size: int = 2_000_000
    """Event ids remembered for deduplication."""
    allowed_lateness_minutes: float = 60
    """Minutes of event time a speed aggregate stays open for late events."""
    max_event_ahead_seconds: float = 300.0
    """An event dated further after its receive time is a dead letter."""
    expire_snapshots_every: int = 50
    """Batches between snapshot expiries."""
    keep_snapshots: int = 20
    """Snapshots kept by each expiry (their ids warm the dedupe cache on restart)."""
    lease_ttl_seconds: float = 30.0
    """The writer lease expires this long after its holder's last heartbeat."""
    reader_queue_bytes: int = 64 << 20
    """Bytes a firehose reader holds before it stops reading (backpressure)."""


class MaintenanceSettings(Section):
    """``airlake maintain``: Trino refuses retentions below the ``min-retention`` of
    ``stack/trino/etc/catalog/iceberg.properties``."""

    snapshot_retention_seconds: int = 3600
    """Snapshots younger than this are kept (stretched per table to keep every writer's newest batch mark)."""
    orphan_retention_seconds: int = 86400
    """Files not referenced by the table and younger than this are kept (commits in flight)."""
    timeout_seconds: float = 1800.0
    """How long one maintenance statement may run."""


class BatchSettings(Section):
    """``airlake batch``: the batch layer recomputes the days whose raw data changed, a step at a time."""

    max_step_events: int = 2_000_000
    """Raw events of one source that one step recomputes at most (a larger day is a step of its own). The staging
    views' deduplication holds a step's events in Trino's memory: about 2 million fit the 768 MB that the default
    2 GB heap gives a query (``stack.trino.heap``)."""


class ImagesSettings(Section):
    """What a stored image may be (checked by ``airlake.lake.images.validate``)."""

    allowed_formats: list[str] = Field(default_factory=lambda: ["JPEG", "PNG", "WEBP"])
    """Pillow format names."""
    max_bytes: int = 4_000_000
    """A larger file is rejected unread (``too_many_bytes``)."""
    max_pixels: int = 40_000_000
    """Width times height above this is rejected before decoding (``too_many_pixels``: a decompression bomb)."""
    ingest: Literal["auto", "on", "off"] = "auto"
    """Whether ``airlake ingest`` fetches the photos the orders reference into the side store and ``raw.images``:
    ``auto`` does on every profile but ``embedded`` (which has no servers), and only when the orders are read."""
    menus: bool = True
    """Also fetch the menu photos of the restaurant catalog (``/v1/restaurants`` of the orders firehose) at start."""
    menu_markets: list[str] = Field(default_factory=list)
    """The markets whose menus' photos are fetched (empty: every market the catalog lists); in the environment a
    comma-separated list (``AIRLAKE__IMAGES__MENU_MARKETS=london,paris``)."""

    @field_validator("menu_markets", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    fetch_concurrency: int = 8
    """Photos fetched, validated and stored at once (threads of the image step)."""
    fetch_timeout: float = 10.0
    """Seconds to connect and to wait for each read of a photo."""
    fetch_attempts: int = 4
    """Attempts per photo for connection errors, timeouts and 5xx answers, with exponential backoff and jitter;
    then it is a dead letter (``fetch_failed``). A 404 is not retried (``not_found``)."""
    fetch_backoff: float = 0.5
    """The first backoff ceiling in seconds (it doubles per attempt, at most 10 s)."""
    max_batch_photos: int = 2_000
    """Photos one image batch fetches; more wait for the next."""


class PostgresSettings(Section):
    port: int = 15432
    user: str = "airlake"
    password: SecretStr = SecretStr("")
    """Generated into .env by ``airlake stack up``."""
    catalog_db: str = "iceberg_catalog"
    superset_user: str = "superset"
    superset_password: SecretStr = SecretStr("")
    superset_db: str = "superset"


class S3Settings(Section):
    region: str = "us-east-1"
    bucket: str = "airlake"
    access_key: SecretStr = SecretStr("")
    secret_key: SecretStr = SecretStr("")


class SeaweedfsSettings(Section):
    version: str = "4.48"
    s3_port: int = 8333
    master_port: int = 19333
    volume_port: int = 19340
    filer_port: int = 18888
    admin_port: int = 23646


class FerretdbSettings(Section):
    version: str = "1.24.0"
    port: int = 27017
    database: str = "airlake"
    """The database of the image side store (documents in ``images``, bytes in GridFS, ``rejects``)."""


class TrinoSettings(Section):
    version: str = "476"
    port: int = 8080
    heap: str = "2G"
    java_home: str = ""


class SupersetSettings(Section):
    version: str = "6.1.0"
    port: int = 8088
    workers: int = 2
    admin_user: str = "admin"
    admin_password: SecretStr = SecretStr("")
    secret_key: SecretStr = SecretStr("")
    analyst_user: str = "analyst"
    """SQL Lab on Trino (CSV downloads) and every dashboard."""
    analyst_password: SecretStr = SecretStr("")
    executive_user: str = "executive"
    """The CEO and operations dashboards only, read-only: no SQL Lab, no datasets."""
    executive_password: SecretStr = SecretStr("")


class DbtSettings(Section):
    """dbt, in its own virtual environment in the stack's cache (its dependencies clash with Beam's)."""

    version: str = "1.11.16"
    trino_adapter_version: str = "1.11.0"
    threads: int = 2


class StackSettings(Section):
    """The native stack. Downloads and builds are shared by checkouts in ``cache_dir``; runtime state lives in
    ``{state_dir}/stack``."""

    cache_dir: str = "~/.cache/airlake"
    host: str = "127.0.0.1"
    up_timeout: float = 300.0
    postgres: PostgresSettings = PostgresSettings()
    s3: S3Settings = S3Settings()
    seaweedfs: SeaweedfsSettings = SeaweedfsSettings()
    ferretdb: FerretdbSettings = FerretdbSettings()
    trino: TrinoSettings = TrinoSettings()
    superset: SupersetSettings = SupersetSettings()
    dbt: DbtSettings = DbtSettings()


class ProfileSettings(Section):
    """A profile: the pyiceberg catalog properties it uses (the user's own keys). Values may hold ``{state_dir}``
    and ``{key.path}`` placeholders of other settings."""

    catalog: dict[str, str]


def _stack_catalog(postgres: str, s3_endpoint: str) -> ProfileSettings:
    """The catalog of a profile on the stack: PostgreSQL at ``postgres`` (host:port), the S3 store at
    ``s3_endpoint``, the credentials that ``airlake stack up`` generates."""
    return ProfileSettings(
        catalog={
            "type": "sql",
            "uri": "postgresql+psycopg2://{stack.postgres.user}:{stack.postgres.password}"
            f"@{postgres}/{{stack.postgres.catalog_db}}",
            "warehouse": "s3://{stack.s3.bucket}/warehouse",
            "s3.endpoint": s3_endpoint,
            "s3.region": "{stack.s3.region}",
            "s3.access-key-id": "{stack.s3.access_key}",
            "s3.secret-access-key": "{stack.s3.secret_key}",
        }
    )


def _default_profiles() -> dict[str, ProfileSettings]:
    return {
        "embedded": ProfileSettings(
            catalog={
                "type": "sql",
                "uri": "sqlite:///{state_dir}/catalog.db",
                "warehouse": "file://{state_dir}/warehouse",
            }
        ),
        "local": _stack_catalog("{stack.host}:{stack.postgres.port}", "http://{stack.host}:{stack.seaweedfs.s3_port}"),
        "compose": _stack_catalog("postgres:5432", "http://seaweedfs:8333"),
    }


class AirlakeModel(Section):
    """Every setting of airlake, by section."""

    profile: str = "embedded"
    """embedded: SQLite catalog + file:// warehouse, no servers; local: the native stack; compose: docker compose."""
    state_dir: str = ".airlake"
    """Runtime state (catalog, warehouse, spool, logs), relative to the working directory."""
    sources: SourcesSettings = SourcesSettings()
    firehose: FirehoseSettings = FirehoseSettings()
    markets: MarketsSettings = MarketsSettings()
    pipeline: PipelineSettings = PipelineSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    batch: BatchSettings = BatchSettings()
    images: ImagesSettings = ImagesSettings()
    stack: StackSettings = StackSettings()
    profiles: dict[str, ProfileSettings] = Field(default_factory=_default_profiles)
