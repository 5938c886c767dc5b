/**
 * The one scrubber for text that is shown or recorded (failure messages, timeline notes, heartbeat details, the
 * CLI's log excerpts): credentials in it are replaced by `***` and what they belong to stays readable. It works on
 * patterns, so it is a second line of defence: text that an app printed never goes into a failure message at all
 * (a crashed release's log stays on the worker), and the worker also masks the secret values it holds itself
 * ({@link createScrubber} with {@link secretValuesOf}).
 */

/** What replaces a secret. */
export const MASK = '***';

/** Key names whose value is a credential: PGPASSWORD=, "password": , api_key=, AWS_SECRET_ACCESS_KEY=, token: ... */
const SECRET_KEY = String.raw`[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?)[A-Za-z0-9_.-]*|pwd`;

const rules: Array<[RegExp, string | ((match: string, ...groups: string[]) => string)]> = [
  // PEM private keys, whole (an unterminated one to the end of the text).
  [
    /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$)/g,
    `-----BEGIN $1PRIVATE KEY----- ${MASK} -----END $1PRIVATE KEY-----`,
  ],
  // user:password@ in URLs (postgres://app:pw@db/x -> postgres://app:***@db/x), to the last @ of the word, so that a
  // password with a raw @ in it is masked whole.
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@'"<>]*):[^\s'"<>]*@/gi, `$1:${MASK}@`],
  // Authorization and Proxy-Authorization headers: the scheme stays (Bearer, Basic...), the credentials go.
  [
    /\b((?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:(bearer|basic|digest|token|negotiate|aws4-hmac-sha256)\s+)?[^\s"',;]+/gi,
    (_m, head: string, scheme: string | undefined) => `${head}${scheme ? `${scheme} ` : ''}${MASK}`,
  ],
  [/\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${MASK}`],
  // key=value, key: value, "key": "value" for credential keys; quotes are kept.
  [
    new RegExp(
      String.raw`(?<![A-Za-z0-9])(["']?(?:${SECRET_KEY})["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;&"'}\]]+)`,
      'gi',
    ),
    (_m, head: string, value: string) => {
      const quote = value.startsWith('"') || value.startsWith("'") ? value[0] : '';
      return `${head}${quote}${MASK}${quote}`;
    },
  ],
  // AWS access key ids (access keys, temporary keys, and the other IAM unique-id prefixes).
  [/\b(AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{16}\b/g, `$1${MASK}`],
];

/** `text` with the credentials that its patterns reveal (URL passwords, key=value secrets, AWS keys...) masked. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const [pattern, replacement] of rules) {
    out = out.replace(pattern, replacement as (substring: string, ...args: string[]) => string);
  }
  return out;
}

/** Known secret values shorter than this are not masked where they appear bare: they would mask ordinary words. */
export const MIN_KNOWN_SECRET_LENGTH = 12;

/**
 * A scrubber that masks `known` secret values wherever they appear (also bare, without a key or a URL around them),
 * then applies {@link scrubSecrets}.
 */
export function createScrubber(known: Iterable<string> = []): (text: string) => string {
  const values = [...new Set([...known].filter((v) => v.length >= MIN_KNOWN_SECRET_LENGTH))].sort(
    (a, b) => b.length - a.length,
  );
  return (text) => {
    let out = text;
    for (const value of values) {
      out = out.split(value).join(MASK);
      const encoded = encodeURIComponent(value);
      if (encoded !== value) out = out.split(encoded).join(MASK);
    }
    return scrubSecrets(out);
  };
}

const SECRET_NAME = /password|passwd|secret|token|api_?key|access_?key|private_?key|credential/i;

/**
 * The secret values an environment holds: the values of variables named like credentials (PGPASSWORD,
 * AWS_SECRET_ACCESS_KEY, TEMPORAL_API_KEY...) and the passwords in URL-valued variables (DATABASE_URL), plus those in
 * `urls`.
 */
export function secretValuesOf(env: Record<string, string | undefined>, urls: string[] = []): string[] {
  const found: string[] = [];
  const passwordOf = (value: string) => {
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*:([^\s@/]+)@/i.exec(value);
    if (!m?.[1]) return;
    found.push(m[1]);
    try {
      found.push(decodeURIComponent(m[1]));
    } catch {
      // not percent-encoded
    }
  };
  for (const [name, value] of Object.entries(env)) {
    if (!value) continue;
    if (SECRET_NAME.test(name)) found.push(value);
    passwordOf(value);
  }
  for (const url of urls) passwordOf(url);
  return [...new Set(found)];
}
