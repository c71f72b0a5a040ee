"""The wall's on-call panel with as many schedules as an ops room has (3, 5, 9, 20), in a real
browser (Debian's Chromium): every schedule is on the wall with the person on call now, or the
panel says how many it could not show and where they are ("… · 见 /oncall"); nothing overlaps
or is cut, at every wall size the screen's browser tests use, and when a reload of the
configuration adds or removes schedules while the wall runs. A schedule with nobody on call says so
(and the "more" line counts those it hides); a covered shift keeps its "临时替班" mark. The incidents
panel counts what it cannot show through the same line. Screenshots go to artifacts/screen/.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from app.config import load_settings
from app.web.catalogue import MESSAGES
from tests.alerts.support import WEBHOOK, WEBHOOK_TOKEN, alert, alerting_config, payload
from tests.harness.app import (
    ADMIN_TOKEN,
    OPERATOR_TOKEN,
    SCREEN_TOKEN,
    bearer,
    configured_tokens,
    settings_for,
)
from tests.harness.browser import BROWSER, CheckedPage, OpenPage, serve_panorama
from tests.harness.intake import incident_of
from tests.screen.support import FULL_HD, UHD, ZONE, no_placeholders_leak, no_scrollbars, until

pytestmark = [BROWSER, pytest.mark.timeout(300)]

SMALL = {"width": 1024, "height": 576}  # the README's picture of the wall
TEAMS = (
    "platform", "database", "network", "payments", "storage", "identity", "messaging", "frontend",
    "data-pipeline", "search", "billing", "mobile-api", "observability", "security", "edge-cdn",
    "kafka", "redis", "batch-jobs", "k8s-nodes", "dba-oncall",
)  # fmt: skip
# rotations that have not begun: nobody is on call (said in amber, and named when out of sight: the
# last four, of the twenty, more than the "more" line names)
NOT_BEGUN = {"payments", "security", "kafka", "redis", "k8s-nodes", "dba-oncall"}
PEOPLE = ("alice", "bob", "chen.wei", "li.na", "wang.fang", "zhao.lei", "sun.hui", "zhou.min")


def config(database: Path, schedules: int) -> dict[str, Any]:
    """Panorama with ``schedules`` on-call schedules (two people each, weekly shifts)."""
    return {
        "data_dir": str(database.parent / "data"),
        "database": {"url": f"sqlite+aiosqlite:///{database}"},
        "rollups": {"enabled": False},
        "alerts": {"worker": False},
        "auth": {"tokens": configured_tokens()},
        "timezone": ZONE,
        "screen": {"refresh_seconds": 1},
        "users": [{"name": name, "email": f"{name}@example.com"} for name in PEOPLE],
        "schedules": [
            {
                "name": team,
                "timezone": ZONE,
                "rotations": [
                    {
                        "users": [PEOPLE[i % len(PEOPLE)], PEOPLE[(i + 3) % len(PEOPLE)]],
                        "length": "1w",
                        "start": f"{2099 if team in NOT_BEGUN else 2026}-01-{5 + i % 7:02d}T09:00:00",
                    }
                ],
            }
            for i, team in enumerate(TEAMS[:schedules])
        ],
    }


@dataclass
class OnCallWall:
    url: str
    path: Path
    database: Path

    async def configure(self, schedules: int) -> None:
        """Rewrites the configuration file with ``schedules`` schedules and reloads it."""
        self.path.write_text(yaml.safe_dump(config(self.database, schedules)))
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            answer = await client.post("/-/reload", headers=bearer(ADMIN_TOKEN))
            assert answer.status_code == 200, answer.text

    async def on_call(self) -> list[dict[str, Any]]:
        """What the screen's API says about who is on call: what the wall must show."""
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            answer = await client.get("/api/v1/screen", headers=bearer(SCREEN_TOKEN))
            assert answer.status_code == 200, answer.text
            rows: list[dict[str, Any]] = answer.json()["panels"]["oncall"]["data"]["schedules"]
            return rows


