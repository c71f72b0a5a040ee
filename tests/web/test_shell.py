"""The web shell: signed tokens, security headers, static files, languages, the catalogue, the
login session, and the vendored ECharts."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from app import signing
from app.alerts import reasons
from app.backends.errors import BackendError, BackendErrorKind
from app.correlation.schemas import Gap, GapCode, part_note
from app.security import Principal, Role, TokenRegistry
from app.web import auth, shell, static
from app.web.catalogue import MESSAGES
from app.web.headers import CONTENT_SECURITY_POLICY
from app.web.i18n import Translator
from tests.harness.app import ADMIN_TOKEN, OPERATOR_TOKEN, VIEWER_TOKEN, AppFactory, bearer, settings_for

ROOT = Path(__file__).resolve().parents[2]
KEY = b"a-signing-key-for-the-shell-tests"
NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
SAME_SITE = {"Sec-Fetch-Site": "same-origin"}


def test_a_signed_token_holds_for_its_purpose_until_it_expires() -> None:
    token = signing.sign(KEY, signing.Purpose.VIEW, "service:checkout.shop", NOW + timedelta(hours=1))
    assert signing.verify(KEY, signing.Purpose.VIEW, token, NOW).subject == "service:checkout.shop"
    with pytest.raises(signing.InvalidToken) as expired:
        signing.verify(KEY, signing.Purpose.VIEW, token, NOW + timedelta(hours=2))
    assert expired.value.expired
    for other in (signing.Purpose.ACK, signing.Purpose.SESSION):  # one key, a derived key per purpose
        with pytest.raises(signing.InvalidToken):
            signing.verify(KEY, other, token, NOW)
    subject, expiry, signature = token.split(".")
    forged_expiry = f"{subject}.{int(expiry) + 3600}.{signature}"
    for bad in (forged_expiry, token[:-1], "", "a.b.c", "a.1.b.c", token + "x"):
        with pytest.raises(signing.InvalidToken) as refused:
            signing.verify(KEY, signing.Purpose.VIEW, bad, NOW)
        assert not refused.value.expired
    with pytest.raises(signing.InvalidToken):
        signing.verify(b"another-key", signing.Purpose.VIEW, token, NOW)


def test_a_session_names_its_token_without_carrying_it_and_ends_when_the_token_changes() -> None:
    tokens = TokenRegistry([("alice", Role.OPERATOR, OPERATOR_TOKEN)])
    principal, cookie = auth.new_session(KEY, tokens, OPERATOR_TOKEN, NOW + timedelta(days=7))
    assert principal == Principal("alice", Role.OPERATOR)
    assert OPERATOR_TOKEN not in cookie
    assert hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest() not in cookie
    assert auth.check_session(KEY, tokens, cookie, NOW) == principal
    rotated = TokenRegistry([("alice", Role.OPERATOR, "a-brand-new-token-for-alice")])
    demoted = TokenRegistry([("alice", Role.VIEWER, OPERATOR_TOKEN)])
    with pytest.raises(signing.InvalidToken):
        auth.check_session(KEY, rotated, cookie, NOW)
    with pytest.raises(signing.InvalidToken):
        auth.check_session(KEY, TokenRegistry([]), cookie, NOW)
    assert auth.check_session(KEY, demoted, cookie, NOW).role is Role.VIEWER  # roles come from the config
    with pytest.raises(signing.InvalidToken):
        auth.check_session(KEY, tokens, cookie, NOW + timedelta(days=8))
    with pytest.raises(signing.InvalidToken):
        auth.new_session(KEY, tokens, "not-a-configured-token", NOW)


async def test_every_html_answer_carries_a_strict_content_security_policy(app_factory: AppFactory) -> None:
    async with app_factory() as (_app, client):
        answers = [
            await client.get("/login"),
            await client.get("/incidents"),  # 401: the login form
            await client.get("/incidents/1", headers=bearer(VIEWER_TOKEN)),  # 404 page
            await client.get("/ack/not-a-token"),
        ]
        api = await client.get("/api/v1/whoami", headers=bearer(VIEWER_TOKEN))
    assert [a.status_code for a in answers] == [200, 401, 404, 401]
    for answer in answers:
        assert answer.headers["content-type"].startswith("text/html")
        csp = answer.headers["content-security-policy"]
        assert csp == CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["cache-control"] == "no-store"
        assert "<script>" not in answer.text  # nothing inline: every script has a src
        assert "style=" not in answer.text
    assert "content-security-policy" not in api.headers
    assert api.headers["x-content-type-options"] == "nosniff"


async def test_static_files_are_cached_for_a_year_by_version_and_revalidated_otherwise(
    client: httpx.AsyncClient,
) -> None:
    url = static.url("web/panorama.css")
    versioned = await client.get(url, headers={"Accept-Encoding": "gzip"})
    plain = await client.get("/static/web/panorama.css", headers={"Accept-Encoding": "identity"})
    again = await client.get("/static/web/panorama.css", headers={"If-None-Match": plain.headers["etag"]})
    stale = await client.get("/static/web/panorama.css?v=0123456789ab")
    assert versioned.status_code == 200
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert versioned.headers["content-encoding"] == "gzip"
    assert versioned.headers["content-type"] == "text/css; charset=utf-8"
    assert versioned.text == plain.text  # httpx decodes the gzip
    assert plain.headers["cache-control"] == "no-cache"
    assert "content-encoding" not in plain.headers
    assert again.status_code == 304
    assert stale.headers["cache-control"] == "no-cache"
    for bad in (
        "/static/web/../config.py",
        "/static/web/.hidden",
        "/static/nope/x.js",
        "/static/web/missing.js",
    ):
        assert (await client.get(bad)).status_code == 404, bad


async def test_the_language_comes_from_lang_then_the_remembered_choice_then_the_configuration(
    app_factory: AppFactory,
) -> None:
    async with app_factory() as (_app, client):
        default = await client.get("/login")
        english = await client.get("/login?lang=en")
        remembered = await client.get("/login", headers={"Cookie": "panorama_lang=en"})
        back = await client.get("/login?lang=zh-CN", headers={"Cookie": "panorama_lang=en"})
        junk = await client.get("/login?lang=klingon")
    async with app_factory(alerts={"locale": "en"}) as (_app, client):
        team = await client.get("/login")
    assert '<html lang="zh-CN"' in default.text
    assert "登录" in default.text
    assert '<html lang="en"' in english.text
    assert "Sign in" in english.text
    assert re.search(r"panorama_lang=en;.*HttpOnly", english.headers["set-cookie"])
    assert '<html lang="en"' in remembered.text
    assert '<html lang="zh-CN"' in back.text
    assert '<html lang="zh-CN"' in junk.text
    assert '<html lang="en"' in team.text
    assert 'href="/login?lang=en"' in default.text  # the switch keeps the page


PYTHON_USERS = ("app/web/deps.py", "app/web/api.py", "app/alerts/api.py", "app/pages/api.py")


def _used_keys() -> tuple[set[str], set[str]]:
    """Keys passed to ``_()`` literally (templates, and the routes that pick a heading), and
    prefixes templates complete at run time (``'status.' ~ value``)."""
    literal, prefixes = set(), set()
    for template in (ROOT / "app").glob("*/templates/**/*.html"):
        text = template.read_text(encoding="utf-8")
        literal |= set(re.findall(r"""_\(\s*['"]([a-z_]+\.[a-z_.]+)['"]""", text))
        prefixes |= set(re.findall(r"""['"]([a-z_]+\.(?:[a-z_]+\.)?)['"]\s*~""", text))
    for module in PYTHON_USERS:
        text = (ROOT / module).read_text(encoding="utf-8")
        literal |= set(re.findall(r'"((?:ack|auth|error)\.[a-z_]+)"', text))
    return literal, prefixes


