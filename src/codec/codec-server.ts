import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';

/** A payload as the remote codec endpoints carry it (proto3 JSON: bytes in base64). */
interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** Web UI origins allowed to call it from a browser (CORS), e.g. http://localhost:8233. */
  origins: string[];
  /** When set, requests must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** When set, only these namespaces (the X-Namespace header) are served. */
  namespaces?: string[];
  /** Largest request body, in bytes. */
  maxBodyBytes?: number;
  /** Told one line per refused request (never a payload or the token). */
  log?: (line: string) => void;
}

const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});

const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Temporal's remote codec endpoints (POST /encode and /decode with `{"payloads": [...]}`, also under
 * /<namespace>/), which the Web UI and the `temporal` CLI (`--codec-endpoint`) call to show decoded payloads. CORS answers the listed UI origins
 * (with credentials, for the UI's "include cross-origin credentials" setting); an optional bearer token and
 * namespace list guard it. Listen on it with `.listen(port, host)`.
 */
export function createCodecServer(options: CodecServerOptions): http.Server {
  const maxBody = options.maxBodyBytes ?? 32 * 1024 * 1024;
  const log = options.log ?? (() => {});
  return http.createServer((req, res) => {
    const origin = req.headers.origin;
    if (origin && options.origins.includes(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Vary', 'Origin');
    }
    const send = (status: number, body?: unknown) => {
      res.writeHead(status, body === undefined ? {} : { 'Content-Type': 'application/json' });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    const refuse = (status: number, message: string) => {
      log(`codec-server: ${req.method} ${req.url} refused (${status}): ${message}`);
      send(status, { message });
    };
    // /encode and /decode, also under a namespace segment (/<namespace>/decode: the CLI's {namespace} template)
    const route = /^(?:\/([^/]+))?\/(encode|decode)$/.exec((req.url ?? '').split('?')[0] ?? '');
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
      res.setHeader('Access-Control-Max-Age', '600');
      return send(204);
    }
    if (req.method !== 'POST' || !route) {
      return refuse(404, 'the codec server answers POST /encode and POST /decode');
    }
    if (options.token !== undefined) {
      const auth = req.headers.authorization ?? '';
      const given = auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : '';
      if (!sameToken(given, options.token)) return refuse(401, 'a valid Authorization: Bearer <token> is required');
    }
    const namespace = req.headers['x-namespace'] || (route[1] ? decodeURIComponent(route[1]) : undefined);
    if (options.namespaces && !options.namespaces.includes(String(namespace ?? ''))) {
      return refuse(403, `namespace "${String(namespace ?? '')}" is not served here`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBody) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) return refuse(413, `the request body is larger than ${maxBody} bytes`);
      let payloads: Payload[];
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { payloads?: unknown };
        if (!Array.isArray(body.payloads)) throw new Error('no payloads array');
        payloads = (body.payloads as JsonPayload[]).map(fromJson);
      } catch {
        return refuse(400, 'the body must be JSON: {"payloads": [{"metadata": {...}, "data": "<base64>"}]}');
      }
      const work = route[2] === 'encode' ? options.codec.encode(payloads) : options.codec.decode(payloads);
      work.then(
        (out) => send(200, { payloads: out.map(toJson) }),
        (err: unknown) => refuse(400, err instanceof Error ? err.message : String(err)),
      );
    });
  });
}

/** Starts listening; resolves with the bound port (pass 0 for any free port). */
export function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
