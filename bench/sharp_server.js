// A thumbnail server on sharp (libvips), as a user would write one with its
// defaults, for bench/compare_sharp.py: POST /images stores the body and
// answers its id; GET /images/ID?w=N&fmt=webp|jpeg|avif|png[&q=Q] answers
// the image turned upright by its EXIF orientation and fitted inside NxN
// without enlarging, in the format asked at quality Q (else sharp's
// default); every other setting is sharp's default.
//   node bench/sharp_server.js PORT   (npm install sharp, in bench/node)
"use strict";
const http = require("http");
const crypto = require("crypto");
const sharp = require("sharp");

const images = new Map();
const port = Number(process.argv[2] || 8099);

http
  .createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (req.method === "POST" && url.pathname === "/images") {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const id = crypto.createHash("sha256").update(body).digest("hex");
        images.set(id, body);
        res.writeHead(201, { "content-type": "application/json" });
        res.end(JSON.stringify({ id }));
      });
      return;
    }
    const m = url.pathname.match(/^\/images\/([0-9a-f]+)$/);
    const file = m && images.get(m[1]);
    if (req.method !== "GET" || !file) {
      res.writeHead(404);
      res.end();
      return;
    }
    const w = Number(url.searchParams.get("w") || 256);
    const fmt = url.searchParams.get("fmt") || "webp";
    const q = url.searchParams.get("q");
    const options = q ? { quality: Number(q) } : {};
    sharp(file)
      .rotate()
      .resize(w, w, { fit: "inside", withoutEnlargement: true })
      .toFormat(fmt, options)
      .toBuffer()
      .then((out) => {
        res.writeHead(200, { "content-type": `image/${fmt}` });
        res.end(out);
      })
      .catch((e) => {
        res.writeHead(400);
        res.end(String(e));
      });
  })
  .listen(port, "127.0.0.1");
