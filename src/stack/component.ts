import type { TemporalConnection } from '../temporal-connection';
import type { StackSettings } from './settings';

/** One line of `runbook doctor`: a check, whether it passed, and the exact fix when it did not. */
export interface Check {
  component: string;
  check: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

export interface StackContext {
  settings: StackSettings;
  /** Progress lines for the operator. */
  log: (line: string) => void;
  /**
   * doctor: the connection the CLI uses. When it is not the embedded dev server (`embedded: false`: a profile,
   * TLS, an API key), the Temporal and worker checks check that server instead.
   */
  temporal?: { connection: TemporalConnection; embedded: boolean };
}

/** A server of the embedded stack: started idempotently (adopted when already running), stopped, checked. */
export interface Component {
  name: string;
  /** Fails, changing nothing, when it is not running and a port it needs is taken by another program. */
  preflight(ctx: StackContext): Promise<void>;
  /** Starts it or adopts the running one; returns the address(es) to print. */
  start(ctx: StackContext): Promise<string>;
  /** Stops it; returns false when it was not running. */
  stop(ctx: StackContext): Promise<boolean>;
  check(ctx: StackContext): Promise<Check[]>;
}

export const pass = (component: string, check: string, detail: string): Check => ({
  component,
  check,
  ok: true,
  detail,
});
export const fail = (component: string, check: string, detail: string, fix: string): Check => ({
  component,
  check,
  ok: false,
  detail,
  fix,
});
