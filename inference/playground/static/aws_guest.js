// Calls a deployed stage's POST /recommendations as a Cognito guest: guest credentials from the
// stage's identity pool (the basic flow: GetId, GetOpenIdToken, then STS AssumeRoleWithWebIdentity on
// the guest role), kept until shortly before they expire, and each request signed with SigV4 for
// execute-api. Standalone: no SDK, no build step; WebCrypto signs. A shop's page may copy this file.
//
//   const api = new GuestApi({identityPoolId: "us-east-1:...",       // output GuestIdentityPoolId
//                             roleArn: "arn:aws:iam::...:role/...",   // output GuestRoleArn
//                             apiUrl: "https://.../recommendations"}); // output RecommendationsUrl
//   const response = await api.post({items: ["1000", "1001"], k: 10});
"use strict";

const GUEST_RENEW_MS = 5 * 60 * 1000; // new credentials this long before the old ones expire
const utf8 = new TextEncoder();
const hex = (bytes) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sha256 = async (text) => hex(await crypto.subtle.digest("SHA-256", utf8.encode(text)));

async function hmac(key, text) {
  const raw = typeof key === "string" ? utf8.encode(key) : key;
  const cryptoKey = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", cryptoKey, utf8.encode(text));
}

class GuestApi {
  // identityPoolId's prefix is its region; cognitoUrl and stsUrl default to that region's endpoints.
  constructor({ identityPoolId, roleArn, apiUrl, region, cognitoUrl, stsUrl }) {
    this.region = region || identityPoolId.split(":")[0];
    this.identityPoolId = identityPoolId;
    this.roleArn = roleArn;
    this.apiUrl = apiUrl;
    this.cognitoUrl = cognitoUrl || `https://cognito-identity.${this.region}.amazonaws.com/`;
    this.stsUrl = stsUrl || `https://sts.${this.region}.amazonaws.com/`;
    this.credentials = null;
  }

  // A SigV4-signed POST of `body` (an object, sent as JSON) to the API; the fetch Response as it came.
  async post(body) {
    const credentials = await this.guestCredentials();
    const text = JSON.stringify(body);
    return fetch(this.apiUrl, { method: "POST", headers: await this.signedHeaders(text, credentials), body: text });
  }

  async guestCredentials() {
    if (this.credentials && this.credentials.expiration - Date.now() > GUEST_RENEW_MS) return this.credentials;
    const { IdentityId } = await this.cognito("GetId", { IdentityPoolId: this.identityPoolId });
    const { Token } = await this.cognito("GetOpenIdToken", { IdentityId });
    const query = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15",
                                        RoleArn: this.roleArn, RoleSessionName: "guest", WebIdentityToken: Token });
    const response = await fetch(`${this.stsUrl}?${query}`);
    if (!response.ok) throw new Error(`AssumeRoleWithWebIdentity: ${response.status} ${await response.text()}`);
    const xml = new DOMParser().parseFromString(await response.text(), "application/xml");
    const field = (name) => xml.getElementsByTagName(name)[0].textContent;
    this.credentials = { accessKeyId: field("AccessKeyId"), secretAccessKey: field("SecretAccessKey"),
                         sessionToken: field("SessionToken"), expiration: new Date(field("Expiration")) };
    return this.credentials;
  }

  async cognito(action, body) {
    const response = await fetch(this.cognitoUrl, {
      method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": `AWSCognitoIdentityService.${action}` },
    });
    if (!response.ok) throw new Error(`${action}: ${response.status} ${await response.text()}`);
    return response.json();
  }

  // The headers of a signed POST of `text` (the browser adds Host itself; it is signed all the same).
  async signedHeaders(text, credentials) {
    const { host, pathname } = new URL(this.apiUrl);
    const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
    const day = amzDate.slice(0, 8);
    const headers = { "content-type": "application/json", host, "x-amz-date": amzDate,
                      "x-amz-security-token": credentials.sessionToken };
    const names = Object.keys(headers).sort();
    const canonical = ["POST", pathname, "", ...names.map((name) => `${name}:${headers[name]}`), "",
                       names.join(";"), await sha256(text)].join("\n");
    const scope = `${day}/${this.region}/execute-api/aws4_request`;
    const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, await sha256(canonical)].join("\n");
    let key = await hmac(`AWS4${credentials.secretAccessKey}`, day);
    for (const part of [this.region, "execute-api", "aws4_request"]) key = await hmac(key, part);
    delete headers.host;
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, ` +
                            `SignedHeaders=${names.join(";")}, Signature=${hex(await hmac(key, toSign))}`;
    return headers;
  }
}
