"""The floor for the report benchmarks: a bare FastAPI app serving fixed bytes from memory.

Started with ``--body PATH=FILE`` pairs, it answers ``GET`` and ``POST`` on each ``PATH`` with the
bytes of ``FILE`` (read once at start) as ``application/json``; nothing is parsed, checked or
computed. Served by uvicorn exactly as ``panorama serve`` serves Panorama (same loop and HTTP
implementation, no access log), so the two differ only in what the endpoint does before the
bytes leave.

Run: .venv/bin/python bench/report_bare.py --port 8124 --body /a=answer.json   (127.0.0.1 only)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fastapi import FastAPI, Request, Response


def create_app(bodies: dict[str, bytes]) -> FastAPI:
    app = FastAPI(title="bare report", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def body(path: str, request: Request) -> Response:
        await request.body()
        return Response(bodies["/" + path], media_type="application/json")

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", action="append", default=[], help="PATH=FILE, repeated")
    args = parser.parse_args()
    bodies = {}
    for pair in args.body:
        path, _, file = pair.partition("=")
        bodies[path] = Path(file).read_bytes()
    uvicorn.run(
        create_app(bodies),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )


if __name__ == "__main__":
    main()