def test_the_catalogue_has_every_word_in_both_languages_with_the_same_placeholders() -> None:
    literal, prefixes = _used_keys()
    assert len(literal) > 100
    missing = sorted(key for key in literal if key not in MESSAGES and not key.endswith("."))
    assert missing == []
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in MESSAGES), prefix
    for key, (zh, en) in MESSAGES.items():
        assert zh.strip()
        assert en.strip(), key
        assert set(re.findall(r"\{(\w+)\}", zh)) == set(re.findall(r"\{(\w+)\}", en)), key


def test_every_phrase_an_error_carries_is_in_the_catalogue_and_names_its_backend() -> None:
    """Errors carry a Phrase for pages (app.errors): each key they name is a word of the catalogue,
    and a backend's failure of every kind names the backend and keeps its own words as the detail."""
    used: set[str] = set()
    for module in (ROOT / "app").rglob("*.py"):
        used |= set(re.findall(r'Phrase\(\s*"([a-z_.0-9]+)"', module.read_text(encoding="utf-8")))
    assert len(used) > 30
    assert sorted(key for key in used if key not in MESSAGES) == []
    chinese, english = Translator("zh-CN", ZoneInfo("UTC")), Translator("en", ZoneInfo("UTC"))
    for kind in BackendErrorKind:
        failure = BackendError("elasticsearch", kind, "connection refused (127.0.0.1:9200)")
        assert failure.phrase.key in MESSAGES, kind
        for t in (chinese, english):
            said = t.error(failure)
            assert "Elasticsearch" in said, (kind, said)
            if kind is not BackendErrorKind.NOT_CONFIGURED:
                assert "connection refused (127.0.0.1:9200)" in said  # the backend's words, as they came
    assert chinese.error(RuntimeError("boom")) == "内部错误，详情见服务日志。"  # never an exception's text


