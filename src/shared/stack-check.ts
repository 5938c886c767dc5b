import type { Duration } from '@temporalio/common';
import { defineQuery } from '@temporalio/workflow';

export interface StackCheckInput {
  /** How long to hold between the two rounds of checks (a durable timer), e.g. '2s'. */
  hold?: Duration;
}

export interface DatabaseCheck {
  serverVersion: string;
  database: string;
}

export interface TrafficRouterCheck {
  version: string;
  uptime: string;
}

export interface StackCheckState {
  phase: 'checking' | 'holding' | 'rechecking' | 'done';
  database?: DatabaseCheck;
  trafficRouter?: TrafficRouterCheck;
  rechecked?: DatabaseCheck;
}

export type StackCheckResult = Required<Omit<StackCheckState, 'phase'>> & { outcome: 'succeeded' };

export const stackCheckStatusQuery = defineQuery<StackCheckState>('status');
