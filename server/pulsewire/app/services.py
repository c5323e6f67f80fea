"""The running parts of one server, built by the app's lifespan, and a typed dependency for each.

HTTP routes ask for exactly the parts they use (`ReadsDep`, `WriterDep`, ...). The device and
live channels take the whole set (`ServicesDep`): a device connection uses nearly every part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends
from starlette.requests import HTTPConnection

from pulsewire.alerts.outbox import Outbox
from pulsewire.alerts.runtime import Alerting
from pulsewire.channels.hub import LiveHub
from pulsewire.channels.presence import Presence
from pulsewire.cluster.node import ClusterNode
from pulsewire.logs import Throttle
from pulsewire.metrics import Metrics
from pulsewire.releases.runtime import Rollouts
from pulsewire.settings import Settings
from pulsewire.storage.reads import Reads
from pulsewire.storage.writer import BatchingWriter


@dataclass(eq=False)
class Services:
    settings: Settings
    writer: BatchingWriter
    reads: Reads
    hub: LiveHub
    presence: Presence
    metrics: Metrics
    admin_key: str
    # Outgoing HTTP (webhook notifications): one pool for the app, closed when it stops.
    http_client: httpx.AsyncClient
    alerting: Alerting
    outbox: Outbox
    rollouts: Rollouts
    cluster: ClusterNode | None  # with redis_url: this instance's part in the cluster
    # Recurring causes (a client's mistakes) are logged at most once a minute each; metrics count all.
    throttle: Throttle = field(default_factory=Throttle)


def services_of(conn: HTTPConnection) -> Services:
    return conn.app.state.services  # type: ignore[no-any-return]


def _settings(conn: HTTPConnection) -> Settings:
    return services_of(conn).settings


def _writer(conn: HTTPConnection) -> BatchingWriter:
    return services_of(conn).writer


def _reads(conn: HTTPConnection) -> Reads:
    return services_of(conn).reads


def _presence(conn: HTTPConnection) -> Presence:
    return services_of(conn).presence


def _metrics(conn: HTTPConnection) -> Metrics:
    return services_of(conn).metrics


def _http_client(conn: HTTPConnection) -> httpx.AsyncClient:
    return services_of(conn).http_client


ServicesDep = Annotated[Services, Depends(services_of)]
SettingsDep = Annotated[Settings, Depends(_settings)]
WriterDep = Annotated[BatchingWriter, Depends(_writer)]
ReadsDep = Annotated[Reads, Depends(_reads)]
PresenceDep = Annotated[Presence, Depends(_presence)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
HttpClientDep = Annotated[httpx.AsyncClient, Depends(_http_client)]


def _alerting(conn: HTTPConnection) -> Alerting:
    return services_of(conn).alerting


AlertingDep = Annotated[Alerting, Depends(_alerting)]


def _cluster(conn: HTTPConnection) -> ClusterNode | None:
    return services_of(conn).cluster


ClusterDep = Annotated[ClusterNode | None, Depends(_cluster)]


def _rollouts(conn: HTTPConnection) -> Rollouts:
    return services_of(conn).rollouts


RolloutsDep = Annotated[Rollouts, Depends(_rollouts)]