def test_every_gap_a_part_can_have_is_said_in_both_languages_naming_what_it_knows() -> None:
    """What a part that answered lacks (app.correlation.schemas.Gap) is said from the catalogue in each
    language, every value it carries in the sentence (Elasticsearch's own words as they came), the
    backend by name; several gaps of a part are said one after the other."""
    shard = {"failed": 1, "total": 4}
    known = {**shard, "index": "logstash-2026.12.07", "reason": "query_shard_exception: no [log] field"}
    gaps = [
        Gap(part="logs", backend="elasticsearch", code=GapCode.SHARDS_FAILED, values=known),
        Gap(part="logs", backend="elasticsearch", code=GapCode.SHARDS_FAILED, values=shard),
        Gap(part="logs", backend="elasticsearch", code=GapCode.SHARDS_FAILED, values=shard | {"reason": "x"}),
        Gap(part="logs", backend="elasticsearch", code=GapCode.SEARCH_TIMED_OUT),
        Gap(part="logs", backend="elasticsearch", code=GapCode.GLUED_IDS_NOT_SEARCHED),
        Gap(part="trace", backend="jaeger", code=GapCode.TRACE_NOT_FOUND, values={"trace_id": "ab" * 16}),
        Gap(part="red", backend="prometheus", code=GapCode.NO_REQUESTS, values={"service": "payments"}),
        Gap(
            part="red",
            backend="prometheus",
            code=GapCode.NO_REQUESTS,
            values={"service": "payments", "namespace": "shop"},
        ),
    ]
    assert {gap.code for gap in gaps} == set(GapCode)
    chinese, english = Translator("zh-CN", ZoneInfo("UTC")), Translator("en", ZoneInfo("UTC"))
    for gap in gaps:
        assert gap.phrase.key in MESSAGES, gap
        for t in (chinese, english):
            said = t.say(gap.phrase)
            assert {"Elasticsearch", "Jaeger", "Prometheus"} & set(re.findall(r"[A-Z]\w+", said)), said
            for value in gap.values.values():
                assert str(value) in said, (gap, said)
    assert english.say(part_note(None, gaps[:2]) or gaps[0].phrase) == "; ".join(
        english.say(gap.phrase) for gap in gaps[:2]
    )
    assert chinese.say(part_note(None, gaps[3:5]) or gaps[0].phrase).count("；") == 1
    assert part_note(None, []) is None


