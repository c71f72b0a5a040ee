"""The ops room's wall screen: its page (``/screen``) and its data (``/api/v1/screen``).

The page is a shell with no data in it (labels, layout, the script), so it needs no token: a
kiosk opens ``/screen?token=<screen token>`` once, the script keeps the token in the tab's
sessionStorage and takes it out of the address bar, and asks ``/api/v1/screen`` with it.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.deps import ContextDep, Screen, SessionsDep
from app.screen import service
from app.screen.schemas import ScreenData
from app.web.deps import PageDep

router = APIRouter(tags=["screen"])


@router.get("/screen", include_in_schema=False)
async def screen_page(page: PageDep) -> Response:
    settings = page.settings
    shell = service.page_shell(settings, page.translator)
    return page.render("screen/screen.html", screen=settings.screen, title=shell.title, config=shell.config)


@router.get(
    "/api/v1/screen",
    response_model=ScreenData,
    summary="Everything the wall screen shows, each panel with its status",
    description="One answer per refresh of the wall: platform health, live traffic, top services, open "
    "incidents (and the banner's critical ones), who is on call, the dependency graph and the 30-day "
    "trends. Each panel has `status` (`ok`, `stale`: the last refresh failed and the data is the last "
    "good one, `error`: no data), `fetched_at`, `age_s` and `error` (`backend`, `message`, and "
    "`phrase`: the same as a catalogue key and plain-string values, for a screen to say in its "
    "language). Backend queries run at most once per `screen.refresh_seconds` in each process, "
    "whatever the number of screens; a screen token (role `screen`) or any viewer token reads it.",
)
async def screen_data(_caller: Screen, context: ContextDep, sessions: SessionsDep) -> Response:
    body = await service.answer(
        context.screen,
        backends=context.backends,
        sessions=sessions,
        settings=context.settings,
        spawn=context.spawn,
    )
    return Response(body, media_type="application/json", headers={"cache-control": "no-store"})
