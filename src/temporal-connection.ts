import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection, type ConnectionOptions, type TLSConfig } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import {
  loadClientConfig,
  loadClientConfigProfile,
  toClientOptions,
  type ClientConfigProfile,
  type ConfigDataSource,
} from '@temporalio/envconfig';
import type { NativeConnection, NativeConnectionOptions } from '@temporalio/worker';
import { codecFromEnv, type AesGcmCodec } from './codec/aes-gcm-codec';
import { UserError, errorMessage } from './errors';

/** How a connection authenticates: nothing, the server's certificate, also a client certificate, or an API key. */
export type ConnectionMode = 'plain' | 'tls' | 'mtls' | 'api-key';

/**
 * Where and how clients and workers reach Temporal, loaded once (see {@link loadTemporalConnection}) and turned
 * into a client Connection or a worker NativeConnection by the functions below. The API key is not enumerable:
 * printing, logging or JSON-serialising this object never shows it.
 */
export interface TemporalConnection {
  address: string;
  namespace: string;
  mode: ConnectionMode;
  /** false for a plain connection. */
  tls: TLSConfig | false;
  readonly apiKey?: string;
  /** gRPC metadata sent with every call (a profile's grpc_meta, TEMPORAL_GRPC_META_*). */
  metadata?: Record<string, string>;
  /** Where the settings came from, for people: "profile 'prod' of /x/temporal.toml; TEMPORAL_ADDRESS". */
  source: string;
  /** Where the certificates came from (file paths, or "TEMPORAL_TLS_..._DATA"), for doctor's checks. */
  files: { clientCert?: string; clientKey?: string; serverCa?: string };
  serverName?: string;
  /** The payload codec (RUNBOOK_CODEC_KEYS), off when undefined. */
  codec?: AesGcmCodec;
}

/** The settings used when nothing is configured: the embedded stack's address, or the defaults. */
export interface ConnectionDefaults {
  address: string;
  namespace: string;
  /** Names them in `source`, e.g. "the embedded stack (stack.json)". */
  what: string;
}

/** The environment variables that envconfig reads (as the `temporal` CLI does), for --help texts and docs. */
export const CONNECTION_ENV_HELP =
  'Connection (as the temporal CLI): TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS,\n' +
  '  TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH,\n' +
  '  TEMPORAL_TLS_SERVER_NAME (and the *_DATA forms), TEMPORAL_PROFILE and TEMPORAL_CONFIG_FILE (a TOML file of\n' +
  '  profiles, default ~/.config/temporalio/temporal.toml). RUNBOOK_CODEC_KEYS="id:base64key,..." encrypts\n' +
  '  payloads. Unset, the CLI uses the embedded stack (runbook up). See docs/temporal-connection.md.';

/** The TOML file envconfig reads when TEMPORAL_CONFIG_FILE is unset (the same rule as the SDKs and the CLI). */
export function defaultConfigFile(env: NodeJS.ProcessEnv): string | undefined {
  if (process.platform === 'win32')
    return env.APPDATA ? path.join(env.APPDATA, 'temporalio', 'temporal.toml') : undefined;
  if (process.platform === 'darwin') {
    return env.HOME ? path.join(env.HOME, 'Library', 'Application Support', 'temporalio', 'temporal.toml') : undefined;
  }
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg) return path.isAbsolute(xdg) ? path.join(xdg, 'temporalio', 'temporal.toml') : undefined;
  return env.HOME ? path.join(env.HOME, '.config', 'temporalio', 'temporal.toml') : undefined;
}

/** TEMPORAL_* variables with a value: an empty one means unset, as it always has for TEMPORAL_ADDRESS here. */
function temporalVars(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => e[0].startsWith('TEMPORAL_') && !!e[1]),
  );
}

const CONNECTION_VARS = /^TEMPORAL_(ADDRESS|NAMESPACE|API_KEY|TLS(_.*)?|GRPC_META_.*)$/;

function describeSource(source: ConfigDataSource | undefined, dataVar: string): string | undefined {
  if (!source) return undefined;
  return 'path' in source ? source.path : dataVar;
}