def test_english_counts_one_thing_in_the_singular_and_chinese_reads_the_same() -> None:
    english, chinese = Translator("en", ZoneInfo("UTC")), Translator("zh-CN", ZoneInfo("UTC"))
    assert english("tl.received", n=1) == "1 alert received"
    assert english("tl.received", n=2) == "2 alerts received"
    assert english("tl.received", n=0) == "0 alerts received"
    assert english("screen.summary_open", n=1) == "1 open incident"
    assert chinese("tl.received", n=1) == "收到 1 条告警"
    singular = [key for key in MESSAGES if key.endswith(".one")]
    assert len(singular) >= 9
    for key in singular:  # each has its counted text, the same placeholders and zh-CN words
        base = key.removesuffix(".one")
        assert base in MESSAGES, key
        assert "{n}" in MESSAGES[base][1], key
        assert MESSAGES[key][0] == MESSAGES[base][0], key


def test_every_stored_reason_for_paging_nobody_reads_in_both_languages() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    english, chinese = Translator("en", zone), Translator("zh-CN", zone)
    until = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    stored = {
        "no_route": reasons.NO_ROUTE,
        "interval": reasons.INTERVAL.format(name="nights"),
        "window": reasons.maintenance(until, "db upgrade"),
        "bare_window": reasons.maintenance(until, ""),
    }
    assert {k: chinese.muted(v) for k, v in stored.items()} == {
        "no_route": "没有配置通知任何人的路由",
        "interval": "处于静默时段 nights",
        "window": "维护窗口中，至 2026-12-07 11:00：db upgrade",
        "bare_window": "维护窗口中，至 2026-12-07 11:00",
    }
    assert english.muted(stored["window"]) == "maintenance until 2026-12-07 11:00: db upgrade"
    assert english.muted("muted by something newer") == "muted by something newer"  # shown as stored
    assert chinese.muted(None) == "—"


