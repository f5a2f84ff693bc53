"""What every leadline board shares: fixed uids, tags, time settings, a link to the other."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DashboardLinkType

from grafana.panels import DATASOURCE

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


#: Leadline alerts firing (the always-firing Watchdog left out): a red region on every
#: panel while one fires, its labels (alert name, severity, platform...) as the text.
ALERTS_FIRING = ('ALERTS{alertstate="firing", alertname=~"Leadline.*", '
                 'alertname!="LeadlineWatchdog"}')
#: A version that was not running 5 minutes earlier: a deploy (leadline_build_info).
DEPLOYS = ('count by (version) (leadline_build_info{job="leadline"}) unless '
           'count by (version) (leadline_build_info{job="leadline"} offset 5m)')


def annotations() -> list[Builder[models.AnnotationQuery]]:
    """Firing alerts and deploys, marked on every time series of the board."""
    return [
        dashboard.AnnotationQuery()
        .name("Firing alerts").datasource(DATASOURCE).enable(True).icon_color("red")
        .expr(ALERTS_FIRING),
        dashboard.AnnotationQuery()
        .name("Deploys").datasource(DATASOURCE).enable(True).icon_color("blue")
        .expr(DEPLOYS),
    ]


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
        .annotations(annotations())
    )
