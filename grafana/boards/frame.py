"""What every leadline board shares: fixed uids, tags, time settings, a link to the other."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DashboardLinkType

# Fixed uids: the links between the boards and users' bookmarks rely on them.
LEADING_UID = "leadline-leading-indicators"
PIPELINE_UID = "leadline-pipeline-health"
TAGS = ["leadline"]


def link_to(uid: str, title: str) -> Builder[models.DashboardLink]:
    """A header link to the board ``uid`` that keeps the time range, not the variables."""
    return (
        dashboard.DashboardLink(title)
        .type(DashboardLinkType.LINK)
        .url(f"/d/{uid}")
        .icon("dashboard")
        .keep_time(True)
        .include_vars(False)
        .target_blank(False)
        .as_dropdown(False)
        .tooltip(title)
        .tags([])
    )


def frame(
    title: str,
    *,
    uid: str,
    description: str,
    time_from: str,
    refresh: str,
    link: Builder[models.DashboardLink],
) -> dashboard.Dashboard:
    """An empty, editable board ending at now, in the browser's time zone, with a shared
    crosshair; the caller adds variables, rows and panels."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time(time_from, "now")
        .refresh(refresh)
        .timezone("browser")
        .links([link])
    )