def test_a_page_in_one_zone_is_wholly_in_it_and_one_in_several_keeps_the_configured_zone() -> None:
    configured = Translator("zh-CN", ZoneInfo("UTC"))
    summer, winter = datetime(2027, 7, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    berlin, parts = shell.zoned(configured, ["Europe/Berlin", "Europe/Berlin"])
    assert (berlin.tz.key, parts) == ("Europe/Berlin", ())
    assert (berlin.zone_name(winter), berlin.zone_name(summer)) == (
        "Europe/Berlin (UTC+01:00)",
        "Europe/Berlin (UTC+02:00)",
    )
    assert configured.zone_name(summer) == "UTC"
    assert shell.zoned(configured, []) == (configured, ())
    kept, parts = shell.zoned(configured, ["Asia/Kolkata", "UTC", "Asia/Kolkata", "America/St_Johns"])
    assert kept is configured
    assert [z.key for z in parts] == ["Asia/Kolkata", "America/St_Johns"]
    assert [kept.within(z).zone_name(winter) for z in parts] == [
        "Asia/Kolkata (UTC+05:30)",
        "America/St_Johns (UTC-03:30)",
    ]


def test_echarts_is_vendored_pinned_with_its_license_and_matches_its_checksums() -> None:
    checked = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "vendor-echarts.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert re.match(r"echarts \d+\.\d+\.\d+: 3 files match SHA256SUMS", checked.stdout)
    folder = ROOT / "app" / "web" / "static" / "vendor" / "echarts"
    assert "Apache License" in (folder / "LICENSE").read_text(encoding="utf-8")
    assert "Apache ECharts" in (folder / "NOTICE").read_text(encoding="utf-8")
    found = static.asset("web/vendor/echarts/echarts.min.js")  # served from the package's files
    assert found is not None
    assert found.gzipped is not None
    assert len(found.gzipped) < len(found.body) / 2


async def test_signing_in_sets_a_strict_cookie_and_signing_out_clears_it(client: httpx.AsyncClient) -> None:
    form = {"token": OPERATOR_TOKEN, "next": "/incidents?status=resolved"}
    signed = await client.post("/login", data=form, headers=SAME_SITE)
    cookie = signed.headers["set-cookie"]
    value = signed.cookies[auth.SESSION_COOKIE]
    session = {"Cookie": f"{auth.SESSION_COOKIE}={value}"}
    listed = await client.get("/incidents", headers=session)
    who = await client.get("/login", headers=session)
    out = await client.post("/logout", headers={**session, **SAME_SITE})
    assert signed.status_code == 303
    assert signed.headers["location"] == "/incidents?status=resolved"
    assert cookie.startswith(f"{auth.SESSION_COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/", "Max-Age=604800"):
        assert attribute.lower() in cookie.lower(), attribute
    assert "domain" not in cookie.lower()
    assert OPERATOR_TOKEN not in cookie
    assert listed.status_code == 200
    assert "operator-test" in who.text
    assert out.status_code == 303
    assert "Max-Age=0" in out.headers["set-cookie"] or "expires=" in out.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    ("form", "headers", "status", "location"),
    [
        ({"token": "wrong-token-0123456789", "next": "/incidents"}, SAME_SITE, 401, None),
        ({"token": VIEWER_TOKEN, "next": "//evil.example/x"}, SAME_SITE, 303, "/incidents"),
        ({"token": VIEWER_TOKEN, "next": "https://evil.example/x"}, SAME_SITE, 303, "/incidents"),
        ({"token": VIEWER_TOKEN, "next": "/\\evil.example"}, SAME_SITE, 303, "/incidents"),
        ({"token": ADMIN_TOKEN, "next": "/incidents"}, {"Sec-Fetch-Site": "cross-site"}, 403, None),
        ({"token": ADMIN_TOKEN}, {**SAME_SITE, "Origin": "http://panorama.lan:8000"}, 400, None),
        ({"token": ADMIN_TOKEN}, {**SAME_SITE, "Origin": "http://127.0.0.1:8000"}, 303, "/incidents"),
        ({"token": ADMIN_TOKEN}, {**SAME_SITE, "Origin": "https://panorama.example.com"}, 303, "/incidents"),
    ],
    ids=[
        "wrong-token",
        "scheme-relative",
        "absolute",
        "backslash",
        "cross-site",
        "plain-http",
        "loopback",
        "https",
    ],
)
async def test_the_login_form_refuses_wrong_tokens_foreign_redirects_and_other_sites(
    client: httpx.AsyncClient,
    form: dict[str, str],
    headers: dict[str, str],
    status: int,
    location: str | None,
) -> None:
    answer = await client.post("/login", data=form, headers=headers)
    assert answer.status_code == status, answer.text
    if location is not None:
        assert answer.headers["location"] == location
    else:
        assert auth.SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    if status == 401:
        assert "令牌无效" in answer.text
    if status == 400:
        assert "登录需要 HTTPS" in answer.text


async def test_a_session_ends_when_its_token_is_rotated_in_the_configuration(app_factory: AppFactory) -> None:
    async with app_factory() as (app, client):
        signed = await client.post("/login", data={"token": VIEWER_TOKEN}, headers=SAME_SITE)
        session = {"Cookie": f"{auth.SESSION_COOKIE}={signed.cookies[auth.SESSION_COOKIE]}"}
        before = await client.get("/incidents", headers=session)
        context = app.state.context
        rotated = settings_for(
            "sqlite+aiosqlite:///unused.db",
            auth={
                "tokens": [{"name": "viewer-test", "role": "viewer", "token": "rotated-viewer-token-0001"}]
            },
        )
        context.apply(rotated)
        after = await client.get("/incidents", headers=session)
    assert before.status_code == 200
    assert after.status_code == 401
    assert "Max-Age=0" in after.headers["set-cookie"]  # the dead session is cleared


