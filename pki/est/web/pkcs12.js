// The PKCS#12 file the person downloads, made in the browser from the key
// WebCrypto generated and the certificate the CA issued. Two kinds:
// - modern: key and certificates encrypted with PBES2 (AES-256-CBC, PBKDF2
//   with HMAC-SHA-256), MAC HMAC-SHA-256 (what OpenSSL 3 writes by default);
// - legacy: the key encrypted with pbeWithSHAAnd3-KeyTripleDES-CBC, the
//   certificates unencrypted, MAC HMAC-SHA-1: what macOS and iOS import.
import { pkijs, asn1js, forge } from "./vendor.js";

const ITERATIONS = 100000;
const LEGACY_ITERATIONS = 2048;
const OID = {
  keyBag: "1.2.840.113549.1.12.10.1.2",
  certBag: "1.2.840.113549.1.12.10.1.3",
  x509Certificate: "1.2.840.113549.1.9.22.1",
  friendlyName: "1.2.840.113549.1.9.20",
  localKeyId: "1.2.840.113549.1.9.21",
};

function utf8(text) {
  return new TextEncoder().encode(text).buffer;
}

function attributes(friendlyName, keyId) {
  const out = [new pkijs.Attribute({ type: OID.localKeyId, values: [new asn1js.OctetString({ valueHex: keyId })] })];
  if (friendlyName) {
    out.unshift(new pkijs.Attribute({ type: OID.friendlyName, values: [new asn1js.BmpString({ value: friendlyName })] }));
  }
  return out;
}

function certBag(der, attrs) {
  const cert = pkijs.Certificate.fromBER(der);
  return new pkijs.SafeBag({ bagId: OID.certBag, bagValue: new pkijs.CertBag({ parsedValue: cert }), bagAttributes: attrs });
}

// forge's salt comes from WebCrypto's generator, as every other random byte here
forge.random.getBytesSync = (n) => String.fromCharCode(...crypto.getRandomValues(new Uint8Array(n)));

// pbeWithSHAAnd3-KeyTripleDES-CBC over the PKCS#8 key, by forge (PKCS#12's
// own key derivation, appendix B); read back as pkijs's bag.
function legacyKeyBag(pkcs8, password) {
  const info = forge.asn1.fromDer(forge.util.createBuffer(new Uint8Array(pkcs8)));
  const encrypted = forge.pki.encryptPrivateKeyInfo(info, password, { algorithm: "3des", count: LEGACY_ITERATIONS });
  const der = forge.asn1.toDer(encrypted).getBytes();
  const bytes = Uint8Array.from(der, (c) => c.charCodeAt(0));
  return pkijs.PKCS8ShroudedKeyBag.fromBER(bytes.buffer);
}

/**
 * The DER of a password-protected PKCS#12 holding the key, its certificate
 * (with `friendlyName`) and the CA chain.
 * @param {{pkcs8: ArrayBuffer, certificate: ArrayBuffer, chain: ArrayBuffer[], password: string, friendlyName: string, legacy: boolean}} p
 */
export async function pkcs12(p) {
  const keyId = await crypto.subtle.digest("SHA-1", p.certificate);
  const certificates = [certBag(p.certificate, attributes(p.friendlyName, keyId))];
  for (const ca of p.chain) {
    certificates.push(certBag(ca, undefined));
  }
  let keyBag;
  if (p.legacy) {
    keyBag = legacyKeyBag(p.pkcs8, p.password);
  } else {
    keyBag = new pkijs.PKCS8ShroudedKeyBag({ parsedValue: pkijs.PrivateKeyInfo.fromBER(p.pkcs8) });
    await keyBag.makeInternalValues({
      password: utf8(p.password),
      contentEncryptionAlgorithm: { name: "AES-CBC", length: 256 },
      hmacHashAlgorithm: "SHA-256",
      iterationCount: ITERATIONS,
    });
  }
  const keySafe = new pkijs.SafeContents({
    safeBags: [new pkijs.SafeBag({ bagId: OID.keyBag, bagValue: keyBag, bagAttributes: attributes(p.friendlyName, keyId) })],
  });
  const certSafe = new pkijs.SafeContents({ safeBags: certificates });
  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0,
      authenticatedSafe: new pkijs.AuthenticatedSafe({
        parsedValue: {
          safeContents: [
            { privacyMode: 0, value: keySafe },
            { privacyMode: p.legacy ? 0 : 1, value: certSafe },
          ],
        },
      }),
    },
  });
  await pfx.parsedValue.authenticatedSafe.makeInternalValues({
    safeContents: [
      {},
      p.legacy
        ? {}
        : {
            password: utf8(p.password),
            contentEncryptionAlgorithm: { name: "AES-CBC", length: 256 },
            hmacHashAlgorithm: "SHA-256",
            iterationCount: ITERATIONS,
          },
    ],
  });
  await pfx.makeInternalValues({
    password: utf8(p.password),
    iterations: p.legacy ? LEGACY_ITERATIONS : ITERATIONS,
    pbkdf2HashAlgorithm: p.legacy ? "SHA-1" : "SHA-256",
    hmacHashAlgorithm: p.legacy ? "SHA-1" : "SHA-256",
  });
  return pfx.toSchema().toBER(false);
}
