// Builds the console into dist/: index.html, app.js and app.css (the three
// files the server embeds), each with a gzip copy the server sends to
// browsers that accept it. The output depends only on the sources and the
// locked packages, so CI can rebuild it and compare with what is committed.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { constants, gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const out = "dist";
rmSync(out, { recursive: true, force: true });
mkdirSync(out);

const common = {
  bundle: true,
  minify: true,
  legalComments: "none",
  charset: "utf8",
  target: "es2022",
  logLevel: "warning",
};
await esbuild.build({
  ...common,
  entryPoints: ["src/main.tsx"],
  outfile: `${out}/app.js`,
  format: "esm",
  jsx: "automatic",
  jsxImportSource: "preact",
  define: { "process.env.NODE_ENV": '"production"' },
});
await esbuild.build({ ...common, entryPoints: ["src/app.css"], outfile: `${out}/app.css` });

// index.html names each asset with its hash, so a browser never runs a
// stale app.js against a new page.
const version = (file) =>
  createHash("sha256").update(readFileSync(`${out}/${file}`)).digest("hex").slice(0, 12);
const html = readFileSync("src/index.html", "utf8")
  .replace("app.js", `app.js?v=${version("app.js")}`)
  .replace("app.css", `app.css?v=${version("app.css")}`);
writeFileSync(`${out}/index.html`, html);

for (const file of ["index.html", "app.js", "app.css"]) {
  const body = readFileSync(`${out}/${file}`);
  writeFileSync(`${out}/${file}.gz`, gzipSync(body, { level: constants.Z_BEST_COMPRESSION }));
  console.log(`${file}: ${body.length} bytes, ${readFileSync(`${out}/${file}.gz`).length} gzipped`);
}
