"""The baseline: about the smallest useful aiohttp reverse proxy.

One ClientSession, hop-by-hop headers dropped, bodies read whole. No policy, no
forwarding headers, no streaming. ``bench/proxy_bench.py`` compares the gateway's
pass-through with this, measured in the same run.

    python bench/minimal_proxy.py --port 8081 --upstream http://127.0.0.1:3000
"""

import argparse

import aiohttp
from aiohttp import web

HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


SESSION = web.AppKey("session", aiohttp.ClientSession)


def filtered(headers):
    return [(k, v) for k, v in headers.items() if k.lower() not in HOP]


def make_app(upstream: str) -> web.Application:
    async def start(app):
        app[SESSION] = aiohttp.ClientSession(auto_decompress=False)
        yield
        await app[SESSION].close()

    async def proxy(request: web.Request) -> web.Response:
        body = await request.read()
        async with request.app[SESSION].request(
            request.method,
            upstream + request.path_qs,
            headers=filtered(request.headers),
            data=body or None,
            allow_redirects=False,
        ) as resp:
            return web.Response(
                status=resp.status, headers=filtered(resp.headers), body=await resp.read()
            )

    app = web.Application()
    app.cleanup_ctx.append(start)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:3000")
    parser.add_argument("--uvloop", action="store_true", help="serve on uvloop")
    args = parser.parse_args()
    loop = None
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(
        make_app(args.upstream.rstrip("/")),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        loop=loop,
    )
