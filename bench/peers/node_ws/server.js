// The node `ws` peer of the fan-out bench (bench/fanout_peers.py): the same protocol as
// bench/peers/ws_broadcast.py, so one driver (bench/wsdriver.py, "plain") measures both.
//   WebSocket on any path: the client is counted as connected; what it sends is ignored.
//   GET /broadcast?size=N   one text frame of N bytes, starting {"ts":<epoch s>, to every
//                           open client (ws's own broadcast idiom: one Buffer, sent to each)
//   GET /healthz            200 once listening
// Usage: node server.js PORT   (binds 127.0.0.1 only)
"use strict";

const http = require("http");
const { WebSocketServer, WebSocket } = require("ws");

const port = Number(process.argv[2]);

function frame(size) {
  const head = `{"ts":${Date.now() / 1000},"type":"notification.created","pad":"`;
  return Buffer.from(head + "x".repeat(Math.max(0, size - head.length - 2)) + '"}');
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  if (url.pathname === "/healthz") {
    res.end("ok\n");
    return;
  }
  if (url.pathname === "/broadcast") {
    const data = frame(Number(url.searchParams.get("size") || 600));
    let sent = 0;
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: false });
        sent += 1;
      }
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ sent }) + "\n");
    return;
  }
  res.statusCode = 404;
  res.end();
});

// No permessage-deflate (ws's server default too): every server in the bench sends plain frames.
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on("connection", (ws) => {
  ws.on("error", () => {});
});

server.listen(port, "127.0.0.1");
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => process.exit(0));
}
