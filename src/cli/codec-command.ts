import { CODEC_KEYS_ENV, codecFromEnv } from '../codec/aes-gcm-codec';
import { createCodecServer, listen } from '../codec/codec-server';
import { UserError } from '../errors';
import { resolveStackSettings, uiUrl } from '../stack/settings';
import type { Command } from './command';

export const codecServerCommand: Command = {
  name: 'codec-server',
  summary:
    "Serve Temporal's remote codec endpoints (POST /encode, /decode) with the payload keys of RUNBOOK_CODEC_KEYS,\n" +
    'so that the Temporal Web UI and the `temporal` CLI (--codec-endpoint) show encrypted payloads decoded.',
  usage: 'codec-server [--port <n>] [--host <ip>] [--origin <url>]... [--namespace <ns>]...',
  examples: [
    'RUNBOOK_CODEC_KEYS="2025-06:$(cat key.b64)" runbook codec-server --port 8888',
    'temporal workflow show -w <id> --codec-endpoint http://127.0.0.1:8888',
  ],
  details:
    `${CODEC_KEYS_ENV}="id1:<base64 of 32 bytes>,id2:..." (the first encrypts; older ones still decrypt), the\n` +
    'same value the worker and the CLI have. RUNBOOK_CODEC_SERVER_TOKEN: requests must then carry\n' +
    '`Authorization: Bearer <token>` (the temporal CLI: --codec-auth "Bearer <token>"). In the Web UI, set the\n' +
    'Codec Server endpoint (the settings of the namespace page, or the dev server flag --ui-codec-endpoint, which\n' +
    '`runbook up` passes when RUNBOOK_UI_CODEC_ENDPOINT is set). See docs/temporal-connection.md.',
  options: {
    port: { type: 'string', description: 'port to listen on (default 8888)' },
    host: { type: 'string', description: 'address to listen on (default 127.0.0.1)' },
    origin: {
      type: 'string',
      multiple: true,
      description: "a Web UI origin allowed to call it (default the embedded stack's UI, http://localhost:8233)",
    },
    namespace: { type: 'string', multiple: true, description: 'serve only these namespaces (the X-Namespace header)' },
  },
  async run({ values }, io) {
    const codec = codecFromEnv(io.env);
    if (!codec) {
      throw new UserError(
        `${CODEC_KEYS_ENV} is not set: the codec server needs the keys the worker encrypts with`,
        `${CODEC_KEYS_ENV}="id1:$(openssl rand -base64 32)" (the same value as the worker's)`,
      );
    }
    const port = Number(values.port ?? 8888);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new UserError(`codec-server: --port must be a port number, got ${String(values.port)}`);
    }
    const host = String(values.host ?? '127.0.0.1');
    const settings = resolveStackSettings(io.env);
    const origins = (values.origin as string[] | undefined) ?? [
      uiUrl(settings),
      uiUrl(settings).replace('localhost', '127.0.0.1'),
    ];
    const namespaces = values.namespace as string[] | undefined;
    const token = io.env.RUNBOOK_CODEC_SERVER_TOKEN || undefined;
    const server = createCodecServer({
      codec,
      origins,
      ...(token ? { token } : {}),
      ...(namespaces ? { namespaces } : {}),
      log: io.err,
    });
    const bound = await listen(server, port, host).catch((err: NodeJS.ErrnoException) => {
      throw new UserError(
        `codec-server: cannot listen on ${host}:${port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`,
        'choose another port with --port',
      );
    });
    io.out(
      `codec server on http://${host}:${bound} (keys ${codec.keyIds.join(', ')}; ${codec.keyIds[0]} encrypts), ` +
        `CORS for ${origins.join(', ')}${token ? ', bearer token required' : ''}${namespaces ? `, namespaces ${namespaces.join(', ')}` : ''}`,
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return 0;
  },
};