/** Reads a profile file's profiles; undefined when there is no such file. */
function readProfiles(file: string, explicit: boolean): { data: string; names: string[] } | undefined {
  if (!existsSync(file)) {
    if (explicit) {
      throw new UserError(`TEMPORAL_CONFIG_FILE=${file}: no such file`, 'point it at your temporal.toml, or unset it');
    }
    return undefined;
  }
  const data = readFileSync(file, 'utf8');
  try {
    return { data, names: Object.keys(loadClientConfig({ configSource: { data } }).profiles) };
  } catch (err) {
    if (err instanceof TypeError) return { data, names: [] }; // valid TOML without any [profile.<name>] table
    throw new UserError(
      `${file} is not a valid Temporal config file: ${errorMessage(err).split('\n')[0]}`,
      'fix the TOML (`temporal config list` reads the same file)',
    );
  }
}

/**
 * Loads the connection settings with @temporalio/envconfig, so that one profile serves this project and the
 * `temporal` CLI. Precedence, per setting: TEMPORAL_* environment variables (TEMPORAL_ADDRESS, _NAMESPACE,
 * _API_KEY, _TLS, _TLS_CLIENT_CERT_PATH ...), then the profile TEMPORAL_PROFILE (default "default") of the
 * file TEMPORAL_CONFIG_FILE (default ~/.config/temporalio/temporal.toml), then `defaults`. An empty variable
 * counts as unset. The codec comes from RUNBOOK_CODEC_KEYS.
 * @throws UserError naming the variable or file when the file, the profile, a certificate or the codec keys
 * are wrong.
 */
export function loadTemporalConnection(env: NodeJS.ProcessEnv, defaults: ConnectionDefaults): TemporalConnection {
  const vars = temporalVars(env);
  const file = vars.TEMPORAL_CONFIG_FILE ?? defaultConfigFile(env);
  const found = file ? readProfiles(file, vars.TEMPORAL_CONFIG_FILE !== undefined) : undefined;
  const wanted = vars.TEMPORAL_PROFILE;
  if (wanted && !found?.names.includes(wanted)) {
    throw new UserError(
      found
        ? `TEMPORAL_PROFILE=${wanted}: ${file} has no such profile (it has: ${found.names.join(', ') || 'none'})`
        : `TEMPORAL_PROFILE=${wanted}: there is no config file (${file ?? 'no home folder'})`,
      'name a profile of the file, or set TEMPORAL_CONFIG_FILE to the file that holds it',
    );
  }
  const profileName = wanted ?? 'default';
  const fromFile = found !== undefined && found.names.includes(profileName);
  let profile: ClientConfigProfile;
  try {
    profile = loadClientConfigProfile({
      ...(found && found.names.length > 0 ? { configSource: { data: found.data } } : { disableFile: true }),
      ...(wanted ? { profile: wanted } : {}),
      overrideEnvVars: vars,
    });
  } catch (err) {
    throw new UserError(`cannot load the Temporal connection settings: ${errorMessage(err)}`);
  }
  const tlsSettings = profile.tls;
  if (tlsSettings && !tlsSettings.disabled && !!tlsSettings.clientCert !== !!tlsSettings.clientKey) {
    throw new UserError(
      `mTLS needs both a client certificate and its key, ${tlsSettings.clientCert ? 'the key is missing' : 'the certificate is missing'}`,
      'set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (or client_cert_path and client_key_path in the profile)',
    );
  }
  let options: ReturnType<typeof toClientOptions>;
  try {
    options = toClientOptions(profile);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT' ? (err as { path?: string }).path : undefined;
    throw new UserError(
      missing
        ? `a TLS file of the Temporal connection does not exist: ${missing}`
        : `cannot read the TLS files of the Temporal connection: ${errorMessage(err)}`,
      'check the TEMPORAL_TLS_*_PATH variables, or the tls paths of the profile',
    );
  }
  const tlsOption = options.connectionOptions.tls;
  const tls: TLSConfig | false = tlsOption === true ? {} : tlsOption ? tlsOption : false;
  const apiKey = typeof options.connectionOptions.apiKey === 'string' ? options.connectionOptions.apiKey : undefined;
  const mode: ConnectionMode = apiKey ? 'api-key' : tls === false ? 'plain' : tls.clientCertPair ? 'mtls' : 'tls';
  const fromEnv = Object.keys(vars).filter((k) => CONNECTION_VARS.test(k));
  const origin = [
    ...(fromFile ? [`profile '${profileName}' of ${file}`] : []),
    ...(fromEnv.length > 0 ? [fromEnv.sort().join(', ')] : []),
  ];
  const address = options.connectionOptions.address ?? defaults.address;
  const namespace = options.namespace ?? defaults.namespace;
  if (!options.connectionOptions.address || !options.namespace) origin.push(defaults.what);
  const connection: TemporalConnection = {
    address,
    namespace,
    mode,
    tls,
    ...(profile.grpcMeta && Object.keys(profile.grpcMeta).length > 0 ? { metadata: profile.grpcMeta } : {}),
    source: origin.join('; '),
    files: {
      ...definedEntry('clientCert', describeSource(tlsSettings?.clientCert, 'TEMPORAL_TLS_CLIENT_CERT_DATA')),
      ...definedEntry('clientKey', describeSource(tlsSettings?.clientKey, 'TEMPORAL_TLS_CLIENT_KEY_DATA')),
      ...definedEntry('serverCa', describeSource(tlsSettings?.serverCACert, 'TEMPORAL_TLS_SERVER_CA_CERT_DATA')),
    },
    ...(tls && tls.serverNameOverride ? { serverName: tls.serverNameOverride } : {}),
  };
  if (apiKey) Object.defineProperty(connection, 'apiKey', { value: apiKey, enumerable: false });
  const codec = codecFromEnv(env);
  if (codec) connection.codec = codec;
  return connection;
}

