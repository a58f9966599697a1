// The X.509 and CMS the registration page writes and reads, over pkijs
// (one ASN.1 stack for the CSR, the EST answers and the PKCS#12 file):
// - the CSR (PKCS#10): the subject built from its value (no DN string
//   parsing: a name may hold commas, quotes or a leading #), the names as
//   a subjectAltName extension request, signed with the WebCrypto key;
// - the certificates of a certs-only PKCS#7, as EST answers (base64 of DER).
import { pkijs, asn1js } from "./vendor.js";

const OID = {
  commonName: "2.5.4.3",
  extensionRequest: "1.2.840.113549.1.9.14",
  subjectAltName: "2.5.29.17",
};

// The attribute types a person's certificate may name, as RFC 4514 spells them.
const SHORT = {
  "2.5.4.3": "CN",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "0.9.2342.19200300.100.1.25": "DC",
  "0.9.2342.19200300.100.1.1": "UID",
};

/** pkijs on this page's WebCrypto, once. */
export function useWebCrypto() {
  pkijs.setEngine("webcrypto", new pkijs.CryptoEngine({ name: "webcrypto", crypto }));
}

function ipBytes(text) {
  if (text.includes(":")) {
    // IPv6, with at most one "::"
    const [head, tail] = text.split("::");
    const words = (s) => (s ? s.split(":").map((w) => parseInt(w, 16)) : []);
    const h = words(head);
    const t = tail === undefined ? [] : words(tail);
    const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
    return new Uint8Array(all.flatMap((w) => [w >> 8, w & 0xff])).buffer;
  }
  return new Uint8Array(text.split(".").map(Number)).buffer;
}

/**
 * A CSR (DER) for `names` ({cn, dns, emails, uris, ips}), signed by `keys`.
 * @returns {Promise<ArrayBuffer>}
 */
export async function csrFor(names, keys) {
  const csr = new pkijs.CertificationRequest();
  csr.version = 0;
  if (names.cn) {
    csr.subject.typesAndValues.push(
      new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: names.cn }) }),
    );
  }
  const general = [
    ...names.dns.map((value) => new pkijs.GeneralName({ type: 2, value })),
    ...names.emails.map((value) => new pkijs.GeneralName({ type: 1, value })),
    ...names.uris.map((value) => new pkijs.GeneralName({ type: 6, value })),
    ...names.ips.map((value) => new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipBytes(value) }) })),
  ];
  // PKCS#10's attributes are not optional: an empty set without names
  csr.attributes = [];
  if (general.length) {
    const san = new pkijs.Extension({
      extnID: OID.subjectAltName,
      critical: false,
      extnValue: new pkijs.GeneralNames({ names: general }).toSchema().toBER(false),
    });
    csr.attributes = [
      new pkijs.Attribute({ type: OID.extensionRequest, values: [new pkijs.Extensions({ extensions: [san] }).toSchema()] }),
    ];
  }
  await csr.subjectPublicKeyInfo.importKey(keys.publicKey);
  await csr.sign(keys.privateKey, "SHA-256");
  return csr.toSchema().toBER(false);
}

function bytesOf(base64Text) {
  const binary = atob(base64Text.replace(/\s+/g, ""));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
}

function sameBytes(a, b) {
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

// A name as people read it: RFC 4514 order, escaping only what would be ambiguous.
function nameText(name) {
  const escape = (v) => v.replace(/[,+"\\<>;]/g, (c) => `\\${c}`).replace(/^[ #]/, (c) => `\\${c}`).replace(/ $/, "\\ ");
  return name.typesAndValues
    .map((tv) => `${SHORT[tv.type] || tv.type}=${escape(String(tv.value.valueBlock.value))}`)
    .reverse()
    .join(", ");
}

/**
 * The certificates of a certs-only PKCS#7 (base64 of DER, as EST sends it):
 * each as {der, subject (text), selfIssued, notAfter}.
 */
export function certificatesOf(base64Text) {
  const info = pkijs.ContentInfo.fromBER(bytesOf(base64Text));
  const signed = new pkijs.SignedData({ schema: info.content });
  return (signed.certificates || [])
    .filter((c) => c instanceof pkijs.Certificate)
    .map((c) => ({
      der: c.toSchema().toBER(false),
      subject: nameText(c.subject),
      // a certs-only PKCS#7 is a SET: its order says nothing, the names do
      selfIssued: sameBytes(c.subject.toSchema().toBER(false), c.issuer.toSchema().toBER(false)),
      notAfter: c.notAfter.value,
    }));
}