async def test_a_link_from_another_site_is_asked_again_from_here_where_the_session_cookie_is_sent(
    client: httpx.AsyncClient,
) -> None:
    navigation = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    first = await client.get("/incidents/1", headers=navigation)
    again = await client.get(
        "/incidents/1", headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}
    )
    assert first.status_code == 200
    assert '<meta http-equiv="refresh" content="0">' in first.text
    assert 'id="token"' not in first.text  # not the login form yet: the session may come with the retry
    assert again.status_code == 401
    assert 'id="token"' in again.text


async def test_link_tokens_stay_out_of_traces_and_access_logs(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from app import db, migrations
    from app.main import create_app

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    view, ack = "aW5jaWRlbnQ6MQ.1797155710.SECRETviewSIGNATURE", "MQ.1797155710.SECRETackSIGNATURE"
    async with app_factory() as (app, _client):
        settings = app.state.context.settings
    engine = db.create_engine(settings.database)
    await migrations.upgrade(engine)
    await engine.dispose()
    traced = create_app(settings, tracer_provider=provider)
    async with traced.router.lifespan_context(traced):
        transport = httpx.ASGITransport(app=traced)
        async with httpx.AsyncClient(transport=transport, base_url="http://panorama.test") as client:
            with caplog.at_level("INFO", logger="panorama.access"):
                await client.get(f"/incidents/1?view={view}&lang=en")
                await client.get(f"/ack/{ack}")
                await client.get("/screen?lang=en&token=SECRETkioskTOKEN")  # the wall's kiosk URL
    attributes = [str(v) for span in exported.get_finished_spans() for v in (span.attributes or {}).values()]
    assert any("/incidents/1" in value for value in attributes)
    assert any("/screen" in value for value in attributes)
    assert not [value for value in attributes if "SECRET" in value]
    access = "\n".join(r.getMessage() for r in caplog.records if r.name == "panorama.access")
    assert "SECRET" not in access  # (the test's own HTTP client logs its URLs: not Panorama's log)
    assert "/ack/{token}" in access
    assert "GET /screen 200" in access


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def test_an_unknown_path_is_a_404_page_for_a_browser_and_the_same_json_for_api_clients(
    app_factory: AppFactory,
) -> None:
    async with app_factory() as (_app, client):
        zh = await client.get("/no/such/page?view=secret-view-link", headers={"accept": BROWSER_ACCEPT})
        en = await client.get("/no/such/page?lang=en", headers={"accept": BROWSER_ACCEPT})
        reader = {"accept": BROWSER_ACCEPT, **bearer(VIEWER_TOKEN)}
        signed_in = await client.get("/no/such/page", headers=reader)
        api = [
            await client.get("/no/such/page", headers={"accept": accept})
            for accept in ("application/json", "*/*", "application/json, text/html")
        ]
        bare = await client.get("/api/v1/nothing-here", headers={"accept": ""})
    assert [zh.status_code, en.status_code] == [404, 404]
    assert zh.headers["content-type"].startswith("text/html")
    assert zh.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert '<html lang="zh-CN"' in zh.text
    assert "找不到" in zh.text
    assert "这个地址没有页面。" in zh.text
    assert 'href="/incidents"' in zh.text
    assert "返回事件列表" in zh.text
    assert "secret-view-link" not in zh.text  # the query (a view link, say) is not echoed
    # who reads it is not asked: a signed-in reader is not offered to sign in, nor anyone to sign out
    for page in (zh, en, signed_in):
        assert "/login" not in page.text
        assert "/logout" not in page.text
    assert signed_in.status_code == 404
    assert "这个地址没有页面。" in signed_in.text
    assert '<html lang="en"' in en.text
    assert "There is no page at this address." in en.text
    assert "Back to the incidents" in en.text
    for answer in (*api, bare):
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {"error": "not_found", "message": "Not Found"}
