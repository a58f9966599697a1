// The registration page: the key is made here (WebCrypto, ECDSA P-256,
// extractable only so that it can go into the PKCS#12 file made here), the
// CSR is built here, and it is sent over EST like any client's:
// simpleenroll with a one-time token as the HTTP Basic password, or without
// one into the approval queue (202 + Retry-After: ask again with the same
// CSR). Nothing but the CSR leaves the page.
import { csrFor, certificatesOf, useWebCrypto } from "./certs.js";
import { pkcs12 } from "./pkcs12.js";

const $ = (id) => document.getElementById(id);
const label = new URLSearchParams(location.search).get("label");
const labelQuery = label ? `?label=${encodeURIComponent(label)}` : "";
const est = (op) => `/.well-known/est/${label ? `${encodeURIComponent(label)}/` : ""}${op}`;
const MIN_PASSWORD = 8;
// Retry-After is obeyed within these bounds (seconds)
const POLL_MIN = 1;
const POLL_MAX = 600;

function show(id, on = true) {
  $(id).hidden = !on;
}

function base64(buffer) {
  let s = "";
  for (const b of new Uint8Array(buffer)) s += String.fromCharCode(b);
  return btoa(s);
}

function pem(kind, der) {
  const lines = base64(der).match(/.{1,64}/g).join("\n");
  return `-----BEGIN ${kind}-----\n${lines}\n-----END ${kind}-----\n`;
}

function unsupported(text) {
  $("unsupported").textContent = text;
  show("unsupported");
  show("request", false);
}

function formError(text) {
  $("form-error").textContent = text;
  show("form-error", !!text);
}

function progress(title, text) {
  show("progress");
  $("progress-title").textContent = title;
  $("progress-text").textContent = text;
}

function refuse(text) {
  show("progress", false);
  $("refused-reason").textContent = text;
  show("refused");
}

const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));

// The names the invitation allows, asked without using it up.
async function tokenNames(token) {
  const reply = await fetch(`/register/token${labelQuery}`, {
    method: "POST",
    headers: { Authorization: `Basic ${btoa(`:${token}`)}` },
  });
  const body = await reply.json();
  if (!reply.ok) throw new Error(`This invitation code does not work: ${body.error}`);
  return body;
}

// simpleenroll until the CA answers: the certificate, or a refusal. While
// it waits, `waiting(id)` keeps the request for a later visit.
async function enroll(csrDer, token, waiting) {
  const headers = { "Content-Type": "application/pkcs10" };
  if (token) headers.Authorization = `Basic ${btoa(`:${token}`)}`;
  for (;;) {
    const reply = await fetch(est("simpleenroll"), { method: "POST", headers, body: base64(csrDer) });
    const text = await reply.text();
    if (reply.status === 200) return certificatesOf(text);
    if (reply.status !== 202) {
      // an approver's reason comes in its own header (percent-encoded UTF-8), not in a sentence
      const rejection = reply.headers.get("certgate-rejection");
      if (rejection !== null) throw new Refused(`An approver rejected it: ${decodeURIComponent(rejection)}`);
      throw new Refused(text.trim() || `The server answered ${reply.status}.`);
    }
    const wait = Math.min(POLL_MAX, Math.max(POLL_MIN, parseInt(reply.headers.get("Retry-After") || "60", 10) || 60));
    const id = reply.headers.get("certgate-request") || "";
    await waiting(id);
    progress(
      "Waiting for approval",
      `Your request${id ? ` (${id})` : ""} waits for an approver. This page asks again every ${wait} s and gets your certificate as soon as it is approved.`,
    );
    show("progress-keep");
    await sleep(wait);
  }
}

class Refused extends Error {}

// A request waiting for approval is kept in this browser (IndexedDB: the key
// pair as CryptoKey objects, stored as they are and never sent, and the
// CSR), so that closing the page loses nothing; the file's password is
// asked again when the person comes back.
const STORE = "waiting";
const KEPT_AS = label || "";

function database() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("certgate-registration", 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
}

async function kept(operation, ...args) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const request = db.transaction(STORE, operation === "get" ? "readonly" : "readwrite").objectStore(STORE)[operation](...args);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function download(id, name, type, bytes) {
  const link = $(id);
  link.href = URL.createObjectURL(new Blob([bytes], { type }));
  link.download = name;
}

// The person's name as a file name: letters of any script kept (Zoë-Example),
// whatever a file system or a shell would stumble on made a dash.
function fileName(text) {
  const kept = (text || "").normalize("NFC").replace(/[^\p{L}\p{M}\p{N}._-]+/gu, "-").replace(/^[-.]+|-+$/g, "");
  return Array.from(kept).slice(0, 60).join("") || "certificate";
}

// The request kept from an earlier visit, when the page resumes it.
let resuming = null;

