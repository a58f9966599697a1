// The libraries the registration page uses, bundled by esbuild into
// dist/vendor.js (`npm run build`; the bundle is committed, built into the
// command, and ./dev test checks that npm ci && npm run build makes it again):
// - pkijs and asn1js: the one ASN.1 stack: the CSR (PKCS#10), the PKCS#7
//   EST answers, the PKCS#12 file (its bags, PBES2 encryption and MAC);
// - node-forge: only the legacy PKCS#12 key encryption
//   (pbeWithSHAAnd3-KeyTripleDES-CBC) that macOS and iOS need, which
//   WebCrypto and pkijs do not have.
import * as pkijs from "pkijs";
import * as asn1js from "asn1js";
import forge from "node-forge/lib/forge.js";
import "node-forge/lib/pbe.js";

export { pkijs, asn1js, forge };
