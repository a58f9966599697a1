// Drives Debian's Chromium (puppeteer-core, no browser download) for the
// registration tests in tests/tests/system/registration.rs. One job per run,
// given as JSON in argv[2]; the result is one JSON line on stdout.
//
// Every job: { action, url (https://host:port), home (HOME, whose
// .pki/nssdb is the browser's certificate store), profile (the user data
// directory, with Default/Preferences written by the test), shots (a
// directory for screenshots, or null), prefix (their file-name prefix) }.
// Actions:
//   register: { way: "token"|"queue", token, name, email, password, legacy,
//               downloads, label, waitingFile } -> { outcome, p12, ca, issuedTo, reason, posted }
//               (stopWhenWaiting: return once the page waits for approval)
//   resume:   { password, downloads } -> as register, with resumeText
//   open:     { path, shot } -> { status, text }
//   approve:  { id, reject (a reason, or null) } -> { status, text }
//   forge:    { fields } -> { status, text }: the approver's browser opens a
//             page on another origin that posts the approvals form
//   insecure: { ca } -> { status, text }: the registration page from a plain
//             HTTP origin that is not loopback, where WebCrypto is missing
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import puppeteer from "puppeteer-core";

const job = JSON.parse(process.argv[2]);
const TIMEOUT = 120_000;

// Firefox ESR (Debian's, over WebDriver BiDi): its certificates are in the
// profile's own NSS store; it picks a client certificate by itself with
// security.default_personal_cert, and saves downloads where its prefs say.
async function launchFirefox() {
  return puppeteer.launch({
    browser: "firefox",
    executablePath: "/usr/bin/firefox-esr",
    headless: true,
    userDataDir: job.profile,
    protocolTimeout: TIMEOUT,
    extraPrefsFirefox: {
      "security.default_personal_cert": "Select Automatically",
      "browser.download.folderList": 2,
      "browser.download.dir": job.downloads || job.profile,
      "browser.download.useDownloadDir": true,
      "browser.download.always_ask_before_handling_new_types": false,
      "browser.helperApps.neverAsk.saveToDisk": "application/x-pkcs12,application/x-pem-file",
      "network.dns.localDomains": "register.test",
    },
  });
}

async function launch() {
  if (job.browser === "firefox") return launchFirefox();
  return puppeteer.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    userDataDir: job.profile,
    env: { ...process.env, HOME: job.home },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // a name that is not loopback, for the insecure job
      "--host-resolver-rules=MAP register.test 127.0.0.1",
    ],
    protocolTimeout: TIMEOUT,
  });
}

async function shot(page, name, options = {}) {
  if (!job.shots) return;
  mkdirSync(job.shots, { recursive: true });
  await page.screenshot({ path: path.join(job.shots, `${job.prefix || ""}${name}.png`), fullPage: true, ...options });
}

const visible = (selector) => `${selector}:not([hidden])`;

async function register(page) {
  const posted = [];
  if (job.browser === "firefox") {
    // WebDriver BiDi does not give request bodies: the page's own fetch is
    // wrapped to keep a copy of each body it sends
    await page.evaluateOnNewDocument(() => {
      const original = window.fetch;
      window.__posted = [];
      window.fetch = (input, init = {}) => {
        if ((init.method || "GET") !== "GET") {
          window.__posted.push({ url: String(input), method: init.method, body: typeof init.body === "string" ? init.body : "" });
        }
        return original(input, init);
      };
    });
  } else {
    page.on("request", (r) => {
      if (r.method() !== "GET") posted.push({ url: r.url(), method: r.method(), body: r.postData() || "" });
    });
  }
  const sent = async () => (job.browser === "firefox" ? page.evaluate(() => window.__posted) : posted);
  const query = job.label ? `?label=${encodeURIComponent(job.label)}` : "";
  await page.goto(`${job.url}/register/${query}`, { waitUntil: "networkidle0" });
  await page.waitForSelector(visible("#request"));
  await shot(page, "1-form");
  await page.click(job.way === "token" ? "#way-token" : "#way-queue");
  if (job.way === "token") {
    await page.type("#token", job.token);
  } else {
    await page.type("#name", job.name);
    if (job.email) await page.type("#email", job.email);
  }
  await page.type("#password", job.password);
  await page.type("#password2", job.password);
  if (job.legacy) await page.click("#legacy");
  await shot(page, "2-filled");
  await page.click("#submit");
  if (job.waitingFile) {
    await page.waitForFunction(() => document.querySelector("#progress-title")?.textContent === "Waiting for approval", { timeout: TIMEOUT });
    await shot(page, "3-waiting");
    writeFileSync(job.waitingFile, await page.$eval("#progress-text", (e) => e.textContent));
    // the person closes the page; `resume` comes back to it
    if (job.stopWhenWaiting) return { outcome: "waiting", posted: await sent() };
  }
  return outcome(page, sent);
}