@pytest_asyncio.fixture(loop_scope="session")
async def wall(tmp_path: Path) -> AsyncIterator[OnCallWall]:
    database = tmp_path / "panorama.db"
    path = tmp_path / "panorama.yaml"
    path.write_text(yaml.safe_dump(config(database, 3)))
    async with serve_panorama(load_settings(path, {}), config_path=path) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:  # li.na covers network's shift
            now = datetime.now(UTC)
            cover = {
                "user": "li.na",
                "start": (now - timedelta(hours=1)).isoformat(),
                "end": (now + timedelta(hours=3)).isoformat(),
            }
            answer = await client.post(
                "/api/v1/schedules/network/overrides", json=cover, headers=bearer(OPERATOR_TOKEN)
            )
            assert answer.status_code == 201, answer.text
        yield OnCallWall(url, path, database)


PANEL = """(name) => {
    const panel = document.querySelector(`[data-panel="${name || 'oncall'}"]`);
    const box = e => { const r = e.getBoundingClientRect();
                       return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
    const list = panel.querySelector('[data-rows]');
    const more = panel.querySelector('[data-more]');
    const drawn = e => e.getClientRects().length > 0;
    return {
        panel: box(panel),
        compact: list.classList.contains('compact'),
        tall: document.getElementById('main').classList.contains('oncall-tall'),
        overflowing: list.scrollHeight > list.clientHeight + 1,
        rows: [...list.children].filter(drawn).map(li => ({
            box: box(li),
            parts: [...li.children].filter(s => drawn(s) && s.textContent !== '').map(s => ({
                kind: s.className, text: s.textContent, box: box(s),
                cut: s.scrollWidth > s.clientWidth + 1})),
        })),
        more: drawn(more) ? {text: more.textContent, box: box(more), href: more.getAttribute('href'),
                             amber: more.classList.contains('nobody'),
                             cut: more.scrollWidth > more.clientWidth + 1} : null,
    };
}"""


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        inner["left"] >= outer["left"] - 0.5
        and inner["right"] <= outer["right"] + 0.5
        and inner["top"] >= outer["top"] - 0.5
        and inner["bottom"] <= outer["bottom"] + 0.5
    )


def apart(a: dict[str, float], b: dict[str, float]) -> bool:
    """Whether two boxes do not overlap (touching edges are fine)."""
    return (
        a["right"] <= b["left"] + 0.5
        or b["right"] <= a["left"] + 0.5
        or a["bottom"] <= b["top"] + 0.5
        or b["bottom"] <= a["top"] + 0.5
    )


OVERRIDE = {"zh-CN": "临时替班", "en": "override"}
NOBODY = {"zh-CN": "无人值班", "en": "Nobody on call"}
MORE = {
    "zh-CN": re.compile(r"^另有 (\d+) 个值班表未显示(，无人值班：(.+))? · 见\u00a0/oncall$"),
    "en": re.compile(r"^(\d+) more schedules? not shown(; nobody on call in (.+))? · see\u00a0/oncall$"),
}
LANGUAGE = {"zh-CN": 0, "en": 1}
NAMED = 3  # hidden schedules with nobody on call the "more" line names (screen.js)


def named(teams: list[str], lang: str) -> str:
    """How the "more" line names the hidden schedules with nobody on call (the catalogue's words)."""
    separator = MESSAGES["screen.name_sep"][LANGUAGE[lang]]
    names = separator.join(teams[:NAMED])
    if len(teams) <= NAMED:
        return names
    return MESSAGES["screen.names_more"][LANGUAGE[lang]].format(names=names, m=len(teams))


async def accounted(page: CheckedPage, lang: str = "zh-CN") -> tuple[list[str], int, str]:
    """The schedules the panel shows, the number its "more" line says it does not, and how it
    names those of them with nobody on call."""
    found = await page.page.evaluate(PANEL)
    names = [row["parts"][0]["text"].split(" · ")[0] for row in found["rows"] if row["parts"]]
    more = found["more"]
    if more is None:
        return names, 0, ""
    counted = MORE[lang].match(more["text"])
    assert counted, more["text"]
    return names, int(counted.group(1)), counted.group(3) or ""