async function submit(event) {
  event.preventDefault();
  formError("");
  const way = document.querySelector('input[name="way"]:checked')?.value;
  const password = $("password").value;
  if (password.length < MIN_PASSWORD) return formError(`The password needs at least ${MIN_PASSWORD} characters.`);
  if (password !== $("password2").value) return formError("The two passwords differ.");
  if (resuming) return obtain(resuming, password);
  if (!way) return formError("Choose how you join.");
  let names;
  const token = way === "token" ? $("token").value.trim() : null;
  if (way === "token") {
    if (!token) return formError("Type your invitation code.");
    try {
      names = await tokenNames(token);
    } catch (e) {
      return formError(e.message);
    }
  } else {
    const cn = $("name").value.trim();
    const email = $("email").value.trim();
    if (!cn) return formError("Type your name.");
    if (email && !$("email").checkValidity()) return formError("That e-mail address is not valid.");
    names = { cn, dns: [], uris: [], ips: [], emails: email ? [email] : [] };
  }
  $("submit").disabled = true;
  show("request", false);
  progress("Making your key", "Your browser is making your private key. It stays on this page.");
  let keys, csr;
  try {
    keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
    csr = await csrFor(names, keys);
  } catch (e) {
    return refuse(`Your browser could not make a key: ${e.message || e}`);
  }
  await obtain({ keys, csr, names, token }, password);
}

// A request kept from an earlier visit: only the password is asked again.
async function resume() {
  const waiting = await kept("get", KEPT_AS).catch(() => undefined);
  if (!waiting) return;
  resuming = waiting;
  for (const id of ["ways", "token-fields", "queue-fields"]) show(id, false);
  const when = new Date(waiting.at).toLocaleString();
  $("resume-text").textContent =
    `Your request${waiting.id ? ` (${waiting.id})` : ""} for ${waiting.names.cn || "your names"}, sent ${when}, waits for an approver. ` +
    "Choose the password for your file again: this page then waits for the answer.";
  show("resume");
  $("submit").textContent = "Keep waiting for my certificate";
  $("start-over").addEventListener("click", async () => {
    await kept("delete", KEPT_AS).catch(() => {});
    location.reload();
  });
}

// From the CSR to the downloads: ask (and wait), then make the file.
async function obtain(request, password) {
  $("submit").disabled = true;
  show("request", false);
  const keep = (id) => kept("put", { ...request, token: null, id, at: Date.now() }, KEPT_AS).catch(() => {});
  try {
    progress("Asking for your certificate", "Your request (your names and public key, never the private key) goes to the CA.");
    const issued = await enroll(request.csr, request.token, keep);
    const certificate = issued[0];
    const names = request.names;
    progress("Making your file", "Your certificate arrived; your browser is putting it and your key into a file.");
    const cacerts = certificatesOf(await (await fetch(est("cacerts"))).text());
    const chain = cacerts.map((c) => c.der);
    const friendlyName = names.cn || certificate.subject;
    const p12 = await pkcs12({
      pkcs8: await crypto.subtle.exportKey("pkcs8", request.keys.privateKey),
      certificate: certificate.der,
      chain,
      password,
      friendlyName,
      legacy: $("legacy").checked,
    });
    download("download-p12", `${fileName(names.cn)}.p12`, "application/x-pkcs12", p12);
    // the chain's root, by its names
    const root = cacerts.find((c) => c.selfIssued) || cacerts[cacerts.length - 1];
    download("download-ca", "ca.pem", "application/x-pem-file", pem("CERTIFICATE", root.der));
    $("issued-to").textContent = certificate.subject;
    $("valid-until").textContent = certificate.notAfter.toISOString().slice(0, 10);
    await kept("delete", KEPT_AS).catch(() => {});
    show("progress", false);
    show("done");
  } catch (e) {
    if (e instanceof Refused) {
      await kept("delete", KEPT_AS).catch(() => {});
      refuse(e.message);
    } else {
      refuse(`Something failed on this page: ${e.message || e}`);
    }
  }
}

function chooseWay() {
  const way = document.querySelector('input[name="way"]:checked')?.value;
  show("token-fields", way === "token");
  show("queue-fields", way === "queue");
}

async function start() {
  // WebCrypto exists only in a secure context (HTTPS, or localhost)
  if (!window.isSecureContext || !globalThis.crypto?.subtle) {
    return unsupported(
      "This page cannot make your key here: your browser offers its cryptography (WebCrypto) only on a secure connection. " +
        "Open this page with https:// at the address your administrator gave you. Nothing was sent.",
    );
  }
  useWebCrypto();
  let settings;
  try {
    const reply = await fetch(`/register/settings${labelQuery}`);
    settings = await reply.json();
    if (!reply.ok) return unsupported(settings.error);
  } catch (e) {
    return unsupported(`The server cannot be reached: ${e.message}`);
  }
  show("choice-token", settings.token);
  show("choice-queue", settings.queue);
  if (!settings.token && !settings.queue) {
    return unsupported("This server gives certificates to people only with the command line: ask your administrator.");
  }
  $(settings.token ? "way-token" : "way-queue").checked = true;
  for (const radio of document.querySelectorAll('input[name="way"]')) radio.addEventListener("change", chooseWay);
  chooseWay();
  await resume();
  $("request").addEventListener("submit", submit);
  show("request");
}

start();
