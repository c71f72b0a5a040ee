"""The floor for ``bench/alert_storm.py``: a bare FastAPI app whose webhook only parses the JSON.

``POST /api/v1/alerts/alertmanager`` reads the body, ``json.loads`` it and answers 200 with a
small JSON object; nothing is validated or stored. Served by uvicorn exactly as ``panorama
serve`` serves Panorama (same loop and HTTP implementation, no access log), so the two differ
only in what the endpoint does.

Any other POST answers ``{"errcode": 0, "code": 0}``, which is what DingTalk, WeCom and Feishu
robots answer on success: the same process doubles as the channels' sink when the storm runs
with Panorama's delivery worker on.

Run: .venv/bin/python bench/alert_bare.py --port 8123   (127.0.0.1 only)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fastapi import FastAPI, Request

WEBHOOK = "/api/v1/alerts/alertmanager"


def create_app() -> FastAPI:
    app = FastAPI(title="bare webhook", openapi_url=None, docs_url=None, redoc_url=None)
    received = {"sink": 0}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(WEBHOOK)
    async def webhook(request: Request) -> dict[str, Any]:
        data = json.loads(await request.body())
        return {"status": "parsed", "alerts": len(data.get("alerts", ()))}

    @app.get("/sink")
    async def sink_count() -> dict[str, int]:
        return received

    @app.post("/{path:path}")
    async def sink(request: Request) -> dict[str, Any]:
        await request.body()
        received["sink"] += 1
        return {"errcode": 0, "errmsg": "ok", "code": 0, "msg": "success"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