// The person comes back to the page of a request that waits: it offers to
// keep waiting; a new password, and the page gets the certificate.
async function resumed(page) {
  await page.goto(`${job.url}/register/`, { waitUntil: "networkidle0" });
  await page.waitForSelector(visible("#resume"));
  const resumeText = await page.$eval("#resume-text", (e) => e.textContent);
  await page.type("#password", job.password);
  await page.type("#password2", job.password);
  await shot(page, "resume");
  await page.click("#submit");
  return { ...(await outcome(page, async () => [])), resumeText };
}

// What the page came to: a form error, a refusal, or the downloads.
async function outcome(page, sent) {
  await page.waitForSelector(`${visible("#done")}, ${visible("#refused")}, ${visible("#form-error")}`, { timeout: TIMEOUT });
  if (await page.$(visible("#form-error"))) {
    await shot(page, "4-form-error");
    return { outcome: "form-error", reason: await page.$eval("#form-error", (e) => e.textContent), posted: await sent() };
  }
  if (await page.$(visible("#refused"))) {
    await shot(page, "4-refused");
    return { outcome: "refused", reason: await page.$eval("#refused-reason", (e) => e.textContent), posted: await sent() };
  }
  await shot(page, "4-done");
  mkdirSync(job.downloads, { recursive: true });
  const posted = await sent();
  if (job.browser !== "firefox") {
    const cdp = await page.createCDPSession();
    await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: job.downloads });
  }
  await page.click("#download-p12");
  await page.click("#download-ca");
  const deadline = Date.now() + 30_000;
  let files = [];
  while (Date.now() < deadline) {
    files = readdirSync(job.downloads).filter((f) => !f.endsWith(".crdownload"));
    if (files.some((f) => f.endsWith(".p12")) && files.includes("ca.pem")) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    outcome: "done",
    p12: files.find((f) => f.endsWith(".p12")) || null,
    ca: files.includes("ca.pem") ? "ca.pem" : null,
    issuedTo: await page.$eval("#issued-to", (e) => e.textContent),
    posted,
  };
}

async function open(page) {
  if (job.phone) await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 1, isMobile: true });
  const reply = await page.goto(`${job.url}${job.path}`, { waitUntil: "networkidle0" });
  if (job.shot) await shot(page, job.shot);
  return { status: reply.status(), text: await page.evaluate(() => document.body.innerText) };
}

async function approve(page) {
  await page.goto(`${job.url}/approvals/`, { waitUntil: "networkidle0" });
  await shot(page, "1-list");
  const section = `#request-${job.id}`;
  await page.waitForSelector(section);
  let reply;
  if (job.reject) {
    await page.type(`#reason-${job.id}`, job.reject);
    await shot(page, "2-reason");
    [reply] = await Promise.all([page.waitForNavigation(), page.click(`${section} button.danger`)]);
  } else {
    [reply] = await Promise.all([page.waitForNavigation(), page.click(`${section} button.approve`)]);
  }
  await shot(page, job.reject ? "3-rejected" : "2-approved");
  return { status: reply.status(), text: await page.evaluate(() => document.body.innerText) };
}

// A page on another origin (plain HTTP on loopback) whose form posts to the
// approvals page as soon as it loads: what a CSRF attack does.
async function forge(page) {
  const inputs = Object.entries(job.fields)
    .map(([k, v]) => `<input type="hidden" name="${k}" value="${String(v).replace(/"/g, "&quot;")}">`)
    .join("");
  const html = `<!doctype html><form id="f" method="post" action="${job.url}/approvals/approve">${inputs}</form><script>document.getElementById("f").submit()</script>`;
  const server = http.createServer((_, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(html);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    const [reply] = await Promise.all([
      page.waitForNavigation({ waitUntil: "networkidle0", timeout: TIMEOUT }),
      page.goto(`http://127.0.0.1:${server.address().port}/`),
    ]);
    return { status: reply.status(), text: await page.evaluate(() => document.body.innerText) };
  } finally {
    server.close();
  }
}

// A plain-HTTP proxy to the server: http://register.test:PORT is not a
// secure context (only https and loopback names are), so the page finds no
// WebCrypto there, as it would on any http:// address.
async function insecure(page) {
  const target = new URL(job.url);
  const ca = readFileSync(job.ca);
  const server = http.createServer((req, res) => {
    const upstream = https.request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: { ...req.headers, host: target.host }, ca, servername: "localhost" },
      (reply) => {
        res.writeHead(reply.statusCode, reply.headers);
        reply.pipe(res);
      },
    );
    upstream.on("error", (e) => res.destroy(e));
    req.pipe(upstream);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    const reply = await page.goto(`http://register.test:${server.address().port}/register/`, { waitUntil: "networkidle0" });
    await page.waitForSelector(visible("#unsupported"));
    await shot(page, "insecure");
    return {
      status: reply.status(),
      secure: await page.evaluate(() => window.isSecureContext),
      text: await page.evaluate(() => document.body.innerText),
      formShown: !!(await page.$(visible("#request"))),
    };
  } finally {
    server.close();
  }
}

const browser = await launch();
let result;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 900, height: 700, deviceScaleFactor: 1 });
  page.setDefaultTimeout(TIMEOUT);
  const actions = { register, resume: resumed, open, approve, forge, insecure };
  result = await actions[job.action](page);
} catch (e) {
  result = { error: String(e && e.stack ? e.stack : e) };
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
