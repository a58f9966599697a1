// The bypass matrix's Express 4 application: default settings (routing is
// case-insensitive and ignores a trailing slash), with the method-override
// middleware as many Express applications use it (X-HTTP-Method-Override on
// POST). usage: node app.js PORT
const express = require("express");
const methodOverride = require("method-override");

const OVERRIDES = ["x-original-url", "x-rewrite-url", "x-http-method-override", "x-http-method", "x-method-override"];
const app = express();
// method-override replaces req.method; keep what came in for the report
app.use((req, res, next) => {
  req.overridesReceived = OVERRIDES.filter((h) => h in req.headers).join(",");
  next();
});
app.use(methodOverride());

const answer = (handler) => (req, res) =>
  res.json({ backend: "express", handler, path: req.path, method: req.method, overrides: req.overridesReceived });

app.all("/admin/", answer("admin"));
app.all("/admin/*", answer("admin"));
app.get("/healthz", answer("health"));
app.get("/public", answer("public"));
app.get("/public/*", answer("public"));
app.all("*", answer("app"));

const port = Number(process.argv[2]);
app.listen(port, "127.0.0.1", () => console.log(`listening on 127.0.0.1:${port}`));
