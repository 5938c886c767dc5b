import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { freePort } from '../../src/system/processes';

/** What the proxy saw of one gRPC call. */
export interface SeenCall {
  path: string;
  authorization?: string;
  userAgent?: string;
}

export interface GrpcHeaderProxy {
  address: string;
  calls: SeenCall[];
  stop(): Promise<void>;
}

/**
 * A small gRPC proxy standing in for a server that checks API keys (Temporal Cloud): HTTP/2 over TLS with the
 * given certificate, forwarding each call to the plain server at `backend` when its `authorization` header is
 * `Bearer <apiKey>`, answering UNAUTHENTICATED otherwise, and recording the headers it saw.
 */
export async function startGrpcHeaderProxy(opts: {
  backend: string;
  apiKey: string;
  cert: string;
  key: string;
}): Promise<GrpcHeaderProxy> {
  const calls: SeenCall[] = [];
  const upstream = http2.connect(`http://${opts.backend}`);
  upstream.on('error', () => {});
  const server = http2.createSecureServer({ cert: readFileSync(opts.cert), key: readFileSync(opts.key) });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const call: SeenCall = { path: String(headers[':path']) };
    if (headers.authorization) call.authorization = String(headers.authorization);
    if (headers['user-agent']) call.userAgent = String(headers['user-agent']);
    calls.push(call);
    stream.on('error', () => {});
    if (headers.authorization !== `Bearer ${opts.apiKey}`) {
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'invalid API key' },
        { endStream: true },
      );
      return;
    }
    const forwarded: http2.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(headers)) {
      if (name !== ':authority' && name !== ':scheme' && value !== undefined) forwarded[name] = value;
    }
    const req = upstream.request(forwarded);
    req.on('error', () => stream.destroy());
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('trailers', (t) => (trailers = t));
    req.on('response', (responseHeaders) => {
      const out: http2.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(responseHeaders)) if (value !== undefined) out[name] = value;
      if (stream.destroyed) return;
      stream.respond(out, { waitForTrailers: true });
      stream.on('wantTrailers', () => {
        const t: http2.OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(trailers)) if (!name.startsWith(':') && value) t[name] = value;
        stream.sendTrailers(t);
      });
      req.pipe(stream);
    });
    stream.pipe(req);
    stream.on('close', () => req.close());
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${port}`,
    calls,
    async stop() {
      for (const s of sessions) s.destroy();
      upstream.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
