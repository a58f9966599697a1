// The libraries the registration page uses, bundled by esbuild into
// dist/vendor.js (`npm run build`, which ./dev setup runs):
// - @peculiar/x509 (with reflect-metadata): the CSR (PKCS#10) and reading the PKCS#7 EST answers;
// - pkijs and asn1js: the PKCS#12 file, its bags, PBES2 encryption and MAC;
// - node-forge: only the legacy PKCS#12 key encryption
//   (pbeWithSHAAnd3-KeyTripleDES-CBC) that macOS and iOS need, which
//   WebCrypto and pkijs do not have.
// @peculiar/x509 needs the Reflect metadata API, first
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import * as pkijs from "pkijs";
import * as asn1js from "asn1js";
import forge from "node-forge/lib/forge.js";
import "node-forge/lib/pbe.js";

export { x509, pkijs, asn1js, forge };