const definedEntry = <K extends string>(key: K, value: string | undefined) =>
  (value === undefined ? {} : { [key]: value }) as Partial<Record<K, string>>;

/** A plain connection to a server this project started itself (the embedded stack's dev server). */
export function plainConnection(address: string, namespace: string, what: string): TemporalConnection {
  return { address, namespace, mode: 'plain', tls: false, source: what, files: {} };
}

/** One line for people: the mode, the address and namespace, where the settings came from (never the key). */
export function describeConnection(c: TemporalConnection): string {
  return `${modeLabel(c)} to ${c.address}, namespace ${c.namespace} (from ${c.source})${
    c.codec ? `; payloads encrypted with key ${c.codec.keyIds[0]}` : ''
  }`;
}

export function modeLabel(c: Pick<TemporalConnection, 'mode' | 'tls'>): string {
  switch (c.mode) {
    case 'plain':
      return 'plain (no TLS)';
    case 'tls':
      return 'TLS (server certificate checked)';
    case 'mtls':
      return 'mTLS (client certificate)';
    case 'api-key':
      return c.tls === false ? 'API key (no TLS)' : `API key over ${c.tls.clientCertPair ? 'mTLS' : 'TLS'}`;
  }
}

/** The payload codecs of this connection's data converter (none when the codec is off). */
export function dataConverter(c: TemporalConnection): DataConverter {
  return c.codec ? { payloadCodecs: [c.codec] } : {};
}

/** Options for a client Connection (@temporalio/client). */
export function clientConnectionOptions(c: TemporalConnection, connectTimeoutMs = 5_000): ConnectionOptions {
  return {
    address: c.address,
    tls: c.tls === false ? false : c.tls,
    ...(c.apiKey ? { apiKey: c.apiKey } : {}),
    ...(c.metadata ? { metadata: c.metadata } : {}),
    connectTimeout: connectTimeoutMs,
  };
}

/** Options for a worker's NativeConnection (@temporalio/worker). */
export function nativeConnectionOptions(c: TemporalConnection): NativeConnectionOptions {
  return {
    address: c.address,
    tls: c.tls === false ? false : c.tls,
    ...(c.apiKey ? { apiKey: c.apiKey } : {}),
    ...(c.metadata ? { metadata: c.metadata } : {}),
  };
}

/** Connects a Temporal client (with the codec, when on); callers close `client.connection` when done. */
export async function connectClient(c: TemporalConnection, connectTimeoutMs = 5_000): Promise<Client> {
  const connection = await Connection.connect(clientConnectionOptions(c, connectTimeoutMs));
  return new Client({ connection, namespace: c.namespace, dataConverter: dataConverter(c) });
}

/** Connects a worker's NativeConnection (the native module loads only here, not in every CLI command). */
export async function connectNative(c: TemporalConnection): Promise<NativeConnection> {
  const { NativeConnection } = await import('@temporalio/worker');
  return NativeConnection.connect(nativeConnectionOptions(c));
}
