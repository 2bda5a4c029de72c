"""The calibration ceiling: a bare Starlette JSON endpoint under uvicorn, one process,
the same event loop and HTTP parser Clarion's ``serve`` gets (uvloop, httptools)."""

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request):
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/hello", hello, methods=["GET", "POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