async def shows_all(page: CheckedPage, count: int, lang: str = "zh-CN") -> bool:
    names, hidden, nobody = await accounted(page, lang)
    shown = len(names)
    return (
        shown + hidden == count
        and names == list(TEAMS[:shown])
        and nobody
        == named([team for team in TEAMS[shown:count] if team in NOT_BEGUN], lang)  # a gap out of sight
    )


async def check_panel(page: CheckedPage, wall: OnCallWall, count: int, lang: str = "zh-CN") -> dict[str, Any]:
    """Every schedule shown with whoever the API says is on call, or counted; nothing overlaps,
    nothing is cut, everything inside the panel; returns what the panel showed."""
    await until(lambda: shows_all(page, count, lang), f"{count} schedules on the wall, shown or counted")
    found: dict[str, Any] = await page.page.evaluate(PANEL)
    truth = {row["schedule"]: row for row in await wall.on_call()}
    assert len(truth) == count
    assert not found["overflowing"], found
    rows = found["rows"]
    for row in rows:
        parts = {part["kind"]: part for part in row["parts"]}
        name, _, override = parts["schedule"]["text"].partition(" · ")
        person = truth[name]["user"]
        assert override == (OVERRIDE[lang] if truth[name]["source"] == "override" else ""), parts
        assert (name == "network") == (truth[name]["source"] == "override"), truth[name]
        if name in NOT_BEGUN:
            assert person is None
            assert parts["who nobody"]["text"] == NOBODY[lang], parts
            assert "until" not in parts, row
        else:
            assert person in PEOPLE
            assert parts["who"]["text"] == person, (name, parts, truth[name])
            assert "until" in parts, row  # when the shift ends: a weekly shift always has an end
        assert inside(row["box"], found["panel"]), row
        for part in row["parts"]:
            assert inside(part["box"], row["box"]), (part, row["box"])
            assert not part["cut"], part  # short names: nothing is ellipsised
        for i, a in enumerate(row["parts"]):
            for b in row["parts"][i + 1 :]:
                assert apart(a["box"], b["box"]), (a, b)
        if found["compact"]:
            assert "next" not in parts, row  # one line: the next person only where room allows
        elif person:
            assert "next" in parts, row
    for above, below in pairwise(rows):
        assert above["box"]["bottom"] <= below["box"]["top"] + 0.5, (above, below)
    more = found["more"]
    if len(rows) < count:
        assert more is not None
        assert more["href"] == "/oncall"
        assert more["amber"] == bool(NOT_BEGUN.intersection(TEAMS[len(rows) : count])), more
        assert inside(more["box"], found["panel"]), more
        assert not more["cut"], more
        assert more["box"]["top"] >= rows[-1]["box"]["bottom"] - 0.5, (more, rows[-1])
    else:
        assert more is None, more
    await no_scrollbars(page)
    await no_placeholders_leak(page)
    return found


async def open_wall(
    open_page: OpenPage, wall: OnCallWall, viewport: dict[str, int], lang: str = ""
) -> CheckedPage:
    page = await open_page(viewport)
    # nothing serves Prometheus here: its panels say so (in the page, not in the console)
    await page.goto(f"{wall.url}/screen?token={SCREEN_TOKEN}{'&lang=' + lang if lang else ''}")
    return page


async def test_three_five_and_nine_schedules_are_all_on_the_wall_as_they_come_and_go(
    wall: OnCallWall, open_page: OpenPage
) -> None:
    page = await open_wall(open_page, wall, FULL_HD)
    three = await check_panel(page, wall, 3)
    assert len(three["rows"]) == 3
    assert not three["tall"]  # three fit the panel's own place, one line each
    await page.shot("screen", "oncall-3-1920x1080", full_page=False)

    await wall.configure(5)  # two schedules more while the wall runs
    five = await check_panel(page, wall, 5)
    assert five["compact"]  # one line each, and the panel takes the trends' left cell too
    assert five["tall"]
    assert len(five["rows"]) == 5
    await page.shot("screen", "oncall-5-1920x1080", full_page=False)

    await wall.configure(9)
    nine = await check_panel(page, wall, 9)
    assert nine["compact"]
    assert nine["tall"]
    assert len(nine["rows"]) == 9  # all nine on the wall, none counted away
    await page.shot("screen", "oncall-9-1920x1080", full_page=False)

    await wall.configure(3)  # and back: the rows that went away are gone, the trends are whole again
    back = await check_panel(page, wall, 3)
    assert not back["tall"]
    assert len(back["rows"]) == 3
    await wall.configure(1)  # one schedule: the roomy row, with who is next
    one = await check_panel(page, wall, 1)
    assert not one["compact"]
    await page.shot("screen", "oncall-1-1920x1080", full_page=False)
    await wall.configure(2)  # two roomy rows do not fit the panel's own place: one line each
    two = await check_panel(page, wall, 2)
    assert two["compact"]
    assert not two["tall"]


@pytest.mark.parametrize(
    ("viewport", "lang", "name"),
    [
        (FULL_HD, "en", "oncall-20-1920x1080-en"),
        (UHD, "", "oncall-20-3840x2160"),
        (SMALL, "", "oncall-20-1024x576"),
    ],
)
async def test_twenty_schedules_show_what_fits_and_count_the_rest_at_every_wall_size(
    wall: OnCallWall, open_page: OpenPage, viewport: dict[str, int], lang: str, name: str
) -> None:
    await wall.configure(20)
    page = await open_wall(open_page, wall, viewport, lang)
    found = await check_panel(page, wall, 20, lang or "zh-CN")
    assert found["compact"]
    assert found["more"] is not None  # twenty never fit: the rest are counted, and where to see them
    await page.shot("screen", name, full_page=False)
    await wall.configure(9)
    nine = await check_panel(page, wall, 9, lang or "zh-CN")
    assert nine["compact"]
    assert len(nine["rows"]) == 9  # nine fit at every 16:9 size


async def test_incidents_beyond_the_list_or_the_panel_are_counted_by_the_same_line(
    tmp_path: Path, open_page: OpenPage
) -> None:
    """Twelve open incidents, ten listed (``screen.max_incidents``): the two the answer leaves
    out and the listed ones the panel cannot hold are counted in one line pointing to /incidents."""
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path / 'panorama.db'}",
        **alerting_config(),
        timezone=ZONE,
        screen={"refresh_seconds": 1, "max_incidents": 10},
    )
    async with serve_panorama(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            for i in range(12):
                name = f"DiskFillingUp{i:02d}"
                body = payload(name, [alert(name, severity="warning", service=f"svc{i}", namespace="shop")])
                await incident_of(
                    client, await client.post(WEBHOOK, json=body, headers=bearer(WEBHOOK_TOKEN))
                )
        page = await open_page(FULL_HD)
        await page.goto(f"{url}/screen?token={SCREEN_TOKEN}")
        counted = re.compile(r"^另有 (\d+) 个未列出 · 见\u00a0/incidents$")

        async def accounted() -> dict[str, Any] | None:
            found: dict[str, Any] = await page.page.evaluate(PANEL, "incidents")
            more = found["more"]
            number = counted.match(more["text"]) if more else None
            return found if number and len(found["rows"]) + int(number.group(1)) == 12 else None

        found = await until(accounted, "twelve incidents shown or counted")
        assert 0 < len(found["rows"]) < 10  # ten listed do not all fit at 1920x1080: counted too
        assert not found["overflowing"], found
        assert found["more"]["href"] == "/incidents"
        assert inside(found["more"]["box"], found["panel"]), found["more"]
        assert not found["more"]["cut"], found["more"]
        for row in found["rows"]:
            assert inside(row["box"], found["panel"]), row
        await no_scrollbars(page)
        await page.shot("screen", "incidents-12-1920x1080", full_page=False)
